import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { PropertyFilter } from '@google-cloud/datastore';
import { jsonCodec } from '../../src/gaesession/codec.js';
import type { Session } from '../../src/session/session.js';
import { newSessionId } from '../../src/session/id.js';
import { ownerHash } from '../../src/session/record.js';
import { SessionTooLargeError } from '../../src/session/store.js';
import { missing } from '../support/services.js';
import { SessionClient } from '../support/session-client.js';
import {
  datastoreClient,
  makeBackend,
  type TestBackend,
  storedEntity,
  rawMemcache,
  RecordingLogger,
  sleep,
  cleanSharedServices,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');
const KIND = 'sess_';

/** One app instance: its store with its clients, and the requests' view of it. */
type Instance = SessionClient & { backend: TestBackend };

describe('The App Engine store against memcached and the Datastore emulator', { skip }, () => {
  const services = cleanSharedServices();
  const backends: TestBackend[] = [];
  const store = (...args: Parameters<typeof makeBackend>): Instance => {
    const backend = makeBackend(...args);
    backends.push(backend);
    return Object.assign(new SessionClient(backend.store), { backend });
  };
  const newSession = (timeoutSeconds = 1800): Session => new SessionClient(backends[0]!.store).create(timeoutSeconds);
  const datastore = () => datastoreClient();
  const entity = (id: string) => storedEntity(id, KIND);
  const count = async (): Promise<number> => {
    const [entities] = await datastore().runQuery(datastore().createQuery(KIND).select('__key__'));
    return entities.length;
  };

  after(async () => {
    for (const backend of backends) await backend.close();
  });

  it('round-trips a session, stored in SPEC layout in both tiers', async () => {
    const gae = store('sync', services.memcached.address, { keyPrefix: 'pfx:', timeoutSeconds: 1800 });
    const session = newSession();
    await gae.add(session);
    const loaded = await gae.get(session.id);
    assert.ok(loaded);
    assert.equal(loaded.constant('userName'), 'alice');
    assert.deepEqual(loaded.variables(), { count: 0 });

    // memcache: key = prefix + ID, value = the JSON codec's bytes, nothing under the bare ID.
    const raw = rawMemcache(services.memcached.address);
    const item = await raw.get('pfx:' + session.id);
    assert.equal((await raw.get(session.id)).value, null);
    raw.close();
    assert.ok(item.value);
    const json = JSON.parse(item.value.toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), [
      'id',
      'created',
      'accessed',
      'timeout',
      'lifetime',
      'version',
      'constants',
      'variables',
    ]);
    assert.equal(json['id'], session.id);
    assert.equal(json['created'], session.created.toISOString());

    // Datastore: kind sess_, key name = ID, properties exactly exp (indexed) and val (not indexed).
    const stored = await entity(session.id);
    assert.ok(stored);
    assert.deepEqual(Object.keys(stored).sort(), ['exp', 'val']);
    assert.ok(stored.exp instanceof Date);
    assert.equal(stored.exp.getTime(), session.accessed.getTime() + 1800 * 1000);
    assert.ok(Buffer.isBuffer(stored.val));
    assert.deepEqual(jsonCodec.decode(stored.val), jsonCodec.decode(item.value));
    const byExp = datastore()
      .createQuery(KIND)
      .filter(new PropertyFilter('exp', '>', new Date(0)));
    assert.equal((await datastore().runQuery(byExp))[0].length, 1, 'exp is indexed');
    const byVal = datastore()
      .createQuery(KIND)
      .filter(new PropertyFilter('val', '=', stored.val));
    assert.equal((await datastore().runQuery(byVal))[0].length, 0, 'val is not indexed');
  });

  it('recovers a session from Datastore after memcached flush_all, and puts it back', async () => {
    const logger = new RecordingLogger();
    const gae = store('sync', services.memcached.address, { logger });
    const session = newSession();
    await gae.add(session);
    session.update('count', (c: unknown) => (Number(c) || 0) + 1);
    assert.equal(await gae.save(session), true);
    await services.memcached.flush();
    const recovered = await gae.get(session.id);
    assert.deepEqual(recovered?.variables(), { count: 1 });
    assert.equal(logger.count('info', 'session recovered from Datastore'), 1);
    const raw = rawMemcache(services.memcached.address);
    assert.ok((await raw.get(session.id)).value, 'back in memcache');
    raw.close();
    recovered?.update('count', (c: unknown) => (Number(c) || 0) + 1);
    assert.equal(recovered && (await gae.save(recovered)), true);
    assert.deepEqual((await gae.get(session.id))?.variables(), { count: 2 });
  });

  it('with SESSION_DATASTORE=off writes nothing to Datastore', async () => {
    const gae = store('off', services.memcached.address);
    const session = newSession();
    await gae.add(session);
    const loaded = await gae.get(session.id);
    loaded?.update('count', () => 5);
    assert.equal(loaded && (await gae.save(loaded)), true);
    assert.equal(await count(), 0);
    await services.memcached.flush();
    assert.equal(await gae.get(session.id), undefined, 'no backup to recover from');
  });

  it('expires idle sessions in memcache and in Datastore', async () => {
    const sync = store('sync', services.memcached.address, { timeoutSeconds: 2 });
    const only = store('datastore-only', undefined, { timeoutSeconds: 2 });
    const a = newSession(2);
    const b = newSession(2);
    await sync.add(a);
    await only.add(b);
    assert.ok(await sync.get(a.id));
    assert.ok(await only.get(b.id));
    await sleep(3200);
    const raw = rawMemcache(services.memcached.address);
    assert.equal((await raw.get(a.id)).value, null, 'memcached expired the item');
    raw.close();
    assert.equal(await sync.get(a.id), undefined);
    assert.equal(await only.get(b.id), undefined);
    assert.equal(await entity(a.id), undefined, 'an expired entity is deleted when read');
    assert.equal(await entity(b.id), undefined);
  });

  it('writes only on change: counts per operation in every mode', async () => {
    const cases = [
      // A remove is a tombstone and a delete in the cache: no later put-back brings the session back.
      { mode: 'off', add: [1, 0], unchanged: [1, 0], changed: [2, 0], remove: [2, 0] },
      { mode: 'sync', add: [1, 1], unchanged: [1, 0], changed: [2, 1], remove: [2, 1] },
      { mode: 'async', add: [1, 0], unchanged: [1, 0], changed: [2, 0], remove: [2, 1] },
      { mode: 'datastore-only', add: [0, 1], unchanged: [0, 0], changed: [0, 1], remove: [0, 1] },
    ] as const;
    for (const expected of cases) {
      const gae = store(expected.mode, services.memcached.address, { gae: { asyncIntervalMs: 60_000 } });
      const stats = () => ({
        roundTrips: gae.backend.cache?.roundTrips ?? 0,
        reads: gae.backend.tier?.reads ?? 0,
        writes: gae.backend.tier?.writes ?? 0,
      });
      let before = stats();
      let reads = 0;
      const delta = (): [number, number] => {
        const now = stats();
        const result: [number, number] = [now.roundTrips - before.roundTrips, now.writes - before.writes];
        reads = now.reads - before.reads;
        before = now;
        return result;
      };
      const session = newSession();
      await gae.add(session);
      assert.deepEqual(delta(), expected.add, `${expected.mode}: add`);
      if (expected.mode === 'async') {
        await gae.backend.gae!.flush();
        // The late first backup checks the tombstone first: it may land after a logout.
        assert.deepEqual(delta(), [1, 1], 'async: the new session is written after add resolved');
      }
      const view = await gae.get(session.id);
      assert.ok(view);
      assert.equal(await gae.save(view), true);
      assert.deepEqual(delta(), expected.unchanged, `${expected.mode}: unchanged view`);
      const counter = await gae.get(session.id);
      assert.ok(counter);
      counter.update('count', (c: unknown) => (Number(c) || 0) + 1);
      assert.equal(await gae.save(counter), true);
      assert.deepEqual(delta(), expected.changed, `${expected.mode}: changed view`);
      if (expected.mode === 'datastore-only') assert.equal(reads, 1, 'Datastore only: one lookup per changed view');
      if (expected.mode === 'async') {
        assert.equal(gae.backend.gae?.pendingBackups, 1);
        await gae.backend.gae?.flush();
        assert.deepEqual(delta(), [0, 1], 'async: the change is written after save resolved');
        assert.deepEqual(jsonCodec.decode((await entity(session.id))!.val).variables, { count: 1 });
      }
      await gae.remove(session.id);
      assert.deepEqual(delta(), expected.remove, `${expected.mode}: remove`);
      assert.equal(await gae.get(session.id), undefined);
    }
  });

  it('refreshes accessed and Datastore exp once a quarter of the timeout has passed', async () => {
    const gae = store('sync', services.memcached.address, { timeoutSeconds: 4 });
    const session = newSession(4);
    await gae.add(session);
    const firstExp = (await entity(session.id))!.exp.getTime();
    await sleep(1100);
    const view = await gae.get(session.id);
    const writes = gae.backend.tier!.writes;
    assert.ok(view);
    assert.equal(await gae.save(view), true);
    assert.equal(gae.backend.tier!.writes, writes + 1);
    const refreshed = (await entity(session.id))!.exp.getTime();
    assert.ok(refreshed >= firstExp + 1000, 'exp moved forward');
    // Every write takes the next version now (a refresh too); what a refresh does not change is the data.
    assert.deepEqual(view.variables(), session.variables(), 'a refresh is not a change');
  });

  it('two stores (two instances) sharing the servers carry one session and lose no update', async () => {
    const a = store('sync', services.memcached.address);
    const b = store('sync', services.memcached.address);
    const session = newSession();
    await a.add(session);
    const views = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b));
    await Promise.all(
      views.map(async (gae) => {
        const view = await gae.get(session.id);
        assert.ok(view);
        view.update('count', (c: unknown) => (Number(c) || 0) + 1);
        assert.equal(await gae.save(view), true);
      }),
    );
    assert.deepEqual((await b.get(session.id))?.variables(), { count: 40 });
    assert.deepEqual(
      jsonCodec.decode((await entity(session.id))!.val).variables,
      { count: 40 },
      'Datastore holds the latest',
    );
  });

  it('loses no update with Datastore only, under concurrency', async () => {
    const a = store('datastore-only', undefined);
    const b = store('datastore-only', undefined);
    const session = newSession();
    await a.add(session);
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const gae = i % 2 === 0 ? a : b;
        const view = await gae.get(session.id);
        assert.ok(view);
        view.update('count', (c: unknown) => (Number(c) || 0) + 1);
        assert.equal(await gae.save(view), true);
      }),
    );
    assert.deepEqual((await a.get(session.id))?.variables(), { count: 20 });
  });

  it('lists every session of an owner with more of them than one query batch holds (Datastore only)', async () => {
    const { backend } = store('datastore-only', undefined);
    const owner = ownerHash('many-browsers');
    const now = Date.now();
    // The emulator answers a query in batches of 300; 320 sessions need a second one.
    const ids = Array.from({ length: 320 }, () => newSessionId());
    const entities = ids.map((id) => ({
      key: datastore().key([KIND, id]),
      data: {
        exp: new Date(now + 3_600_000),
        val: jsonCodec.encode({
          id,
          created: now,
          accessed: now,
          timeout: 3600,
          lifetime: 86_400,
          version: 1,
          owner,
          constants: {},
          variables: {},
        }),
        own: owner,
      },
      excludeFromIndexes: ['val'],
    }));
    for (let i = 0; i < entities.length; i += 400) await datastore().save(entities.slice(i, i + 400));
    const found = await backend.store.owned(owner);
    assert.deepEqual(found.map((record) => record.id).sort(), ids.sort());
  });

  it('async mode: writes land in order, and a logout is never undone by a pending write', async () => {
    const gae = store('async', services.memcached.address, { gae: { asyncIntervalMs: 300 } });
    const session = newSession();
    await gae.add(session);
    for (let i = 0; i < 5; i++) {
      const view = await gae.get(session.id);
      view?.update('count', (c: unknown) => (Number(c) || 0) + 1);
      assert.equal(view && (await gae.save(view)), true);
    }
    await gae.backend.gae!.flush();
    assert.deepEqual(jsonCodec.decode((await entity(session.id))!.val).variables, { count: 5 }, 'caught up');
    assert.ok(gae.backend.tier!.writes <= 3, 'coalesced');

    const view = await gae.get(session.id);
    view?.update('count', () => 99);
    assert.equal(view && (await gae.save(view)), true);
    await gae.remove(session.id);
    await gae.backend.gae!.flush();
    assert.equal(await entity(session.id), undefined, 'the pending write did not recreate it');
    assert.equal(await gae.get(session.id), undefined);
  });

  it('never lets an older state replace a newer one in Datastore', async () => {
    const a = store('async', services.memcached.address, { gae: { asyncIntervalMs: 60_000 } });
    const b = store('sync', services.memcached.address);
    const session = newSession();
    await b.add(session);
    const stale = await a.get(session.id);
    stale?.update('count', () => 1);
    assert.equal(stale && (await a.save(stale)), true); // version 2, write waits in a
    const fresh = await b.get(session.id);
    fresh?.update('count', (c: unknown) => (Number(c) || 0) + 1);
    assert.equal(fresh && (await b.save(fresh)), true); // version 3, written now
    await a.backend.gae!.flush();
    const stored = jsonCodec.decode((await entity(session.id))!.val);
    assert.equal(stored.version, 3);
    assert.deepEqual(stored.variables, { count: 2 });
  });

  it('refuses a key over 250 bytes and an item over 1 MB before sending, keeping the old value', async () => {
    const longPrefix = store('sync', services.memcached.address, { keyPrefix: 'p'.repeat(230) });
    await assert.rejects(longPrefix.add(newSession()), (error: unknown) => {
      assert.ok(error instanceof SessionTooLargeError);
      assert.match(error.message, /250-byte/);
      return true;
    });
    const gae = store('sync', services.memcached.address);
    const session = newSession();
    await gae.add(session);
    const view = await gae.get(session.id);
    assert.ok(view);
    view.set('count', 'x'.repeat(1024 * 1024));
    await assert.rejects(gae.save(view), (error: unknown) => {
      assert.ok(error instanceof SessionTooLargeError);
      assert.match(error.message, /1 MB/);
      return true;
    });
    assert.deepEqual((await gae.get(session.id))?.variables(), { count: 0 }, 'the stored session is intact');
    assert.deepEqual(jsonCodec.decode((await entity(session.id))!.val).variables, { count: 0 });
  });
});
