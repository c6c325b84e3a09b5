import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { Datastore } from '@google-cloud/datastore';
import { purgeExpired } from '../../src/gaesession/purge.js';
import { missing, type DatastoreEmulator } from '../support/services.js';
import {
  datastoreClient,
  login,
  request,
  sharedMemcached,
  startGaeApp,
  startServerProcess,
  useEmulator,
} from './helpers.js';

const skip = missing('datastore-emulator');
const KIND = 'sess_';

describe('purge of expired sessions from Datastore', { skip }, () => {
  let emulator: DatastoreEmulator;
  let datastore: Datastore;

  /** Writes `expired` entities with `exp` in the past and `live` ones with `exp` ahead. */
  async function seed(expired: number, live: number): Promise<void> {
    const now = Date.now();
    const entities = [
      ...Array.from({ length: expired }, (_, i) => ({ id: `expired-${i}`, exp: new Date(now - 60_000 - i) })),
      ...Array.from({ length: live }, (_, i) => ({ id: `live-${i}`, exp: new Date(now + 3_600_000) })),
    ].map(({ id, exp }) => ({
      key: datastore.key([KIND, id]),
      data: { exp, val: Buffer.from('{}') },
      excludeFromIndexes: ['val'],
    }));
    for (let i = 0; i < entities.length; i += 400) await datastore.save(entities.slice(i, i + 400));
  }
  async function remaining(): Promise<string[]> {
    const [entities] = await datastore.runQuery(datastore.createQuery(KIND).select('__key__'));
    return entities
      .map((e: Record<string | symbol, unknown>) => String((e[datastore.KEY] as { name?: string }).name))
      .sort();
  }

  before(async () => {
    emulator = await useEmulator();
    datastore = datastoreClient();
  });
  beforeEach(() => emulator.reset());

  it('deletes a few hundred expired sessions in batches and leaves live ones alone', async () => {
    await seed(620, 15);
    const result = await purgeExpired({ datastore, deadline: Date.now() + 60_000 });
    assert.deepEqual(result, { completed: true, deleted: 620 });
    const left = await remaining();
    assert.equal(left.length, 15);
    assert.ok(left.every((name) => name.startsWith('live-')));
  });

  it('stops at the deadline after one batch, and repeated calls finish the job', async () => {
    await seed(250, 5);
    const first = await purgeExpired({ datastore, deadline: Date.now() - 1, batchSize: 100 });
    assert.deepEqual(first, { completed: false, deleted: 100 });
    let total = first.deleted;
    let calls = 1;
    for (let result = first; !result.completed; calls++) {
      result = await purgeExpired({ datastore, deadline: Date.now() - 1, batchSize: 100 });
      total += result.deleted;
      assert.ok(calls < 10, 'finishes');
    }
    assert.equal(total, 250);
    assert.equal((await remaining()).length, 5);
  });

  it('answers the cron request with JSON, and 403 without the cron header', async () => {
    await seed(30, 2);
    const app = await startGaeApp('datastore-only', undefined);
    try {
      const refused = await request(app.base, '/demo/purge');
      assert.equal(refused.status, 403);
      assert.equal((await remaining()).length, 32);
      const reply = await request(app.base, '/demo/purge', { headers: { 'X-Appengine-Cron': 'true' } });
      assert.equal(reply.status, 200);
      assert.match(String(reply.headers['content-type']), /^application\/json/);
      assert.deepEqual(JSON.parse(reply.body), { completed: true, deleted: 30 });
    } finally {
      await app.close();
    }
  });

  it('runs once at a time: four concurrent calls report each of 2,000 deletions exactly once', async () => {
    await seed(2000, 10);
    const results = await Promise.all(
      Array.from({ length: 4 }, () => purgeExpired({ datastore, deadline: Date.now() + 60_000 })),
    );
    assert.equal(
      results.reduce((sum, result) => sum + result.deleted, 0),
      2000,
      JSON.stringify(results),
    );
    assert.ok(
      results.every((result) => result.completed),
      JSON.stringify(results),
    );
    assert.equal((await remaining()).length, 10);
    // Once that run is over, the next call runs again (and finds nothing).
    assert.deepEqual(await purgeExpired({ datastore, deadline: Date.now() + 60_000 }), { completed: true, deleted: 0 });
  });

  it('answers concurrent cron requests with true counts', async () => {
    await seed(1200, 3);
    const app = await startGaeApp('datastore-only', undefined);
    try {
      const replies = await Promise.all(
        Array.from({ length: 4 }, () => request(app.base, '/demo/purge', { headers: { 'X-Appengine-Cron': 'true' } })),
      );
      const results = replies.map((reply) => {
        assert.equal(reply.status, 200, reply.body);
        return JSON.parse(reply.body) as { completed: boolean; deleted: number };
      });
      assert.equal(
        results.reduce((sum, result) => sum + result.deleted, 0),
        1200,
        JSON.stringify(results),
      );
      assert.equal((await remaining()).length, 3);
    } finally {
      await app.close();
    }
  });

  // The server as deployed: its store and its purge share one Datastore client, so a call
  // option of the store's that leaked into the client's defaults would break the purge.
  for (const mode of ['datastore', 'memcache'] as const) {
    it(
      `still purges after the server has served sessions (SESSION_STORE=${mode})`,
      {
        skip: mode === 'memcache' && missing('memcached'),
      },
      async () => {
        const env: Record<string, string> = { SESSION_STORE: mode, DATASTORE_EMULATOR_HOST: emulator.address };
        if (mode === 'memcache') env['MEMCACHE_SERVERS'] = (await sharedMemcached()).address;
        const server = await startServerProcess(env);
        try {
          // A login, a counted view and "log out everywhere" make every kind of call the store makes.
          const cookie = await login(server.base, 'purger');
          assert.equal((await request(server.base, '/demo', { cookie })).status, 200);
          assert.equal((await request(server.base, '/demo/logout-all', { method: 'POST', cookie })).status, 303);
          await seed(40, 2);
          const reply = await request(server.base, '/demo/purge', { headers: { 'X-Appengine-Cron': 'true' } });
          assert.equal(reply.status, 200, reply.body);
          assert.deepEqual(JSON.parse(reply.body), { completed: true, deleted: 40 });
          assert.equal((await remaining()).length, 2);
        } finally {
          await server.stop();
        }
      },
    );
  }

  it('fails (and does not loop) when Datastore is unreachable', async () => {
    const saved = process.env['DATASTORE_EMULATOR_HOST'];
    process.env['DATASTORE_EMULATOR_HOST'] = '127.0.0.1:1';
    try {
      const deadClient = new Datastore({ projectId: 'gaesession-test' });
      await assert.rejects(purgeExpired({ datastore: deadClient, deadline: Date.now() + 60_000, callTimeoutMs: 1000 }));
    } finally {
      process.env['DATASTORE_EMULATOR_HOST'] = saved;
    }
  });
});
