import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Datastore } from '@google-cloud/datastore';
import { jsonCodec } from '../../src/gaesession/codec.js';
import { DatastoreTier } from '../../src/gaesession/datastore.js';
import { GaeStore, type DatastoreWrites } from '../../src/gaesession/gae-store.js';
import { createMemcacheClient } from '../../src/gaesession/memcache-client.js';
import { MemcacheCache } from '../../src/gaesession/memcache.js';
import type { Session } from '../../src/session/session.js';
import { missing } from '../support/services.js';
import { SessionClient } from '../support/session-client.js';
import {
  datastoreClient,
  makeBackend,
  rawMemcache,
  storedCount,
  storedEntity,
  cleanSharedServices,
  type TestBackend,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

/** Points where a test steps into the store's Datastore calls, to interleave another request. */
interface Interleave {
  /** Runs once, after the next plain entity read (`Datastore.get`) answered and before the store goes on. */
  afterRead?: (() => Promise<unknown>) | undefined;
  /** Writes and transactional reads wait for this (when set). */
  writesWaitFor?: Promise<void> | undefined;
}

/** The Datastore client's calls are overloaded; the wrappers only pass arguments through. */
type Untyped = (...args: unknown[]) => Promise<unknown>;

/** A real Datastore client whose calls the test can interleave with (see Interleave). */
function interleaved(datastore: Datastore, interleave: Interleave): Datastore {
  const gated =
    (call: Untyped): Untyped =>
    async (...args) => {
      await interleave.writesWaitFor;
      return call(...args);
    };
  return new Proxy(datastore, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === 'get') {
        const get = target.get.bind(target) as Untyped;
        return async (...args: unknown[]) => {
          const result = await get(...args);
          const step = interleave.afterRead;
          interleave.afterRead = undefined;
          await step?.();
          return result;
        };
      }
      if (property === 'save') return gated(target.save.bind(target) as Untyped);
      if (property === 'transaction') {
        return () => {
          const transaction = target.transaction();
          transaction.get = gated(transaction.get.bind(transaction) as Untyped) as typeof transaction.get;
          return transaction;
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function newSession(client: SessionClient): Session {
  return client.create(1800, { userName: 'ed' }, { count: 0 });
}

describe('the App Engine store under interleaved requests', { skip }, () => {
  const services = cleanSharedServices();
  const closers: (() => Promise<void>)[] = [];

  const interleavedStore = (writes: DatastoreWrites, interleave: Interleave): SessionClient & { gae: GaeStore } => {
    const cache = new MemcacheCache({ client: createMemcacheClient({ servers: [services.memcached.address] }) });
    const datastore = interleaved(datastoreClient(), interleave);
    const gae = new GaeStore({
      cache,
      datastore: new DatastoreTier({ datastore, codec: jsonCodec }),
      datastoreWrites: writes,
      timeoutSeconds: 1800,
      asyncIntervalMs: 200,
    });
    closers.push(() => gae.close().then(() => cache.close()));
    return Object.assign(new SessionClient(gae), { gae });
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
});
