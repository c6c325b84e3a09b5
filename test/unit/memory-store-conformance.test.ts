import { MemoryStore } from '../../src/session/memory-store.js';
import { describeStoreConformance } from '../support/store-conformance.js';

// Real time plus whatever the suite skipped ahead: the expiry test costs no real waiting.
describeStoreConformance('MemoryStore', async () => {
  let skipped = 0;
  const store = new MemoryStore({ now: () => Date.now() + skipped });
  return { store, clock: { advance: (ms) => void (skipped += ms) } };
});
