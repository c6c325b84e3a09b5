import { missing, sharedValkey, sharedValkeyCluster, type ServiceName } from '../support/services.js';
import { describeStoreConformance } from '../support/store-conformance.js';
import { makeBackend, sharedMemcached, useEmulator, type CacheServer, type StoreMode } from './helpers.js';

type Cache = 'memcache' | 'valkey' | 'valkey-cluster' | 'none';

/** Each way the app can build its App Engine store, with the servers it needs. */
const MODES: { mode: StoreMode; cache: Cache; title: string }[] = [
  { mode: 'off', cache: 'memcache', title: 'memcache only (SESSION_DATASTORE=off)' },
  { mode: 'sync', cache: 'memcache', title: 'memcache + Datastore sync' },
  { mode: 'async', cache: 'memcache', title: 'memcache + Datastore async' },
  { mode: 'off', cache: 'valkey', title: 'Valkey only' },
  { mode: 'sync', cache: 'valkey', title: 'Valkey + Datastore sync' },
  { mode: 'async', cache: 'valkey', title: 'Valkey + Datastore async' },
  { mode: 'off', cache: 'valkey-cluster', title: 'Valkey cluster only' },
  { mode: 'sync', cache: 'valkey-cluster', title: 'Valkey cluster + Datastore sync' },
  { mode: 'datastore-only', cache: 'none', title: 'Datastore only (SESSION_STORE=datastore)' },
];

const SERVICE: Record<Cache, ServiceName[]> = {
  memcache: ['memcached'],
  valkey: ['valkey'],
  'valkey-cluster': ['valkey'],
  none: [],
};

async function cacheServer(cache: Cache): Promise<CacheServer | undefined> {
  switch (cache) {
    case 'memcache':
      return (await sharedMemcached()).address;
    case 'valkey':
      return { valkeyUrl: (await sharedValkey()).url, cluster: false };
    case 'valkey-cluster':
      return { valkeyUrl: (await sharedValkeyCluster()).url, cluster: true };
    case 'none':
      return undefined;
  }
}

// Session IDs are random, so the tests share the servers without flushing them in between.
for (const { mode, cache, title } of MODES) {
  const needs: ServiceName[] = [...SERVICE[cache], ...(mode === 'off' ? [] : (['datastore-emulator'] as const))];
  describeStoreConformance(
    `App Engine store, ${title}`,
    async () => {
      if (mode !== 'off') await useEmulator();
      const server = await cacheServer(cache);
      // Two backends on the same servers: two app instances.
      const one = makeBackend(mode, server);
      const two = makeBackend(mode, server);
      const cleanup = async (): Promise<void> => void (await Promise.all([one.close(), two.close()]));
      return { store: one.store, otherInstance: two.store, cleanup };
    },
    { skip: missing(...needs) },
  );
}
