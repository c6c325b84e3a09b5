/**
 * The reliability promises of issue 10, tried from outside as an attacker or an unlucky
 * operator would: real server processes (as `npm start` runs them), real memcached and
 * Datastore emulator, concurrent clients. Each failed on the code before the store contract.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missing, startMemcached, type Memcached } from '../support/services.js';
import {
  idOf,
  login,
  request,
  sleep,
  startServerProcess,
  storedEntity,
  useEmulator,
  viewLoops,
  visitCount,
  type ServerProcess,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

describe('reliability under concurrency, restarts and pauses', { skip }, () => {
  let emulatorHost: string;
  let memcached: Memcached;
  const servers: ServerProcess[] = [];
  const server = async (env: Record<string, string>): Promise<ServerProcess> => {
    const started = await startServerProcess({
      MEMCACHE_SERVERS: memcached.address,
      DATASTORE_EMULATOR_HOST: emulatorHost,
      DATASTORE_ASYNC_INTERVAL_MS: '200',
      ...env,
    });
    servers.push(started);
    return started;
  };

  before(async () => {
    emulatorHost = (await useEmulator()).address;
    memcached = await startMemcached();
  });
  after(async () => {
    for (const s of servers) await s.stop();
    if (memcached.pid) process.kill(memcached.pid, 'SIGCONT');
    await memcached.stop();
  });

  for (const mode of ['sync', 'async'] as const) {
    it(`a logout is final while six clients keep viewing the session (memcache + Datastore ${mode})`, async () => {
      const app = await server({ SESSION_STORE: 'memcache', SESSION_DATASTORE: mode });
      for (let round = 0; round < 3; round++) {
        const cookie = await login(app.base, `victim${round}`);
        let logout!: () => void;
        const loggedOut = new Promise<void>((resolve) => (logout = resolve));
        const loops = viewLoops(
          app.base,
          cookie,
          6,
          loggedOut.then(() => sleep(300)),
        );
        await sleep(300);
        const reply = await request(app.base, '/demo/logout', { method: 'POST', cookie });
        assert.equal(reply.status, 303);
        logout();
        await loops;
        await sleep(mode === 'async' ? 800 : 100); // past any pending asynchronous write
        const stolen = visitCount(await request(app.base, '/demo', { cookie }));
        assert.equal(stolen, undefined, `the stolen cookie is dead (server log:\n${app.output().slice(-4000)})`);
        assert.equal(await storedEntity(idOf(cookie)), undefined, 'no Datastore copy came back');
      }
    });
  }

  for (const fault of ['restart', 'pause'] as const) {
    it(`loses no update when memcached ${fault === 'restart' ? 'is killed and restarted' : 'pauses'} under eight clients`, async () => {
      const app = await server({ SESSION_STORE: 'memcache', SESSION_DATASTORE: 'sync' });
      const cookie = await login(app.base, `unlucky-${fault}`);
      const done = (async () => {
        await sleep(500);
        if (fault === 'restart') {
          await memcached.stop();
          await sleep(3000);
          await memcached.start();
        } else {
          process.kill(memcached.pid!, 'SIGSTOP');
          await sleep(3000);
          process.kill(memcached.pid!, 'SIGCONT');
        }
        await sleep(4000); // past the fail-fast window, back on memcache
      })();
      const { counts, statuses } = await viewLoops(app.base, cookie, 8, done);
      const final = visitCount(await request(app.base, '/demo', { cookie }));
      const shownTwice = counts.filter((c, i) => counts.indexOf(c) !== i);
      assert.deepEqual(shownTwice, [], 'no count is shown twice');
      assert.equal(
        final,
        counts.length + 1,
        `every acknowledged view counted (statuses: ${[...new Set(statuses)].join(', ')})`,
      );
    });
  }

  it('24 clients on one session (memcache only): no 503 without a fault, and every 200 counted once', async () => {
    const app = await server({ SESSION_STORE: 'memcache', SESSION_DATASTORE: 'off' });
    const cookie = await login(app.base, 'crowd');
    const { counts, statuses } = await viewLoops(app.base, cookie, 24, sleep(5000));
    const final = visitCount(await request(app.base, '/demo', { cookie }));
    const failed = statuses.filter((s) => s !== 200).length;
    assert.equal(failed, 0, 'contention is not an outage');
    assert.equal(final, counts.length + 1, 'the count holds exactly the views answered 200');
  });
});
