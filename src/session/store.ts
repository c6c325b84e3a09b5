import type { SessionRecord } from './record.js';

/**
 * What a store hands out with a record and wants back with a conditional write: a memcache
 * CAS value, a Valkey value, a Datastore version, a memory store's record. Opaque to the core.
 */
export type StoreToken = object;

export interface Loaded {
  record: SessionRecord;
  token: StoreToken;
  /** Where the record came from when a store has tiers ("Datastore, put back into memcache"). */
  source?: string | undefined;
}

export type RemoveResult = 'removed' | 'conflict' | 'gone';

/**
 * What a conditional write did: `conflict` — another write came first; `gone` — the session
 * ended. A stored write may come with `durable`: it settles once the record is also in the
 * store's durable tier (a synchronous Datastore backup). The session's next write need not
 * wait for it; the request that made the write does.
 */
export type WriteResult =
  | { status: 'stored'; token: StoreToken; durable?: Promise<void> | undefined }
  | { status: 'conflict' }
  | { status: 'gone' };

/**
 * Where sessions live: a store of records, with a conditional write. This is all a store
 * implements; the loop that saves a request's changes (write, on conflict reload and replay,
 * write again) lives once in the core (commit.ts), and test/support/store-conformance.ts is
 * this contract's test. Every method may be called by many requests at once.
 *
 * A store throws `StoreUnavailableError` when a backend is down or too slow, and
 * `SessionTooLargeError` when a session can never be stored; nothing else.
 */
export interface Store {
  /** The live record with this ID, and its token; undefined when unknown, expired or ended. */
  load(id: string): Promise<Loaded | undefined>;
  /**
   * Writes `record` only if the stored one is still the one `token` came from. With no token
   * the ID must be new (`conflict` when it is taken). Resolves only once the record is where
   * the next request will look.
   */
  write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult>;
  /**
   * Ends a session in every tier, for good: no later read, put-back or late write brings the
   * ID back. With a token, only if the session is unchanged since (`conflict` otherwise), and
   * `gone` when it had ended already (a rotation must not bring it back under a new ID).
   */
  remove(id: string, token?: StoreToken): Promise<RemoveResult>;
  /**
   * The live sessions whose `owner` is this hash (see `ownerHash`), across instances. `known`
   * is one of them the caller holds already (the request's own session): it need not be read.
   */
  owned(owner: string, known?: SessionRecord): Promise<SessionRecord[]>;
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

/**
 * Too many requests changed one session at the same moment and this one kept losing. Its
 * change was not stored; unlike an outage, a retry soon succeeds.
 */
export class SessionContentionError extends StoreUnavailableError {
  override name = 'SessionContentionError';
}
