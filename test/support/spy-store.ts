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

  constructor(readonly inner: Store) {}

  get(id: string): Promise<Session | undefined> {
    this.lookups.push(id);
    return this.inner.get(id);
  }

  add(session: Session): Promise<void> {
    if (this.failAdd) return Promise.reject(this.failAdd);
    return this.inner.add(session);
  }

  save(session: Session): Promise<boolean> {
    return this.inner.save(session);
  }

  remove(id: string): Promise<void> {
    return this.inner.remove(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
