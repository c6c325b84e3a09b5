import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missing, startHangingServer, startMemcached, type Memcached } from '../support/services.js';
import { eventually, login, request, startGaeApp, useEmulator, visitCount, type RunningApp } from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

describe('the App Engine store when a backend fails', { skip }, () => {
  const running: RunningApp[] = [];
  let hang: { address: string; close(): void };
  let memcached: Memcached;

  before(async () => {
    await useEmulator();
    memcached = await startMemcached();
    // A "memcached" that accepts connections and never answers: memjs alone would wait forever.
    hang = await startHangingServer();
  });
  after(async () => {
    for (const app of running) await app.close();
    hang.close();
    await memcached.stop();
  });

  it('serves from Datastore while memcached is stopped, and goes back to memcache when it returns', async () => {
    const app = await startGaeApp('sync', memcached.address, {}, { cache: { openMs: 200 } });
    running.push(app);
    const cookie = await login(app.base);
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 1);
    await memcached.stop();
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 2, 'still logged in');
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 3);
    const other = await login(app.base, 'bob');
    assert.equal(
      visitCount(await request(app.base, '/demo', { cookie: other })),
      1,
      'a login works on Datastore alone',
    );
    assert.equal(app.logger.count('warn', 'memcache unavailable'), 1, 'the outage is logged once');

    await memcached.start();
    let count = 3;
    await eventually(async () => {
      const before = app.backend.cache!.roundTrips;
      const view = visitCount(await request(app.base, '/demo', { cookie }));
      assert.equal(view, count + 1, 'every view while memcached comes back counts once');
      count++;
      return app.backend.cache!.roundTrips > before && app.logger.count('info', 'memcache reachable again') > 0;
    });
    const trips = app.backend.cache!.roundTrips;
    const reads = app.backend.tier!.reads;
    const reply = await request(app.base, '/demo', { cookie });
    assert.equal(visitCount(reply), count + 1, 'the empty memcached got the session back from Datastore');
    // GAT + CAS SET, and the page's session-count index read (rebuilt once from Datastore).
    assert.equal(app.backend.cache!.roundTrips, trips + 3, 'read and written in memcache again');
    assert.equal(app.backend.tier!.reads, reads + 1, 'Datastore only for the backup write');
  });

  it('keeps a request bounded with memcached hung, and the page renders', async (t) => {
    const address = hang.address;
    const app = await startGaeApp('sync', address);
    running.push(app);
    const times: number[] = [];
    const timed = async (reply: Promise<Awaited<ReturnType<typeof request>>>) => {
      const result = await reply;
      times.push(result.ms);
      return result;
    };
    const loginReply = await timed(
      request(app.base, '/demo/login', { method: 'POST', form: { username: 'h', password: 'a' } }),
    );
    assert.equal(loginReply.status, 303, 'the login is stored in Datastore');
    const cookie = String(loginReply.headers['set-cookie']).split(';')[0]!;
    for (let i = 1; i <= 4; i++) {
      const view = await timed(request(app.base, '/demo', { cookie }));
      assert.equal(visitCount(view), i);
      if (i === 2) await new Promise((resolve) => setTimeout(resolve, 3100)); // let the store try memcache again
    }
    const anonymous = await timed(request(app.base, '/demo'));
    assert.equal(anonymous.status, 200);
    const worst = Math.max(...times);
    t.diagnostic(`request times with memcached hung (ms): ${times.join(', ')}; worst ${worst}`);
    assert.ok(worst < 2500, `no request waits much over a second (worst ${worst} ms)`);
  });

  it('with memcache up and Datastore down, sessions keep working from memcache', async () => {
    const app = await startGaeApp('sync', memcached.address);
    running.push(app);
    const cookie = await login(app.base);
    // A second instance on the same memcached whose Datastore is not there.
    const dead = await startDeadDatastoreApp(memcached.address);
    running.push(dead);
    assert.equal(visitCount(await request(dead.base, '/demo', { cookie })), 1);
    assert.equal(visitCount(await request(dead.base, '/demo', { cookie })), 2);
    const fresh = await login(dead.base, 'carol');
    assert.equal(visitCount(await request(dead.base, '/demo', { cookie: fresh })), 1);
    assert.equal(dead.logger.count('warn', 'Datastore unavailable'), 1, 'logged once');
  });

  it('with every tier down, a login answers 503 without a cookie and anonymous pages render', async () => {
    const dead = await startDeadDatastoreApp('127.0.0.1:1');
    running.push(dead);
    const reply = await request(dead.base, '/demo/login', { method: 'POST', form: { username: 'z', password: 'a' } });
    assert.equal(reply.status, 503);
    assert.equal(reply.headers['set-cookie'], undefined);
    assert.equal((await request(dead.base, '/demo')).status, 200);
    const page = await request(dead.base, '/demo', { cookie: 'sessid=AAAAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(page.status, 200);
    assert.match(page.body, /data-testid="store-unavailable"/);
  });
});

/** An app whose Datastore client points at a port where nothing listens. */
async function startDeadDatastoreApp(memcachedAddress: string): Promise<RunningApp> {
  const saved = process.env['DATASTORE_EMULATOR_HOST'];
  process.env['DATASTORE_EMULATOR_HOST'] = '127.0.0.1:1';
  try {
    return await startGaeApp('sync', memcachedAddress, {}, { datastore: { operationTimeoutMs: 1500 } });
  } finally {
    process.env['DATASTORE_EMULATOR_HOST'] = saved;
  }
}
