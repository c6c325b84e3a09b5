import { Datastore } from '@google-cloud/datastore';
import type { SessionCache } from '../gaesession/cache.js';
import { jsonCodec } from '../gaesession/codec.js';
import { DatastoreStore } from '../gaesession/datastore-store.js';
import { DatastoreTier } from '../gaesession/datastore.js';
import { GaeStore } from '../gaesession/gae-store.js';
import { createMemcacheClient } from '../gaesession/memcache-client.js';
import { MemcacheCache } from '../gaesession/memcache.js';
import { datastorePurge, type PurgeFunction } from '../gaesession/purge.js';
import { createValkeyClient } from '../gaesession/valkey-client.js';
import { ValkeyCache } from '../gaesession/valkey.js';
import type { Logger } from '../session/logger.js';
import { MemoryStore } from '../session/memory-store.js';
import type { Store } from '../session/store.js';
import type { Config } from './config.js';

export interface SessionBackend {
  store: Store;
  /** Deletes expired sessions from Datastore; absent without Datastore. */
  purge?: PurgeFunction | undefined;
  /** What keeps the sessions, in words, for the demo page and the start-up line. */
  storeDescription: string;
  /** Closes the store, then the clients made here (the store does not own them). */
  close(): Promise<void>;
}

/**
 * The session store the configuration asks for. One client per backend serves the whole
 * process (each pools its connections); `close` ends them after the store's pending writes.
 */
export function createSessionBackend(config: Config, logger: Logger): SessionBackend {
  if (config.store === 'memory') {
    const store = new MemoryStore({ maxSessions: config.memoryMaxSessions, logger });
    return { store, storeDescription: 'in this instance’s memory', close: () => store.close() };
  }
  // The client reads GOOGLE_CLOUD_PROJECT, DATASTORE_EMULATOR_HOST and DATASTORE_PROJECT_ID itself.
  const datastore = config.store === 'datastore' || config.datastore !== 'off' ? new Datastore() : undefined;
  const tier = datastore && new DatastoreTier({ datastore, codec: jsonCodec, kind: config.datastoreKind, logger });
  const purge = datastore && datastorePurge({ datastore, kind: config.datastoreKind });
  const closeDatastore = (): Promise<void> => (datastore ? closeDatastoreClient(datastore, logger) : Promise.resolve());

  if (config.store === 'datastore' && tier) {
    const store = new DatastoreStore(tier);
    return { store, purge, storeDescription: 'in Datastore', close: () => store.close().then(closeDatastore) };
  }
  const cache = createCache(config, logger);
  const store = new GaeStore({
    cache,
    datastore: tier,
    datastoreWrites: config.datastore === 'async' ? 'async' : 'sync',
    timeoutSeconds: config.timeoutSeconds,
    asyncIntervalMs: config.asyncWriteIntervalMs,
    closeGraceMs: config.shutdownGraceSeconds * 1000,
    logger,
  });
  const backup = { off: '', sync: ' with a Datastore backup', async: ' with an asynchronous Datastore backup' };
  return {
    store,
    purge,
    storeDescription: `in ${cache.name}${backup[config.datastore]}`,
    close: async () => {
      await store.close();
      await cache.close();
      await closeDatastore();
    },
  };
}

function createCache(config: Config, logger: Logger): SessionCache {
  if (config.store === 'valkey') {
    // Connects in the background: the app starts and serves without waiting for Valkey.
    const client = createValkeyClient({ url: config.valkey.url, cluster: config.valkey.cluster });
    return new ValkeyCache({ client, keyPrefix: config.keyPrefix, logger });
  }
  const client = createMemcacheClient({
    servers: config.memcache.servers,
    username: config.memcache.username || undefined,
    password: config.memcache.password || undefined,
    retries: config.memcache.retries,
  });
  return new MemcacheCache({ client, keyPrefix: config.keyPrefix, logger });
}

/** Datastore has no close of its own; its gRPC clients do, and an open channel keeps a process alive. */
async function closeDatastoreClient(datastore: Datastore, logger: Logger): Promise<void> {
  for (const client of datastore.clients_.values()) {
    try {
      // Typed as grpc's synchronous close; the clients kept there are gapic ones, whose close is async.
      await Promise.resolve(client.close() as unknown);
    } catch (error) {
      logger.warn('Datastore client not closed', { error: String(error) });
    }
  }
}
