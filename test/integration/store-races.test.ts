import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DatastoreClient, type Datastore } from '@google-cloud/datastore';
import type { ClientOptions, ClientStub } from 'google-gax';
import { jsonCodec } from '../../src/gaesession/codec.js';
import { DatastoreTier } from '../../src/gaesession/datastore.js';
import { GaeStore, type DatastoreWrites } from '../../src/gaesession/gae-store.js';
import { createMemcacheClient, OP } from '../../src/gaesession/memcache-client.js';
import { MemcacheCache } from '../../src/gaesession/memcache.js';
import type { Session } from '../../src/session/session.js';
import { StoreUnavailableError } from '../../src/session/store.js';
import { startLaggingProxy } from '../support/lagging-proxy.js';
import { missing } from '../support/services.js';
import { SessionClient } from '../support/session-client.js';
import {
  datastoreClient,
  makeBackend,
  rawMemcache,
  storedCount,
  storedEntity,
  cleanSharedServices,
  RecordingLogger,
  sleep,
  eventually,
  type TestBackend,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

/** Points where a test steps into the store's Datastore calls, to interleave another request. */
interface Interleave {
  /** Runs once, after the next entity lookup answered and before the store goes on. */
  afterRead?: (() => Promise<unknown>) | undefined;
  /** Commits (every write and delete) wait for this (when set). */
  writesWaitFor?: Promise<void> | undefined;
  /** Commit RPCs made, refused ones included. */
  commits?: number;
}

type Rpc = (request: unknown, options: unknown) => Promise<unknown[]>;

/** A real Datastore client whose RPCs the test can interleave with (see Interleave). */
function interleaved(datastore: Datastore, interleave: Interleave): Datastore {
  // The client the session tier finds in the library's client map: its own calls, patched.
  const client = new DatastoreClient(datastore.options as ClientOptions);
  datastore.clients_.set('DatastoreClient', client as unknown as ClientStub);
  const rpc = client as unknown as Record<'lookup' | 'commit', Rpc>;
  const lookup = rpc.lookup.bind(client);
  const commit = rpc.commit.bind(client);
  rpc.commit = async (request, options) => {
    interleave.commits = (interleave.commits ?? 0) + 1;
    await interleave.writesWaitFor;
    return commit(request, options);
  };
  rpc.lookup = async (request, options) => {
    const response = await lookup(request, options);
    const step = interleave.afterRead;
    interleave.afterRead = undefined;
    await step?.();
    return response;
  };
  return datastore;
}

function newSession(client: SessionClient): Session {
  return client.create(1800, { userName: 'ed' }, { count: 0 });
}

describe('the App Engine store under interleaved requests', { skip }, () => {
  const services = cleanSharedServices();
  const closers: (() => Promise<void>)[] = [];

  const interleavedStore = (
    writes: DatastoreWrites,
    interleave: Interleave,
  ): SessionClient & { gae: GaeStore; cache: MemcacheCache } => {
    const cache = new MemcacheCache({ client: createMemcacheClient({ servers: [services.memcached.address] }) });
    const tier = new DatastoreTier({ datastore: interleaved(datastoreClient(), interleave), codec: jsonCodec });
    const gae = new GaeStore({
      cache,
      datastore: tier,
      datastoreWrites: writes,
      timeoutSeconds: 1800,
      asyncIntervalMs: 200,
    });
    closers.push(() => gae.close().then(() => cache.close()));
    return Object.assign(new SessionClient(gae), { gae, cache });
  };
  const inMemcache = async (id: string): Promise<boolean> => {
    const raw = rawMemcache(services.memcached.address);
    const { value } = await raw.get(id);
    raw.close();
    return value !== null;
  };

  after(async () => {
    for (const close of closers) await close();
  });

  it('a logout between a Datastore read and the put-back into memcache stays a logout', async () => {
    const interleave: Interleave = {};
    const store = interleavedStore('sync', interleave);
    const session = newSession(store);
    await store.add(session);
    await services.memcached.flush(); // evicted: the next read goes to Datastore and puts the session back

    interleave.afterRead = () => store.remove(session.id); // the logout lands right after that read
    const read = await store.get(session.id);

    assert.equal(read, undefined, 'the reading request sees the session gone');
    assert.equal(await inMemcache(session.id), false, 'memcache does not hold it again');
    assert.equal(await storedEntity(session.id), undefined, 'nor Datastore');
  });

  it('a put-back that another request writes to before its tombstone check is still taken back', async () => {
    const reader = interleavedStore('sync', {});
    const other = makeBackend('sync', services.memcached.address);
    closers.push(() => other.close());
    const writer = new SessionClient(other.store);
    const session = newSession(reader);
    await reader.add(session);
    // A logout half done: tombstone and memcache delete made, the Datastore delete not yet.
    await reader.cache.bury(session.id, 1800);
    await reader.cache.delete(session.id);

    // Between the reader's put-back and its tombstone check, a request on another instance
    // reads the copy it put back and saves a change to it.
    const isBuried = reader.cache.isBuried.bind(reader.cache);
    reader.cache.isBuried = async (id) => {
      const view = await writer.get(id);
      assert.ok(view, 'the put-back copy is readable for a moment');
      view.update('count', (count: unknown) => Number(count) + 1);
      await writer.save(view);
      return isBuried(id);
    };
    assert.equal(await reader.get(session.id), undefined, 'the reader finds the session ended');

    assert.equal(await inMemcache(session.id), false, 'memcache does not keep the changed copy');
    assert.equal(await writer.get(session.id), undefined, 'so no later request sees the session');
  });

  it("in sync mode, saves of a session do not wait for each other's Datastore writes, only for their own", async () => {
    const interleave: Interleave = {};
    const store = interleavedStore('sync', interleave);
    const session = newSession(store);
    await store.add(session);
    const commits = interleave.commits ?? 0;
    let openWrites: () => void = () => {};
    interleave.writesWaitFor = new Promise<void>((resolve) => (openWrites = resolve));
    const views = await Promise.all([store.get(session.id), store.get(session.id), store.get(session.id)]);
    const saves = views.map((view) => {
      assert.ok(view);
      view.update('count', (count: unknown) => Number(count) + 1);
      return store.save(view);
    });
    let settled = false;
    void Promise.all(saves).then(() => (settled = true));
    // All three saves reach memcache one after the other while the first Datastore write is held...
    await eventually(async () => (await store.get(session.id))?.variables()['count'] === 3);
    await sleep(50);
    // ...and neither answers before its Datastore write has landed.
    assert.equal(settled, false, 'a sync save waits for its own Datastore write');
    openWrites();
    assert.deepEqual(await Promise.all(saves), [true, true, true]);
    assert.equal(await storedCount(session.id), 3, 'Datastore holds the last state');
    // The two states that waited behind the first write took one commit: the newer one.
    assert.equal((interleave.commits ?? 0) - commits, 2, 'the first state, then the newest');
  });

  it("an asynchronous first write that lands late does not overwrite another instance's newer state", async () => {
    let openWrites: () => void = () => {};
    const interleave: Interleave = { writesWaitFor: new Promise<void>((resolve) => (openWrites = resolve)) };
    const slow = interleavedStore('async', interleave);
    const backend: TestBackend = makeBackend('sync', services.memcached.address);
    closers.push(() => backend.close());
    const other = new SessionClient(backend.store);

    const session = newSession(slow);
    await slow.add(session); // in memcache; its first Datastore write is held back
    const seen = await other.get(session.id);
    assert.ok(seen);
    seen.update('count', (count: unknown) => Number(count) + 1);
    assert.equal(await other.save(seen), true);
    assert.equal(await storedCount(session.id), 1, "the other instance's change is in Datastore");

    openWrites();
    await slow.gae.flush();
    assert.equal(await storedCount(session.id), 1, 'the late first write did not replace it');
  });

  it('a late backup on another instance, whose memcache cannot say the session ended, does not write it back', async () => {
    let openWrites: () => void = () => {};
    const slow = interleavedStore('async', { writesWaitFor: new Promise<void>((resolve) => (openWrites = resolve)) });
    const other = makeBackend('sync', services.memcached.address);
    closers.push(() => other.close());
    const session = newSession(slow);
    await slow.add(session); // in memcache; its first Datastore write is held back

    await new SessionClient(other.store).remove(session.id); // logged out on the other instance
    slow.cache.isBuried = () => Promise.reject(new StoreUnavailableError('memcache unavailable'));
    openWrites();
    await slow.gae.flush();

    assert.equal(await storedEntity(session.id), undefined, 'Datastore does not hold it again');
  });

  describe('when memcached applies a request but its answer comes late', () => {
    /** A store whose memcache answers pass a proxy that can hold one back past the client's 100 ms. */
    const laggingStore = async () => {
      const proxy = await startLaggingProxy(services.memcached.address);
      const client = createMemcacheClient({ servers: [proxy.address], attemptTimeoutMs: 100 });
      const logger = new RecordingLogger();
      const cache = new MemcacheCache({ client, openMs: 200, logger });
      const gae = new GaeStore({
        cache,
        datastore: new DatastoreTier({ datastore: datastoreClient(), codec: jsonCodec }),
        timeoutSeconds: 1800,
      });
      closers.push(() =>
        gae
          .close()
          .then(() => cache.close())
          .then(() => proxy.close()),
      );
      return { store: new SessionClient(gae), cache, proxy, logger };
    };

    it('a put-back whose ADD was applied does not bring back a session being logged out', async () => {
      const { store, cache, proxy } = await laggingStore();
      const session = newSession(store);
      await store.add(session);
      // A logout half done: tombstone and memcache delete made, the Datastore delete not yet.
      await cache.bury(session.id, 1800);
      await cache.delete(session.id);

      proxy.lagNext(OP.add, 250);
      await store.get(session.id); // reads Datastore; its put-back is applied, the answer lost
      await sleep(300); // past the fail-fast window

      assert.equal(await store.get(session.id), undefined, 'the next request finds the session ended');
      assert.equal(await inMemcache(session.id), false, 'memcache does not hold it');
    });

    it('a put-back whose connection breaks before it gets through is sent again', async () => {
      const { store, cache, proxy, logger } = await laggingStore();
      const session = newSession(store);
      await store.add(session);
      await cache.delete(session.id); // evicted: the next read puts it back from Datastore

      proxy.resetAtNext(OP.add);
      assert.ok(await store.get(session.id), 'the session is read');

      assert.equal(await inMemcache(session.id), true, 'and back in memcache');
      assert.equal(logger.count('warn', 'memcache unavailable'), 0, 'with no outage declared');
    });

    it('a conditional write that was applied is not replayed as if it had lost', async () => {
      const { store, proxy } = await laggingStore();
      const session = newSession(store);
      await store.add(session);
      const view = await store.get(session.id);
      assert.ok(view);
      view.update('count', (count: unknown) => Number(count) + 1);

      proxy.lagNext(OP.set, 250);
      assert.equal(await store.save(view), true, 'the view is saved');
      await sleep(300);

      assert.equal((await store.get(session.id))?.get('count'), 1, 'and counted once');
    });
  });
});
