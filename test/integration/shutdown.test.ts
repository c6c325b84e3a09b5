import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { freePort, missing, type Memcached } from '../support/services.js';
import { idOf, login, PROJECT_ID, request, sharedMemcached, storedCount, useEmulator, visitCount } from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('SIGTERM with asynchronous Datastore writes pending', { skip }, () => {
  let memcached: Memcached;
  let emulatorHost: string;
  before(async () => {
    memcached = await sharedMemcached();
    emulatorHost = (await useEmulator()).address;
  });

  it('writes everything acknowledged before exiting 0', async () => {
    const port = await freePort();
    const server = spawn(process.execPath, ['--import', 'tsx', 'src/app/server.ts'], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        SESSION_STORE: 'memcache',
        SESSION_DATASTORE: 'async',
        // Long enough that the views' writes are still waiting when the signal comes.
        DATASTORE_ASYNC_INTERVAL_MS: '60000',
        MEMCACHE_SERVERS: memcached.address,
        DATASTORE_EMULATOR_HOST: emulatorHost,
        DATASTORE_PROJECT_ID: PROJECT_ID,
        SHUTDOWN_GRACE_SECONDS: '5',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    const until = Date.now() + 30_000;
    while (!output.includes('listening')) {
      assert.ok(Date.now() < until, `server did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const cookie = await login(base);
    let count = 0;
    for (let i = 0; i < 5; i++) count = visitCount(await request(base, '/demo', { cookie })) ?? 0;
    assert.equal(count, 5);
    server.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    assert.match(output, /shut down cleanly/);

    assert.equal(await storedCount(idOf(cookie)), 5, 'the session reached Datastore with every acknowledged view');
  });
});
