/** The demo app for browser tests: started in-process on a free port, as server.ts starts it. */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { Page } from 'playwright-core';
import { createApp } from '../../src/app/app.js';
import { loadConfig } from '../../src/app/config.js';
import { createSessionBackend } from '../../src/app/sessions.js';
import type { Logger } from '../../src/session/logger.js';

/** A demo server on a free port, with the store `env` asks for; `problems` collects its warnings and errors. */
export interface Demo {
  url: string;
  problems: string[];
  stop(): Promise<void>;
}

export async function startDemo(env: Record<string, string>): Promise<Demo> {
  const config = loadConfig({ ...env, PORT: '0' });
  const problems: string[] = [];
  const note = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    problems.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  const logger: Logger = { debug: () => {}, info: () => {}, warn: note('WARN'), error: note('ERROR') };
  const backend = createSessionBackend(config, logger);
  const { app } = createApp({ config, logger, ...backend });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return {
    url: `http://127.0.0.1:${address.port}`,
    problems,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      // The backend closes the store, then the clients it made (manager.close would close the store only).
      await backend.close();
    },
  };
}

/** Clicks a form's button and returns the status of the POST it sends to `action`. */
export async function submit(page: Page, button: string, action: string): Promise<number> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === action),
    page.getByRole('button', { name: button, exact: true }).click(),
  ]);
  await page.waitForLoadState();
  return response.status();
}
