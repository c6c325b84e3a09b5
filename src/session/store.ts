import type { Session } from './session.js';

/**
 * Where sessions live. One Store serves the whole process; every method may be called by
 * many requests at once. Stores throw `StoreUnavailableError` when a backend is down and
 * `SessionTooLargeError` when a session cannot be stored at all, never a bare backend error.
 */
export interface Store {
  /** The live session with this ID, or undefined when it is unknown, expired or removed. */
  get(id: string): Promise<Session | undefined>;
  /** Stores a new session. Resolves only once it is stored where the next request will look. */
  add(session: Session): Promise<void>;
  /**
   * Saves what a request changed in a session it got from `get`, and keeps it alive. If
   * another request saved the session meanwhile, the changes are replayed on the newer state
   * (see `Session.update`). Resolves false when the session was removed meanwhile: a logout
   * is never undone by a save.
   */
  save(session: Session): Promise<boolean>;
  /** Removes a session everywhere it is kept. */
  remove(id: string): Promise<void>;
  /** Finishes pending work (asynchronous writes, timers) and releases clients. */
  close(): Promise<void>;
}

/** A backend the store needs is down or too slow; the request can be retried later. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** The session exceeds a backend's limit (memcache item size, key length). */
export class SessionTooLargeError extends Error {
  override name = 'SessionTooLargeError';
}
