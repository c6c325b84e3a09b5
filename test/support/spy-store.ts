import type { Session } from '../../src/session/session.js';
import type { Store } from '../../src/session/store.js';

/**
 * Wraps a store and remembers every ID it was asked about, so a test can prove that a value
 * which cannot be a session ID never reaches a store. It can also be told to fail.
 */
export class SpyStore implements Store {
  readonly lookups: string[] = [];
  /** When set, `add` throws it instead of storing. */
  failAdd: Error | undefined;
  /** When set, `get` throws it (a backend outage) instead of looking. */
  failGet: Error | undefined;
  /**
   * Milliseconds each get and save waits first, as a networked store would. The in-memory
   * store answers within one tick, so without a wait concurrent requests never overlap.
   */
  latencyMs = 0;

  constructor(readonly inner: Store) {}

  async get(id: string): Promise<Session | undefined> {
    this.lookups.push(id);
    await this.#wait();
    if (this.failGet) throw this.failGet;
    return this.inner.get(id);
  }

  add(session: Session): Promise<void> {
    if (this.failAdd) return Promise.reject(this.failAdd);
    return this.inner.add(session);
  }

  async save(session: Session): Promise<boolean> {
    await this.#wait();
    return this.inner.save(session);
  }

  remove(id: string): Promise<void> {
    return this.inner.remove(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  #wait(): Promise<void> {
    if (this.latencyMs <= 0) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, Math.random() * this.latencyMs));
  }
}
