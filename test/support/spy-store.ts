import type { SessionRecord } from '../../src/session/record.js';
import type { Loaded, RemoveResult, Store, StoreToken, WriteResult } from '../../src/session/store.js';

/**
 * Wraps a store and remembers what it was asked, so a test can prove that a value which cannot
 * be a session ID never reaches a store, or count the writes a request made. It can also be
 * told to fail, or to answer slowly as a networked store would.
 */
export class SpyStore implements Store {
  /** Every ID `load` was asked about, in order. */
  readonly lookups: string[] = [];
  /** Every record `write` was asked to store (failed and conflicting writes included), in order. */
  readonly writes: SessionRecord[] = [];
  /** Every ID `remove` was asked to end, in order. */
  readonly removals: string[] = [];
  /** When set, `load` throws it (a backend outage) instead of looking. */
  failLoad: Error | undefined;
  /** When set, `write` throws it instead of storing (nothing reaches the inner store). */
  failWrite: Error | undefined;
  /**
   * Milliseconds (at most; each call waits a random share of it) that each load, write and
   * remove waits first, as a networked store would. The in-memory store answers within one
   * tick, so without a wait concurrent requests never overlap.
   */
  latencyMs = 0;
  /**
   * Runs before each remove is passed on, to let something happen just then (another
   * instance's logout landing between a request's load and its remove).
   */
  beforeRemove: ((id: string, token: StoreToken | undefined) => Promise<void>) | undefined;
  /** When set, each stored write has a durable part (a sync backup) that lands when this settles. */
  durableAfter: Promise<void> | undefined;
  constructor(readonly inner: Store) {}

  /** The old name of `failLoad` (the store's `get` became `load`). */
  get failGet(): Error | undefined {
    return this.failLoad;
  }
  set failGet(error: Error | undefined) {
    this.failLoad = error;
  }

  async load(id: string): Promise<Loaded | undefined> {
    this.lookups.push(id);
    await this.#wait();
    if (this.failLoad) throw this.failLoad;
    return this.inner.load(id);
  }

  async write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult> {
    this.writes.push(record);
    await this.#wait();
    if (this.failWrite) throw this.failWrite;
    const result = await this.inner.write(record, token);
    return result.status === 'stored' && this.durableAfter ? { ...result, durable: this.durableAfter } : result;
  }

  async remove(id: string, token?: StoreToken): Promise<RemoveResult> {
    this.removals.push(id);
    await this.#wait();
    await this.beforeRemove?.(id, token);
    return this.inner.remove(id, token);
  }

  owned(owner: string, known?: SessionRecord): Promise<SessionRecord[]> {
    return this.inner.owned(owner, known);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  #wait(): Promise<void> {
    if (this.latencyMs <= 0) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, Math.random() * this.latencyMs));
  }
}
