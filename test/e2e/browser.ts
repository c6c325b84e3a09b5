/**
 * The real browser the end-to-end tests drive: Debian's Chromium through playwright-core
 * (which brings no browser of its own). Where it is missing, `browserMissing()` says what to
 * install, and the tests skip — except under CI=true, where it is a failure.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const message = `Chromium is not installed at ${CHROMIUM} (Debian: apt-get install -y chromium; or set CHROMIUM_PATH)`;
  if (process.env['CI'] === 'true') throw new Error(`CI=true but ${message}`);
  return `skipped: ${message}`;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // --no-sandbox: containers (and root) have no user namespaces for Chromium's sandbox.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
