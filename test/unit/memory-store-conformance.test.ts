import { MemoryStore } from '../../src/session/memory-store.js';
import { describeStoreConformance } from '../support/store-conformance.js';

// Real time plus whatever the suite skipped ahead: the expiry tests cost no real waiting.
describeStoreConformance('MemoryStore', async () => {
  let skipped = 0;
  const now = (): number => Date.now() + skipped;
  return { store: new MemoryStore({ now }), clock: { now, advance: (ms) => void (skipped += ms) } };
});
