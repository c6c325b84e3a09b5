import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missing, startMemcached, type Memcached } from '../support/services.js';
import { login, request, sleep, startGaeApp, useEmulator, visitCount, type RunningApp } from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

describe('a memcache blip', { skip }, () => {
  const running: RunningApp[] = [];
  let memcached: Memcached;

  before(async () => {
    await useEmulator();
    memcached = await startMemcached();
  });
  after(async () => {
    for (const app of running) await app.close();
    if (memcached.pid) process.kill(memcached.pid, 'SIGCONT');
    await memcached.stop();
  });

  it('a memcached that pauses and comes back does not roll the count back', async (t) => {
    const app = await startGaeApp('sync', memcached.address, {}, { cache: { openMs: 500 } });
    running.push(app);
    const cookie = await login(app.base);
    const view = async () => visitCount(await request(app.base, '/demo', { cookie }));
    const counts = [await view(), await view()];
    const pid = memcached.pid;
    assert.ok(pid, 'the private memcached runs');
    // A blip: memcached stops answering, so the store saves these views in Datastore only.
    process.kill(pid, 'SIGSTOP');
    try {
      counts.push(await view(), await view());
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await sleep(600); // past the window in which the store leaves memcache alone
    counts.push(await view(), await view(), await view());
    t.diagnostic(`counts across the blip: ${counts.join(', ')}`);
    assert.deepEqual(counts, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(app.logger.count('info', 'memcache reachable again'), 1);
  });
});
