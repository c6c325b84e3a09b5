/**
 * Issue 11: the demo on SESSION_STORE=valkey, tried over HTTP against real servers — the shared
 * standalone Valkey and 3-node cluster, private Valkeys to kill and pause, a listener that never
 * answers, and the Datastore emulator. The demo runs in this process (startGaeApp, to shorten
 * the fail-fast window where a test must wait it out) or as a server process of its own, as
 * `npm start` runs it, configured only by environment variables.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  missing,
  sharedValkey,
  sharedValkeyCluster,
  startHangingServer,
  startValkey,
  type Valkey,
  type ValkeyCluster,
} from '../support/services.js';
import {
  clearsCookie,
  idOf,
  login,
  request,
  sessionCookie,
  sessionCount,
  sleep,
  startGaeApp,
  startServerProcess,
  storedCount,
  storedEntity,
  useEmulator,
  viewLoops,
  visitCount,
  type BackendOptions,
  type CacheServer,
  type Reply,
  type RunningApp,
  type ServerProcess,
  type StoreMode,
} from './helpers.js';

const skip = missing('valkey', 'datastore-emulator');

/** Generous bound on a request while Valkey hangs: one call's deadline (1 s) and some slack. */
const BOUNDED_MS = 2500;

/** 50 views of one session, 10 at a time, each on its own connection, spread over `bases`; the counts shown, sorted. */
async function fiftyViews(bases: string[], cookie: string): Promise<number[]> {
  const shown: number[] = [];
  for (let batch = 0; batch < 5; batch++) {
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => request(bases[(batch * 10 + i) % bases.length]!, '/demo', { cookie })),
    );
    for (const reply of replies) {
      assert.equal(reply.status, 200, reply.body);
      const count = visitCount(reply);
      assert.ok(count, 'a logged-in page');
      shown.push(count);
    }
  }
  return shown.sort((a, b) => a - b);
}

/** from, from + 1, ... to */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A POST of the demo's forms. */
function post(base: string, path: string, cookie?: string, form?: Record<string, string>): Promise<Reply> {
  return request(base, path, { method: 'POST', cookie, ...(form ? { form } : {}) });
}

/** Asserts an anonymous demo page: a 200 with the login form, and no count. */
function assertAnonymous(reply: Reply, message: string): void {
  assert.equal(reply.status, 200, `${message}: status`);
  assert.equal(visitCount(reply), undefined, `${message}: no count shown`);
  assert.match(reply.body, /form method="post" action="\/demo\/login"/, `${message}: the login form`);
}

/** A unique user name per test: the owner index (session-count) is kept across tests. */
let users = 0;
const user = (label: string): string => `${label}-${process.pid}-${++users}`;

describe('the demo on the Valkey store', { skip }, () => {
  let valkey: Valkey;
  let cluster: ValkeyCluster;
  let emulatorHost: string;
  const apps: RunningApp[] = [];
  const processes: ServerProcess[] = [];
  const cleanups: (() => unknown)[] = [];

  const standalone = (): CacheServer => ({ valkeyUrl: valkey.url, cluster: false });
  const clustered = (): CacheServer => ({ valkeyUrl: cluster.url, cluster: true });
  const app = async (
    mode: StoreMode,
    server: CacheServer,
    env: Record<string, string> = {},
    options: BackendOptions = {},
  ): Promise<RunningApp> => {
    const started = await startGaeApp(mode, server, env, options);
    apps.push(started);
    return started;
  };
  /** A server process on Valkey with Datastore on the emulator; `env` overrides. */
  const serverProcess = async (env: Record<string, string>): Promise<ServerProcess> => {
    const started = await startServerProcess({
      SESSION_STORE: 'valkey',
      SESSION_DATASTORE: 'sync',
      DATASTORE_EMULATOR_HOST: emulatorHost,
      ...env,
    });
    processes.push(started);
    return started;
  };

  before(async () => {
    [valkey, cluster, emulatorHost] = await Promise.all([
      sharedValkey(),
      sharedValkeyCluster(),
      useEmulator().then((emulator) => emulator.address),
    ]);
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    for (const running of apps) await running.close();
    for (const cleanup of cleanups) await cleanup();
  });

  describe('concurrent views of one session', () => {
    const cases: [string, () => CacheServer, StoreMode][] = [
      ['standalone', standalone, 'off'],
      ['standalone', standalone, 'sync'],
      ['standalone', standalone, 'async'],
      ['cluster', clustered, 'off'],
      ['cluster', clustered, 'sync'],
    ];
    for (const [topology, server, mode] of cases) {
      it(`counts each of 50 views sent 10 at a time exactly once (${topology}, Datastore ${mode})`, async () => {
        const demo = await app(mode, server());
        const cookie = await login(demo.base, user('fifty'));
        assert.deepEqual(await fiftyViews([demo.base], cookie), range(1, 50));
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie })), 51);
        if (mode !== 'off') {
          await demo.backend.gae?.flush();
          assert.equal(await storedCount(idOf(cookie)), 51, 'Datastore holds the last count');
        }
      });
    }
  });

  describe('two server processes sharing the cluster (VALKEY_CLUSTER=true)', () => {
    let one: ServerProcess;
    let two: ServerProcess;
    before(async () => {
      const env = { VALKEY_URL: cluster.url, VALKEY_CLUSTER: 'true' };
      [one, two] = await Promise.all([serverProcess(env), serverProcess(env)]);
    });

    it('count each of 50 views sent 10 at a time, spread over both, exactly once', async () => {
      const cookie = await login(one.base, user('pair'));
      assert.equal(visitCount(await request(two.base, '/demo', { cookie })), 1, 'the other instance knows the session');
      assert.deepEqual(await fiftyViews([one.base, two.base], cookie), range(2, 51));
      assert.equal(visitCount(await request(one.base, '/demo', { cookie })), 52);
      assert.equal(await storedCount(idOf(cookie)), 52, 'Datastore (sync) holds the last count');
    });

    it('show two sessions for two logins of one name, on either instance', async () => {
      const name = user('twice');
      const first = await login(one.base, name);
      const second = await login(two.base, name);
      for (const [base, cookie] of [
        [one.base, first],
        [two.base, second],
        [two.base, first],
      ] as const) {
        const page = await request(base, '/demo', { cookie });
        assert.match(page.body, new RegExp(`data-testid="user-name">${name}<`));
        assert.equal(sessionCount(page), 2);
      }
    });

    it('a rotation on one kills the old cookie on the other, and the new one carries the count', async () => {
      const cookie = await login(one.base, user('rotate'));
      assert.equal(visitCount(await request(two.base, '/demo', { cookie })), 1);
      const rotated = await post(one.base, '/demo/rotate', cookie);
      assert.equal(rotated.status, 303);
      const renewed = sessionCookie(rotated);
      assert.ok(renewed, 'a new cookie');
      assert.notEqual(renewed, cookie);

      const old = await request(two.base, '/demo', { cookie });
      assertAnonymous(old, 'the old cookie on the other instance');
      assert.ok(clearsCookie(old), 'the old cookie is cleared');
      assert.equal(visitCount(await request(two.base, '/demo', { cookie: renewed })), 2, 'the count continues');
      assert.equal(visitCount(await request(one.base, '/demo', { cookie: renewed })), 3);
      assertAnonymous(await request(one.base, '/demo', { cookie }), 'the old cookie on the first instance');
      assert.equal(await storedEntity(idOf(cookie)), undefined, 'the old ID is not in Datastore');
    });

    it('"log out everywhere" on one ends the other browser\'s session on the other', async () => {
      const name = user('everywhere');
      const mine = await login(one.base, name);
      const theirs = await login(two.base, name);
      assert.equal(visitCount(await request(two.base, '/demo', { cookie: theirs })), 1);
      const reply = await post(one.base, '/demo/logout-all', mine);
      assert.equal(reply.status, 303);
      assert.ok(clearsCookie(reply), 'this browser’s cookie is cleared');

      const other = await request(two.base, '/demo', { cookie: theirs });
      assertAnonymous(other, 'the other browser on the other instance');
      assert.ok(clearsCookie(other), 'the other browser’s cookie is cleared');
      assertAnonymous(await request(two.base, '/demo', { cookie: mine }), 'this browser on the other instance');
      assert.equal(await storedEntity(idOf(theirs)), undefined, 'gone from Datastore too');
      assert.equal(await storedEntity(idOf(mine)), undefined);
    });
  });

  describe('FLUSHALL', () => {
    const cases: [string, () => CacheServer, () => Promise<void>][] = [
      ['standalone', standalone, () => valkey.flush()],
      ['cluster', clustered, () => cluster.flush()],
    ];
    for (const [topology, server, flush] of cases) {
      it(`keeps the user logged in and counting with Datastore sync (${topology})`, async () => {
        const demo = await app('sync', server());
        const name = user('flushed');
        const cookie = await login(demo.base, name);
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie })), 1);
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie })), 2);
        await flush();
        const page = await request(demo.base, '/demo', { cookie });
        assert.equal(page.status, 200);
        assert.equal(visitCount(page), 3, 'still logged in, the count continues');
        assert.match(page.body, new RegExp(`data-testid="user-name">${name}<`));
        assert.equal(sessionCookie(page), undefined, 'the cookie stays as it is');
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie })), 4, 'and back in Valkey');
      });

      it(`logs the user out, clearing the cookie, with Datastore off (${topology})`, async () => {
        const demo = await app('off', server());
        const cookie = await login(demo.base, user('flushed-off'));
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie })), 1);
        await flush();
        const page = await request(demo.base, '/demo', { cookie });
        assertAnonymous(page, 'after FLUSHALL');
        assert.ok(clearsCookie(page), 'the cookie is cleared');
        const again = await post(demo.base, '/demo/logout', cookie);
        assert.ok(again.status < 500, `a logout after FLUSHALL answers ${again.status}`);
        const fresh = await login(demo.base, user('flushed-off'));
        assert.equal(visitCount(await request(demo.base, '/demo', { cookie: fresh })), 1, 'a new login works');
      });
    }
  });

  describe('a private Valkey killed or paused under eight clients (server process, Datastore sync)', () => {
    let own: Valkey;
    let demo: ServerProcess;
    before(async () => {
      own = await startValkey();
      demo = await serverProcess({ VALKEY_URL: own.url });
    });
    after(async () => {
      if (own.pid) process.kill(own.pid, 'SIGCONT');
      await own.stop();
    });

    for (const fault of ['restart', 'pause'] as const) {
      const what = fault === 'restart' ? 'is killed and restarted' : 'pauses 3 s (SIGSTOP, SIGCONT)';
      it(`loses no update and shows no count twice when Valkey ${what}`, async () => {
        const cookie = await login(demo.base, user(`unlucky-${fault}`));
        const done = (async () => {
          await sleep(500);
          if (fault === 'restart') {
            await own.stop();
            await sleep(3000);
            await own.start();
          } else {
            process.kill(own.pid!, 'SIGSTOP');
            await sleep(3000);
            process.kill(own.pid!, 'SIGCONT');
          }
          await sleep(4000); // past the 3 s fail-fast window: back on Valkey
        })();
        const { counts, statuses, anonymous } = await viewLoops(demo.base, cookie, 8, done);
        const final = visitCount(await request(demo.base, '/demo', { cookie }));
        const tally: Record<number, number> = {};
        for (const status of statuses) tally[status] = (tally[status] ?? 0) + 1;
        assert.ok(counts.length > 8, `views went on during the fault (statuses: ${JSON.stringify(tally)})`);
        // What the users saw: each count once, never logged out, and every view answered 200 counted.
        assert.deepEqual(
          { shownTwice: counts.filter((c, i) => counts.indexOf(c) !== i), loggedOutViews: anonymous, final },
          { shownTwice: [], loggedOutViews: 0, final: counts.length + 1 },
          `statuses: ${JSON.stringify(tally)}`,
        );
      });
    }
  });

  describe('a Valkey that accepts connections and never answers', () => {
    let hang: { address: string; close(): void };
    // A short fail-fast window, so that the test can wait it out.
    const OPEN_MS = 800;
    before(async () => {
      hang = await startHangingServer();
      cleanups.push(() => hang.close());
    });
    const hung = (): CacheServer => ({ valkeyUrl: `redis://${hang.address}`, cluster: false });

    it('with Datastore off: a login answers 503 without a cookie in about a second, anonymous pages render fast', async () => {
      const demo = await app('off', hung(), {}, { cache: { openMs: OPEN_MS } });
      const form = { username: user('hung-off'), password: 'a' };
      const first = await post(demo.base, '/demo/login', undefined, form);
      assert.equal(first.status, 503);
      assert.equal(first.headers['set-cookie'], undefined, 'no session cookie');
      assert.ok(first.ms < BOUNDED_MS, `the login answered in ${first.ms} ms`);

      const anonymous = await request(demo.base, '/demo');
      assertAnonymous(anonymous, 'an anonymous page');
      assert.ok(anonymous.ms < 1000, `an anonymous page took ${anonymous.ms} ms`);
      const stale = await request(demo.base, '/demo', { cookie: 'sessid=AAAAAAAAAAAAAAAAAAAAAAAA' });
      assertAnonymous(stale, 'a page with a cookie');
      assert.match(stale.body, /data-testid="store-unavailable"/, 'says sessions are unavailable');

      await sleep(OPEN_MS + 200); // the fail-fast window is over: Valkey is tried (and waited for) again
      const later = await post(demo.base, '/demo/login', undefined, form);
      assert.equal(later.status, 503);
      assert.equal(later.headers['set-cookie'], undefined);
      assert.ok(later.ms < BOUNDED_MS, `a login after the window answered in ${later.ms} ms`);
    });

    it('with Datastore sync: logins and views work from Datastore, each bounded', async () => {
      const demo = await app('sync', hung(), {}, { cache: { openMs: OPEN_MS } });
      const times: number[] = [];
      const reply = await post(demo.base, '/demo/login', undefined, { username: user('hung-sync'), password: 'a' });
      times.push(reply.ms);
      assert.equal(reply.status, 303, 'the login is stored in Datastore');
      const cookie = sessionCookie(reply);
      assert.ok(cookie);
      for (let i = 1; i <= 4; i++) {
        if (i === 3) await sleep(OPEN_MS + 200); // past the window: Valkey is tried again
        const view = await request(demo.base, '/demo', { cookie });
        times.push(view.ms);
        assert.equal(visitCount(view), i);
      }
      const anonymous = await request(demo.base, '/demo');
      assertAnonymous(anonymous, 'an anonymous page');
      assert.ok(anonymous.ms < 1000, `an anonymous page took ${anonymous.ms} ms`);
      const worst = Math.max(...times);
      assert.ok(worst < BOUNDED_MS, `no request waits much over a second (times ${times.join(', ')} ms)`);
      assert.equal(await storedCount(idOf(cookie)), 4);
    });
  });

  it('with Valkey up and Datastore down, sessions keep working from Valkey', async () => {
    const healthy = await app('sync', standalone());
    const cookie = await login(healthy.base, user('dead-datastore'));
    // A second instance on the same Valkey whose Datastore is not there.
    const saved = process.env['DATASTORE_EMULATOR_HOST'];
    process.env['DATASTORE_EMULATOR_HOST'] = '127.0.0.1:1';
    let dead: RunningApp;
    try {
      dead = await app('sync', standalone(), {}, { datastore: { operationTimeoutMs: 1500 } });
    } finally {
      process.env['DATASTORE_EMULATOR_HOST'] = saved;
    }
    for (let i = 1; i <= 3; i++) {
      const view = await request(dead.base, '/demo', { cookie });
      assert.equal(view.status, 200);
      assert.equal(visitCount(view), i);
    }
    const fresh = await login(dead.base, user('dead-datastore-new'));
    assert.equal(visitCount(await request(dead.base, '/demo', { cookie: fresh })), 1, 'a login works on Valkey alone');
    assert.equal(visitCount(await request(healthy.base, '/demo', { cookie })), 4, 'the other instance sees every view');
    const logout = await post(dead.base, '/demo/logout', fresh);
    assert.equal(logout.status, 303, 'a logout works on Valkey alone');
    assert.ok(clearsCookie(logout), 'the logout clears the cookie');
    assertAnonymous(await request(dead.base, '/demo', { cookie: fresh }), 'after logout');
    assert.equal(dead.logger.count('warn', 'Datastore unavailable'), 1, 'the outage is logged once');
  });

  it('SIGTERM with asynchronous Datastore writes pending: exits 0 with every acknowledged view in Datastore', async () => {
    const results = await Promise.all(
      [
        { VALKEY_URL: valkey.url, VALKEY_CLUSTER: 'false' },
        { VALKEY_URL: cluster.url, VALKEY_CLUSTER: 'true' },
      ].map(async (topology) => {
        const server = await serverProcess({
          ...topology,
          SESSION_DATASTORE: 'async',
          // Long enough that the views' writes are still waiting when the signal comes.
          DATASTORE_ASYNC_INTERVAL_MS: '60000',
          SHUTDOWN_GRACE_SECONDS: '5',
          LOG_LEVEL: 'info',
        });
        const cookie = await login(server.base, user('sigterm'));
        let count: number | undefined;
        for (let i = 0; i < 5; i++) count = visitCount(await request(server.base, '/demo', { cookie }));
        assert.equal(count, 5);
        server.kill('SIGTERM');
        return { cookie, code: await server.exited, output: server.output(), topology: topology.VALKEY_CLUSTER };
      }),
    );
    for (const { cookie, code, output, topology } of results) {
      assert.equal(code, 0, `cluster ${topology}: ${output}`);
      assert.match(output, /shut down cleanly/);
      assert.equal(await storedCount(idOf(cookie)), 5, `cluster ${topology}: every acknowledged view in Datastore`);
    }
  });

  it('starts and serves at once with VALKEY_URL where nothing listens, or where nothing answers', async () => {
    const hang = await startHangingServer();
    cleanups.push(() => hang.close());
    const servers = await Promise.all([
      serverProcess({ VALKEY_URL: `redis://127.0.0.1:${await freePort()}` }),
      serverProcess({ VALKEY_URL: `redis://${hang.address}` }),
    ]);
    for (const server of servers) {
      const anonymous = await request(server.base, '/demo');
      assertAnonymous(anonymous, 'an anonymous page');
      assert.equal(anonymous.headers['set-cookie'], undefined);
      assert.ok(anonymous.ms < 1000, `an anonymous page took ${anonymous.ms} ms`);
      const reply = await post(server.base, '/demo/login', undefined, { username: user('no-valkey'), password: 'a' });
      assert.equal(reply.status, 303, 'a login works from Datastore');
      assert.ok(reply.ms < BOUNDED_MS, `the login answered in ${reply.ms} ms`);
      const cookie = sessionCookie(reply);
      assert.ok(cookie);
      assert.equal(visitCount(await request(server.base, '/demo', { cookie })), 1);
    }
  });
});
