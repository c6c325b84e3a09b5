import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { missing } from '../support/services.js';
import {
  idOf,
  login,
  request,
  sessionCookie,
  startGaeApp,
  storedCount,
  storedEntity,
  visitCount,
  type RunningApp,
  type StoreMode,
  cleanSharedServices,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

/** 50 views of one session, 10 at a time, each on its own connection, spread over `apps`. */
/** 50 views of one session, 10 at a time, each on its own connection; the counts they showed, sorted. */
async function fiftyViews(apps: RunningApp[], cookie: string): Promise<number[]> {
  const shown: number[] = [];
  for (let batch = 0; batch < 5; batch++) {
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => request(apps[(batch * 10 + i) % apps.length]!.base, '/demo', { cookie })),
    );
    for (const reply of replies) {
      assert.equal(reply.status, 200, reply.body);
      const count = visitCount(reply);
      assert.ok(count, 'logged-in page');
      shown.push(count);
    }
  }
  return shown.sort((a, b) => a - b);
}

/** from, from + 1, ... to */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('the demo on the App Engine store', { skip }, () => {
  const services = cleanSharedServices();
  const running: RunningApp[] = [];
  const start = async (mode: StoreMode, env: Record<string, string> = {}): Promise<RunningApp> => {
    const app = await startGaeApp(mode, services.memcached.address, env);
    running.push(app);
    return app;
  };

  after(async () => {
    for (const app of running) await app.close();
  });

  it('runs end to end with SESSION_STORE=datastore (no memcached)', async () => {
    const app = await start('datastore-only');
    const cookie = await login(app.base, 'dora');
    const first = await request(app.base, '/demo', { cookie });
    assert.match(first.body, /data-testid="user-name">dora</);
    assert.equal(visitCount(first), 1);
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 2);
    assert.ok(await storedEntity(idOf(cookie)), 'the session is a Datastore entity');
    assert.equal(app.store.stats().memcacheRoundTrips, 0);

    const logout = await request(app.base, '/demo/logout', { method: 'POST', cookie });
    assert.equal(logout.status, 303);
    assert.match(String(logout.headers['set-cookie']), /sessid=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/);
    assert.equal(await storedEntity(idOf(cookie)), undefined);
    const after = await request(app.base, '/demo', { cookie });
    assert.equal(visitCount(after), undefined, 'the old cookie names no session');
  });

  for (const mode of ['sync', 'async', 'off', 'datastore-only'] as const) {
    it(`counts each of 50 concurrent views exactly once (${mode})`, async () => {
      const app = await start(mode);
      const cookie = await login(app.base);
      // Each view shows the count it stored: 1 to 50, each once.
      assert.deepEqual(await fiftyViews([app], cookie), range(1, 50));
      assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 51);
      if (mode !== 'off') {
        await app.store.flush();
        assert.equal(await storedCount(idOf(cookie)), 51, 'Datastore caught up');
      }
    });
  }

  it('carries one session across two app instances sharing memcached and Datastore, losing no view', async () => {
    const one = await start('sync');
    const two = await start('sync');
    const cookie = await login(one.base);
    assert.equal(visitCount(await request(two.base, '/demo', { cookie })), 1);
    assert.deepEqual(await fiftyViews([one, two], cookie), range(2, 51));
    assert.equal(visitCount(await request(one.base, '/demo', { cookie })), 52);
    // The second instance logs out; the first no longer knows the session.
    await request(two.base, '/demo/logout', { method: 'POST', cookie });
    assert.equal(visitCount(await request(one.base, '/demo', { cookie })), undefined);
  });

  it('survives flush_all without logging the user out, and an anonymous view touches no store', async () => {
    const app = await start('sync');
    const before = app.store.stats();
    const anonymous = await request(app.base, '/demo');
    assert.equal(anonymous.headers['set-cookie'], undefined);
    assert.deepEqual(app.store.stats(), before);
    const cookie = await login(app.base);
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 1);
    await services.memcached.flush();
    assert.equal(visitCount(await request(app.base, '/demo', { cookie })), 2);
    assert.equal(app.logger.count('info', 'session recovered from Datastore'), 1);
  });

  it('costs per request: memcache round trips and Datastore writes', async (t) => {
    const table: string[] = [];
    for (const mode of ['off', 'sync', 'async', 'datastore-only'] as const) {
      const app = await start(mode, { DATASTORE_ASYNC_INTERVAL_MS: '0' });
      const measure = async (action: () => Promise<unknown>): Promise<[number, number]> => {
        const before = app.store.stats();
        await action();
        await app.store.flush();
        const now = app.store.stats();
        return [now.memcacheRoundTrips - before.memcacheRoundTrips, now.datastoreWrites - before.datastoreWrites];
      };
      let cookie = '';
      const loginCost = await measure(async () => (cookie = await login(app.base)));
      const viewCost = await measure(() => request(app.base, '/demo', { cookie }));
      const logoutCost = await measure(() => request(app.base, '/demo/logout', { method: 'POST', cookie }));
      table.push(
        `${mode}: login ${loginCost.join('/')} counter view ${viewCost.join('/')} logout ${logoutCost.join('/')}`,
      );
      const memcache = mode !== 'datastore-only';
      const datastore = mode !== 'off';
      assert.deepEqual(loginCost, [memcache ? 1 : 0, datastore ? 1 : 0], `${mode} login`);
      assert.deepEqual(viewCost, [memcache ? 2 : 0, datastore ? 1 : 0], `${mode} counter view`);
      assert.deepEqual(logoutCost, [memcache ? 2 : 0, datastore ? 1 : 0], `${mode} logout`);
    }
    t.diagnostic(`[memcache round trips, Datastore writes] per request: ${table.join('; ')}`);
  });

  it('rotates nothing into a removed session: an old cookie after logout is cleared', async () => {
    const app = await start('async');
    const cookie = await login(app.base);
    await request(app.base, '/demo', { cookie });
    await request(app.base, '/demo/logout', { method: 'POST', cookie });
    await app.store.flush();
    const reply = await request(app.base, '/demo', { cookie });
    assert.equal(visitCount(reply), undefined);
    assert.equal(sessionCookie(reply), undefined);
    assert.equal(await storedEntity(idOf(cookie)), undefined, 'the pending write did not bring it back');
  });
});
