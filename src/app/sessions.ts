import { Datastore } from '@google-cloud/datastore';
import { datastorePurge, type PurgeFunction } from '../gaesession/purge.js';
import { createMemcacheClient } from '../gaesession/memcache.js';
import { GaeStore } from '../gaesession/store.js';
import type { Logger } from '../session/logger.js';
import { MemoryStore } from '../session/memory-store.js';
import type { Store } from '../session/store.js';
import type { Config } from './config.js';

/**
 * The session store the configuration asks for, and its purge when it keeps Datastore.
 * One memjs client and one Datastore client serve the whole process (they pool their
 * connections); closing the store closes them.
 */
export async function createSessionStore(
  config: Config,
  logger: Logger,
): Promise<{ store: Store; purge?: PurgeFunction | undefined }> {
  switch (config.store) {
    case 'memory':
      return { store: new MemoryStore({ logger }) };
    case 'memcache':
    case 'datastore': {
      const memcache =
        config.store === 'memcache'
          ? createMemcacheClient({
              servers: config.memcache.servers,
              username: config.memcache.username || undefined,
              password: config.memcache.password || undefined,
              retries: config.memcache.retries,
            })
          : undefined;
      // The client reads GOOGLE_CLOUD_PROJECT, DATASTORE_EMULATOR_HOST and DATASTORE_PROJECT_ID itself.
      const datastore = config.store === 'datastore' || config.datastore !== 'off' ? new Datastore() : undefined;
      const store = new GaeStore({
        memcache,
        datastore,
        datastoreWrites: config.datastore === 'async' ? 'async' : 'sync',
        kind: config.datastoreKind,
        keyPrefix: config.keyPrefix,
        timeoutSeconds: config.timeoutSeconds,
        asyncIntervalMs: config.asyncWriteIntervalMs,
        closeGraceMs: config.shutdownGraceSeconds * 1000,
        logger,
      });
      const purge = datastore && datastorePurge({ datastore, kind: config.datastoreKind });
      return { store, purge };
    }
    case 'valkey':
      // Placeholder until the store is wired to ValkeyCache (src/gaesession/valkey.ts).
      throw new Error('SESSION_STORE=valkey is not available yet');
  }
}
