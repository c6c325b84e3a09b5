import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { createLogger, onGoogleCloud, requestLogger } from '../../src/app/logging.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const TRACE = '0123456789abcdef0123456789abcdef';

describe('logging', () => {
  it('writes one JSON object per line with severity and message on App Engine', () => {
    const lines: string[] = [];
    const logger = createLogger({ json: true, level: 'debug', write: (line) => lines.push(line) });
    logger.debug('d');
    logger.info('session added', { sessionId: 'abc…' });
    logger.warn('w');
    logger.error('e', { error: 'boom' });
    assert.deepEqual(
      lines.map((line) => JSON.parse(line) as unknown),
      [
        { severity: 'DEBUG', message: 'd' },
        { severity: 'INFO', message: 'session added', sessionId: 'abc…' },
        { severity: 'WARNING', message: 'w' },
        { severity: 'ERROR', message: 'e', error: 'boom' },
      ],
    );
    for (const line of lines) assert.equal(line.includes('\n'), false);
  });

  it('writes plain lines locally', () => {
    const lines: string[] = [];
    const logger = createLogger({ json: false, level: 'info', write: (line) => lines.push(line) });
    logger.info('listening', { port: 8080, store: 'memory' });
    logger.error('session not saved');
    assert.deepEqual(lines, ['INFO    listening port=8080 store=memory', 'ERROR   session not saved']);
  });

  it('drops lines below the configured level', () => {
    const lines: string[] = [];
    const logger = createLogger({ json: false, level: 'warn', write: (line) => lines.push(line) });
    logger.debug('no');
    logger.info('no');
    logger.warn('yes');
    logger.error('yes');
    assert.equal(lines.length, 2);
  });

  it('knows App Engine (and Cloud Run) from their environment', () => {
    assert.equal(onGoogleCloud({}), false);
    assert.equal(onGoogleCloud({ GAE_SERVICE: 'default' }), true);
    assert.equal(onGoogleCloud({ K_SERVICE: 'web' }), true);
  });

  it("tags every line of a request with the request's trace, and logs the request", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      json: true,
      level: 'info',
      projectId: 'my-project',
      write: (line) => lines.push(line),
    });
    const app = express();
    app.use(requestLogger(logger));
    app.get('/x', (_req, res) => {
      setImmediate(() => {
        logger.info('inside the handler');
        res.status(418).send('teapot');
      });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await (
        await fetch(`http://127.0.0.1:${port}/x?secret=1`, { headers: { 'X-Cloud-Trace-Context': `${TRACE}/123;o=1` } })
      ).text();
      await (
        await fetch(`http://127.0.0.1:${port}/x`, { headers: { 'X-Cloud-Trace-Context': 'not-a-trace/1' } })
      ).text();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const traceKey = 'logging.googleapis.com/trace';
    assert.equal(entries.length, 4);
    assert.equal(entries[0]?.['message'], 'inside the handler');
    assert.equal(entries[0]?.[traceKey], `projects/my-project/traces/${TRACE}`);
    assert.equal(entries[1]?.['message'], 'GET /x 418');
    assert.equal(entries[1]?.[traceKey], `projects/my-project/traces/${TRACE}`);
    assert.equal(entries[1]?.['path'], '/x', 'the query string is not logged');
    assert.equal(entries[1]?.['status'], 418);
    assert.equal(entries[1]?.['severity'], 'INFO');
    assert.equal(traceKey in (entries[2] ?? {}), false, 'a malformed trace header is ignored');
  });

  it('makes the server log JSON lines when it runs on App Engine', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/server.ts'], {
      cwd: root,
      env: { PATH: process.env['PATH'], PORT: '0', GAE_SERVICE: 'default', GOOGLE_CLOUD_PROJECT: 'p' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    let output = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('\n')) resolve();
      });
      child.once('exit', () => resolve());
    });
    child.kill('SIGTERM');
    const code = await new Promise((resolve) =>
      child.exitCode === null ? child.once('exit', resolve) : resolve(child.exitCode),
    );
    clearTimeout(killer);
    const first = JSON.parse(output.split('\n')[0] ?? '') as Record<string, unknown>;
    assert.equal(first['severity'], 'INFO');
    assert.match(String(first['message']), /^listening on http:\/\/localhost:\d+\/demo$/);
    assert.equal(code, 0);
  });
});
