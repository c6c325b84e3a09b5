/**
 * Connections cannot be held open for free: the real server process, with its timeouts
 * shortened through HTTP_REQUEST_TIMEOUT_SECONDS and HTTP_KEEP_ALIVE_TIMEOUT_SECONDS, cuts off
 * a client that dribbles its request or sends nothing, and closes an idle keep-alive connection.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Generous: the timeouts below are 1 s; this only proves the connection does not stay open. */
const CUT_OFF_WITHIN_MS = 10_000;

interface Server {
  port: number;
  stop(): Promise<void>;
}

/** Starts `src/app/server.ts` with PORT=0 and these variables; reads the port from its log. */
async function startServer(env: Record<string, string>): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/app/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', SESSION_STORE: 'memory', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on http:\/\/localhost:(\d+)\/demo/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    void exited.then(() => reject(new Error(`server exited before listening:\n${output}`)));
  });
  return {
    port,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

interface Connection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received: () => string;
  /** Resolves with the time it took when the server closes the connection; rejects after `CUT_OFF_WITHIN_MS`. */
  closed: Promise<number>;
}

function connect(port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const opened = Date.now();
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    // A reset instead of a FIN is a cut-off as well.
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolveClose, rejectClose) => {
      const timer = setTimeout(() => {
        socket.destroy();
        rejectClose(new Error(`still open after ${CUT_OFF_WITHIN_MS} ms; received ${JSON.stringify(text)}`));
      }, CUT_OFF_WITHIN_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        resolveClose(Date.now() - opened);
      });
    });
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

/** Writes one byte every 100 ms until the socket closes: a slow-loris client. */
function dribble(socket: net.Socket): void {
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) clearInterval(timer);
    else socket.write('a');
  }, 100);
  socket.once('close', () => clearInterval(timer));
}

describe('server timeouts', () => {
  let server: Server;
  before(async () => {
    server = await startServer({ HTTP_REQUEST_TIMEOUT_SECONDS: '1', HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '1' });
  });
  after(() => server.stop());

  it('cuts off a client that sends its headers and then dribbles the body: 408, connection closed', async () => {
    const client = await connect(server.port);
    client.socket.write(
      'POST /demo/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
        'Content-Length: 1000\r\n\r\nusername=',
    );
    dribble(client.socket);
    await client.closed;
    assert.match(client.received(), /^HTTP\/1\.1 408 /);
    assert.doesNotMatch(client.received(), /Set-Cookie/i, 'no session was created');
  });

  it('cuts off a client that dribbles its headers', async () => {
    const client = await connect(server.port);
    client.socket.write('GET /demo HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    dribble(client.socket);
    await client.closed;
    assert.doesNotMatch(client.received(), /^HTTP\/1\.1 200 /);
  });

  it('closes a connection that never sends a request', async () => {
    const client = await connect(server.port);
    await client.closed;
    assert.equal(client.received(), '');
  });

  it('closes a keep-alive connection left idle after its answer', async () => {
    const client = await connect(server.port);
    client.socket.write('GET /demo HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await client.closed;
    assert.match(client.received(), /^HTTP\/1\.1 200 /, 'the request itself was answered');
    assert.match(client.received(), /Keep-Alive: timeout=1\b/i, 'and the client was told how long the server waits');
  });

  it('still serves everyone else', async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/demo`);
    assert.equal(response.status, 200);
    await response.text();
  });
});

describe('keep-alive longer than the request timeout', () => {
  let server: Server;
  before(async () => {
    server = await startServer({ HTTP_REQUEST_TIMEOUT_SECONDS: '1', HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '60' });
  });
  after(() => server.stop());

  it('serves the next request on a connection that sat idle past the request timeout', async () => {
    const client = await connect(server.port);
    const request = 'GET /demo HTTP/1.1\r\nHost: localhost\r\n\r\n';
    client.socket.write(request);
    // The request timeout counts from a request's first byte, not from the previous answer:
    // the front end's pooled connections must survive their idle time.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    client.socket.write(request);
    const answers = (): number => client.received().match(/HTTP\/1\.1 200 /g)?.length ?? 0;
    for (const until = Date.now() + CUT_OFF_WITHIN_MS; answers() < 2 && !client.socket.destroyed;) {
      assert.ok(Date.now() < until, 'the second answer came');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    client.socket.destroy();
    assert.equal(answers(), 2, client.received());
  });
});
