import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missing, startHangingServer, startMemcached, type Memcached } from '../support/services.js';
import { login, request, sleep, startGaeApp, useEmulator, visitCount, type RunningApp } from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

describe('a hung Datastore', { skip }, () => {
  const running: RunningApp[] = [];
  let memcached: Memcached;
  let hang: { address: string; close(): void };

  before(async () => {
    await useEmulator();
    memcached = await startMemcached();
    // A "Datastore" that accepts connections and never answers.
    hang = await startHangingServer();
  });
  after(async () => {
    for (const app of running) await app.close();
    hang.close();
    await memcached.stop();
  });

  it('costs one bounded wait per outage window, not one per view', async (t) => {
    const saved = process.env['DATASTORE_EMULATOR_HOST'];
    process.env['DATASTORE_EMULATOR_HOST'] = hang.address;
    let app: RunningApp;
    try {
      app = await startGaeApp('sync', memcached.address);
    } finally {
      process.env['DATASTORE_EMULATOR_HOST'] = saved;
    }
    running.push(app);
    const cookie = await login(app.base);
    await sleep(3100); // past the window the login's failed write opened: the first view waits again
    const times: number[] = [];
    const started = Date.now();
    for (let i = 1; i <= 5; i++) {
      const reply = await request(app.base, '/demo', { cookie });
      assert.equal(visitCount(reply), i, 'memcache carries the session');
      times.push(reply.ms);
    }
    const total = Date.now() - started;
    t.diagnostic(`5 sequential views with Datastore hung (ms): ${times.join(', ')}; total ${total}`);
    assert.ok(total < 6000, `five views take a few seconds at most, not one wait each (${total} ms)`);

    await sleep(3100); // a new window: four views at once wait for one failure together, not in turn
    const concurrent = await Promise.all([1, 2, 3, 4].map(() => request(app.base, '/demo', { cookie })));
    t.diagnostic(`4 concurrent views (ms): ${concurrent.map((reply) => reply.ms).join(', ')}`);
    assert.deepEqual(concurrent.map(visitCount).sort(), [6, 7, 8, 9]);
    const slowest = Math.max(...concurrent.map((reply) => reply.ms));
    assert.ok(slowest < 6000, `four concurrent views do not queue one wait behind another (${slowest} ms)`);
    assert.equal(app.logger.count('warn', 'Datastore unavailable'), 1, 'the outage is logged once');
  });
});
