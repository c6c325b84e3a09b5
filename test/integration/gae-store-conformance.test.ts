import { missing, type ServiceName } from '../support/services.js';
import { describeStoreConformance } from '../support/store-conformance.js';
import { makeBackend, sharedMemcached, useEmulator, type StoreMode } from './helpers.js';

/** Each way the app can build its App Engine store, with the servers it needs. */
const MODES: { mode: StoreMode; title: string; needs: ServiceName[] }[] = [
  { mode: 'off', title: 'memcache only (SESSION_DATASTORE=off)', needs: ['memcached'] },
  { mode: 'sync', title: 'memcache + Datastore sync', needs: ['memcached', 'datastore-emulator'] },
  { mode: 'async', title: 'memcache + Datastore async', needs: ['memcached', 'datastore-emulator'] },
  { mode: 'datastore-only', title: 'Datastore only (SESSION_STORE=datastore)', needs: ['datastore-emulator'] },
];

// Session IDs are random, so the tests share the servers without flushing them in between.
for (const { mode, title, needs } of MODES) {
  describeStoreConformance(
    `App Engine store, ${title}`,
    async () => {
      const memcached = needs.includes('memcached') ? await sharedMemcached() : undefined;
      if (needs.includes('datastore-emulator')) await useEmulator();
      // Two backends on the same servers: two app instances.
      const one = makeBackend(mode, memcached?.address);
      const two = makeBackend(mode, memcached?.address);
      return { store: one.store, otherInstance: two.store, cleanup: async () => void (await Promise.all([one.close(), two.close()])) };
    },
    { skip: missing(...needs) },
  );
}
