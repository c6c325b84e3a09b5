import { deadline, type SessionRecord } from '../session/record.js';
import { StoreUnavailableError } from '../session/store.js';
import type { SessionCache } from './cache.js';
import type { Codec } from './codec.js';
import type { DatastoreTier } from './datastore.js';

export interface OwnerIndexOptions {
  cache: SessionCache;
  datastore: DatastoreTier | undefined;
  codec: Codec;
  now: () => number;
}

/**
 * Finds a user's sessions in O(their number), across instances. The cache keeps one index per
 * owner (a CAS-updated item in memcache, a set in Valkey), changed only at login and logout,
 * so an ordinary view never touches it; ended sessions are pruned from it when it is listed. Datastore's indexed `own` property is the index that
 * survives a cache flush: an owner's cache index that is missing is rebuilt from it.
 */
export class OwnerIndex {
  readonly #cache: SessionCache;
  readonly #datastore: DatastoreTier | undefined;
  readonly #codec: Codec;
  readonly #now: () => number;

  constructor(options: OwnerIndexOptions) {
    this.#cache = options.cache;
    this.#datastore = options.datastore;
    this.#codec = options.codec;
    this.#now = options.now;
  }

  /**
   * A new session of its owner (at login). Best effort: Datastore's `own` property is the
   * durable index, and a cache that cannot take this has failed the session's write anyway.
   */
  async add(record: SessionRecord): Promise<void> {
    const owner = record.owner;
    if (owner === undefined) return;
    try {
      // After a flush, the index is rebuilt before it takes the new ID: it must not forget the others.
      if (this.#datastore && (await this.#cache.listOwned(owner)).length === 0) await this.#rebuild(owner);
      await this.#cache.addOwned(owner, record.id, record.lifetime);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
  }

  /** The live sessions of an owner; `known` (live, held by the caller) is not read again. */
  async list(owner: string, known?: SessionRecord): Promise<SessionRecord[]> {
    let ids: string[] | undefined;
    try {
      ids = await this.#cache.listOwned(owner);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || !this.#datastore) throw error;
    }
    let records: SessionRecord[];
    if (ids === undefined) {
      // The cache is away: Datastore's index answers (or its failure does).
      records = await this.#datastore!.owned(owner);
    } else if (ids.length === 0) {
      records = this.#datastore ? await this.#rebuild(owner).catch(unlessUnavailable([])) : [];
    } else {
      // Only the others are read: an owner with one session (the usual case) reads nothing more.
      const others = known ? ids.filter((id) => id !== known.id) : ids;
      const found = others.length > 0 ? await Promise.all(others.map((id) => this.#live(id))) : [];
      records = found.filter((record) => record !== undefined);
      const ended = others.filter((_, i) => found[i] === undefined);
      if (ended.length > 0) await this.#cache.removeOwned(owner, ended).catch(unlessUnavailable(undefined));
    }
    // The caller's own session is live whatever an index missed.
    if (known && !records.some((record) => record.id === known.id)) records.push(known);
    return records;
  }

  /** The owner's sessions from Datastore's `own` index, put back into the cache's index. */
  async #rebuild(owner: string): Promise<SessionRecord[]> {
    const records = await this.#datastore!.owned(owner);
    for (const record of records) await this.#cache.addOwned(owner, record.id, record.lifetime).catch(() => undefined);
    return records;
  }

  /** A session as it is now, read without restarting its idle time. */
  async #live(id: string): Promise<SessionRecord | undefined> {
    const value = await this.#cache.get(id);
    if (value !== undefined) {
      try {
        // Being in the cache means not idle for too long; only the absolute deadline is left to check.
        const record = this.#codec.decode(value);
        return this.#now() < deadline(record) ? record : undefined;
      } catch {
        return undefined;
      }
    }
    // Evicted from the cache alone: Datastore may still have it (and may not be reachable).
    return this.#datastore?.lookup(id).catch(() => undefined);
  }
}

/** A fallback for a failure that is only a backend being away. */
function unlessUnavailable<T>(fallback: T): (error: unknown) => T {
  return (error: unknown) => {
    if (error instanceof StoreUnavailableError) return fallback;
    throw error;
  };
}
