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
    assert.equal(app.backend.cache, undefined, 'no cache tier at all');

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
        await app.backend.gae?.flush();
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
    const traffic = () => [app.backend.cache?.roundTrips, app.backend.tier?.reads, app.backend.tier?.writes];
    const before = traffic();
    const anonymous = await request(app.base, '/demo');
    assert.equal(anonymous.headers['set-cookie'], undefined);
    assert.deepEqual(traffic(), before);
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
      const stats = (): [number, number, number] => [
        app.backend.cache?.roundTrips ?? 0,
        app.backend.tier?.reads ?? 0,
        app.backend.tier?.writes ?? 0,
      ];
      const measure = async (action: () => Promise<unknown>): Promise<[number, number, number]> => {
        const before = stats();
        await action();
        await app.backend.gae?.flush();
        const now = stats();
        return [now[0] - before[0], now[1] - before[1], now[2] - before[2]];
      };
      let cookie = '';
      const loginCost = await measure(async () => (cookie = await login(app.base, `user-${mode}`)));
      const viewCost = await measure(() => request(app.base, '/demo', { cookie }));
      const logoutCost = await measure(() => request(app.base, '/demo/logout', { method: 'POST', cookie }));
      table.push(
        `${mode}: login ${loginCost.join('/')} counter view ${viewCost.join('/')} logout ${logoutCost.join('/')}`,
      );
      // [cache round trips, Datastore reads (lookups, queries), Datastore writes]
      const expected = {
        // login: cache ADD + the owner index (memcache: read, then a CAS write; with Datastore
        // on, an index that is missing is rebuilt first from Datastore's `own` index: one query). View: GAT + CAS SET, and
        // the page's "signed in on N browsers" costs one index read (the one session listed
        // is the request's own, not read again). Logout: GAT, tombstone, DELETE.
        off: { login: [3, 0, 0], view: [3, 0, 0], logout: [3, 0, 0] },
        sync: { login: [4, 2, 1], view: [3, 1, 1], logout: [3, 0, 1] },
        // async: the late first backup checks the tombstone first (it may land after a logout).
        async: { login: [5, 2, 1], view: [3, 1, 1], logout: [3, 0, 1] },
        // Datastore only: insert; one lookup + a commit based on its version, and the owner query.
        'datastore-only': { login: [0, 0, 1], view: [0, 2, 1], logout: [0, 1, 1] },
      }[mode];
      assert.deepEqual(loginCost, expected.login, `${mode} login`);
      assert.deepEqual(viewCost, expected.view, `${mode} counter view`);
      assert.deepEqual(logoutCost, expected.logout, `${mode} logout`);
    }
    t.diagnostic(`[cache round trips, Datastore reads, Datastore writes] per request: ${table.join('; ')}`);
  });

  it('rotates nothing into a removed session: an old cookie after logout is cleared', async () => {
    const app = await start('async');
    const cookie = await login(app.base);
    await request(app.base, '/demo', { cookie });
    await request(app.base, '/demo/logout', { method: 'POST', cookie });
    await app.backend.gae?.flush();
    const reply = await request(app.base, '/demo', { cookie });
    assert.equal(visitCount(reply), undefined);
    assert.equal(sessionCookie(reply), undefined);
    assert.equal(await storedEntity(idOf(cookie)), undefined, 'the pending write did not bring it back');
  });
});
