/**
 * Graceful shutdown of the real server process: SIGTERM (App Engine) and SIGINT (Ctrl-C) make
 * it finish what it is doing and exit 0, whether the signal goes to node or to `npm start`.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { canConnect } from '../support/services.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Running {
  child: ChildProcess;
  port: number;
  output: () => string;
  /** Resolves when the process (npm, or node) exits; a SIGKILL after `timeoutMs` counts as a failure. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the server with PORT=0 and reads the port from its "listening on" line. */
async function startServer(command: string, args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, PORT: '0', SESSION_STORE: 'memory', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal });
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    const check = (): void => {
      const match = /listening on http:\/\/localhost:(\d+)\/demo/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout?.on('data', check);
    void exited.then(() => reject(new Error(`server exited before listening:\n${output}`)));
  });
  return { child, port, output: () => output, exited };
}

async function waitForOutput(running: Running, pattern: RegExp): Promise<void> {
  while (!pattern.test(running.output())) await new Promise((resolve) => setTimeout(resolve, 10));
}

const tsxServer = (): [string, string[]] => [process.execPath, ['--import', 'tsx', 'src/app/server.ts']];

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits 0 on ${signal}`, async () => {
      const running = await startServer(...tsxServer());
      const page = await fetch(`http://127.0.0.1:${running.port}/demo`);
      assert.equal(page.status, 200);
      await page.text();
      running.child.kill(signal);
      const { code, signal: killedBy } = await running.exited;
      assert.equal(killedBy, null, running.output());
      assert.equal(code, 0, running.output());
      assert.match(running.output(), /shut down cleanly/);
      assert.equal(await canConnect(running.port), false);
    });
  }

  it('finishes a request in flight, and is not held up by an idle keep-alive connection', async () => {
    // A long grace period: if an idle connection held the server open, the exit would not come.
    const running = await startServer(...tsxServer(), { SHUTDOWN_GRACE_SECONDS: '600' });
    const idle = await fetch(`http://127.0.0.1:${running.port}/demo`); // keep-alive, then idle
    await idle.text();

    const body = 'username=ann&password=a';
    const socket = net.connect(running.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      `POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // the request is in the server now
    running.child.kill('SIGTERM');
    await waitForOutput(running, /SIGTERM received/);
    assert.equal(await canConnect(running.port), false, 'no new connections once stopping');
    socket.write(body.slice(5));
    await closed;
    assert.match(answer, /^HTTP\/1\.1 303 /, 'the request in flight got its answer');
    assert.match(answer, /\r\nSet-Cookie: sessid=[A-Za-z0-9_-]{24};/i);
    const { code } = await running.exited;
    assert.equal(code, 0, running.output());
  });

  it('exits 0 when SIGTERM or SIGINT goes to `npm start` (after `npm run build`)', { timeout: 180_000 }, async () => {
    const build = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const running = await startServer('npm', ['start']);
      const page = await fetch(`http://127.0.0.1:${running.port}/demo`);
      assert.equal(page.status, 200);
      await page.text();
      running.child.kill(signal); // to npm, not to node
      const { code, signal: killedBy } = await running.exited;
      assert.equal(killedBy, null, running.output());
      assert.equal(code, 0, running.output());
      assert.match(running.output(), new RegExp(`${signal} received`), 'the signal reached node');
      assert.match(running.output(), /shut down cleanly/);
      assert.equal(await canConnect(running.port), false, 'node is gone too');
    }
  });
});
