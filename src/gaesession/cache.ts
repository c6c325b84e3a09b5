import type { Logger } from '../session/logger.js';

/**
 * A cache tier of the App Engine store: memcache (memcache.ts) or Valkey (valkey.ts). It keeps
 * bytes under keys and knows nothing of sessions; `GaeStore` (the tiering policy) decides
 * what to write, and the codec what the bytes are. Each method is one round trip.
 *
 * Every method is bounded in time (about a second at most, retries included) and throws
 * `StoreUnavailableError` when the server is down, hangs or refuses; after a failure the
 * tier fails at once for a short window (`CircuitBreaker`) instead of making every request
 * wait. A value or key over the backend's limit throws `SessionTooLargeError` before sending.
 */

/**
 * The tombstone `bury` writes for a session is its key with this suffix: the longest key a tier
 * makes from a session ID, which the key-prefix limit (config) leaves room for.
 */
export const TOMBSTONE_SUFFIX = ':ended';
/** An owner's index is kept under the key prefix plus this plus the owner's hash. */
export const OWNER_PREFIX = 'owner:';

/** How a cache tier is bounded, named and logged: the same for memcache and Valkey. */
export interface CacheTierOptions {
  keyPrefix?: string | undefined;
  /** The whole time a call may take, retries included, in ms (default 1000), whatever the client does. */
  callTimeoutMs?: number | undefined;
  /** After a failure, calls fail at once for this long (ms, default 3000) instead of each waiting. */
  openMs?: number | undefined;
  logger?: Logger | undefined;
  /** The clock (epoch ms) of the circuit breaker, for tests. */
  now?: (() => number) | undefined;
  /** Called when the backend answers again after an outage. */
  onRecovered?: (() => void) | undefined;
}

/** What a conditional write presents: memcache's CAS value, or the bytes Valkey returned. */
export type CacheToken = Buffer;

export interface CachedItem {
  value: Buffer;
  /** Presented by `replace` / `delete` so they only act on this very item. */
  token: CacheToken;
}

export type CacheWriteResult = { status: 'stored'; token: CacheToken } | { status: 'conflict' } | { status: 'gone' };

export interface SessionCache {
  /** "memcache" or "Valkey", for log lines. */
  readonly name: string;
  /** Reads a session's bytes and restarts its TTL, in one round trip; undefined when absent. */
  read(id: string, ttlSeconds: number): Promise<CachedItem | undefined>;
  /** Reads a session's bytes without touching its TTL (listing a user's sessions must not keep them alive). */
  get(id: string): Promise<Buffer | undefined>;
  /** Sets the TTL of a session's item (used when its absolute deadline is nearer than the idle timeout). */
  expire(id: string, ttlSeconds: number): Promise<void>;
  /** Stores bytes only if the key is absent; undefined when it is present. */
  add(id: string, value: Buffer, ttlSeconds: number): Promise<CacheToken | undefined>;
  /** Replaces the bytes only if the item is still the one `token` came from. */
  replace(id: string, value: Buffer, ttlSeconds: number, token: CacheToken): Promise<CacheWriteResult>;
  /**
   * Deletes a session's item. With a token, only if the item is still that one
   * (`conflict` otherwise); `absent` when there was nothing to delete.
   */
  delete(id: string, token?: CacheToken): Promise<'deleted' | 'conflict' | 'absent'>;
  /**
   * Marks an ID as ended (logged out, rotated) for `ttlSeconds`, under a key of its own: a
   * reader that found the session elsewhere (Datastore) checks it before putting it back.
   */
  bury(id: string, ttlSeconds: number): Promise<void>;
  /** Whether `bury` marked this ID. */
  isBuried(id: string): Promise<boolean>;
  /** Adds a session ID to an owner's index (refreshing the index's TTL to `ttlSeconds`). */
  addOwned(owner: string, id: string, ttlSeconds: number): Promise<void>;
  /** The IDs in an owner's index (some may have ended since: the caller checks each). */
  listOwned(owner: string): Promise<string[]>;
  /** Takes IDs out of an owner's index. */
  removeOwned(owner: string, ids: string[]): Promise<void>;
  /** Calls made so far, for tests and the benchmark's store-traffic table. */
  readonly roundTrips: number;
  close(): Promise<void>;
}
