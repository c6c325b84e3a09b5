import type { PurgeFunction } from '../gaesession/purge.js';
import type { Logger } from '../session/logger.js';
import { MemoryStore } from '../session/memory-store.js';
import type { Store } from '../session/store.js';
import type { Config } from './config.js';

/** The session store the configuration asks for, and its purge when it keeps Datastore. */
export async function createSessionStore(
  config: Config,
  logger: Logger,
): Promise<{ store: Store; purge?: PurgeFunction | undefined }> {
  switch (config.store) {
    case 'memory':
      return { store: new MemoryStore({ logger }) };
    case 'memcache':
    case 'datastore':
      throw new Error(`SESSION_STORE=${config.store} is not available yet`);
  }
}
