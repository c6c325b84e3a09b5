import { logId, type Logger } from '../session/logger.js';
import { cacheTtlSeconds, deadline, type SessionRecord } from '../session/record.js';
import type { CacheToken, CacheWriteResult, SessionCache } from './cache.js';
import { decodeWith, UndecodableSessionError, type Codec } from './codec.js';

export interface CacheRecordsOptions {
  cache: SessionCache;
  codec: Codec;
  /** The idle timeout: the TTL a read restarts (a GAT or GETEX needs one before the record is known). */
  timeoutSeconds: number;
  logger: Logger;
  now: () => number;
}

/**
 * Session records in a cache tier: the cache keeps bytes, this turns them into records, gives
 * each the TTL it has left (never past its absolute deadline) and drops what it cannot read.
 */
export class CacheRecords {
  readonly cache: SessionCache;
  readonly #codec: Codec;
  readonly #timeoutSeconds: number;
  readonly #logger: Logger;
  readonly #now: () => number;

  constructor(options: CacheRecordsOptions) {
    this.cache = options.cache;
    this.#codec = options.codec;
    this.#timeoutSeconds = options.timeoutSeconds;
    this.#logger = options.logger;
    this.#now = options.now;
  }

  /** The cached record with its token, its TTL restarted (and held to its deadline); undefined on a miss. */
  async read(id: string): Promise<{ record: SessionRecord; token: CacheToken } | undefined> {
    const item = await this.cache.read(id, this.#timeoutSeconds);
    if (!item) return undefined;
    let record: SessionRecord;
    try {
      record = decodeWith(this.#codec, item.value, id);
    } catch (error) {
      if (!(error instanceof UndecodableSessionError)) throw error;
      // Datastore may still hold a good copy; if not, the session is gone and the cookie cleared.
      const fields = { tier: this.cache.name, sessionId: logId(id), error: error.message };
      this.#logger.error('undecodable session deleted', fields);
      await this.cache.delete(id);
      return undefined;
    }
    const now = this.#now();
    if (now >= deadline(record)) {
      await this.cache.delete(id);
      return undefined;
    }
    // The read restarted the idle TTL; near its absolute deadline a session gets only what is left.
    const ttl = cacheTtlSeconds(record, now);
    if (ttl < this.#timeoutSeconds) await this.cache.expire(id, ttl);
    return { record, token: item.token };
  }

  /** Stores a new session; undefined when the ID is taken. */
  add(record: SessionRecord): Promise<CacheToken | undefined> {
    return this.cache.add(record.id, this.#codec.encode(record), cacheTtlSeconds(record, this.#now()));
  }

  replace(record: SessionRecord, token: CacheToken): Promise<CacheWriteResult> {
    return this.cache.replace(record.id, this.#codec.encode(record), cacheTtlSeconds(record, this.#now()), token);
  }

  /**
   * Ends a session in the cache, for good: a tombstone for the idle timeout, then the delete.
   * With a token, only if the item is still that one ('conflict'); 'absent' when it was not
   * there (evicted, or ended already).
   */
  async end(id: string, token?: CacheToken): Promise<'ended' | 'conflict' | 'absent'> {
    const deleted = token && (await this.cache.delete(id, token));
    if (deleted === 'conflict') return 'conflict';
    await this.cache.bury(id, this.#timeoutSeconds);
    await this.cache.delete(id);
    return deleted === 'absent' ? 'absent' : 'ended';
  }

  /**
   * Puts back a session read from Datastore: its token; 'taken' when the cache has it already;
   * 'ended' when a logout or rotation buried it meanwhile. The tombstone is checked after the
   * ADD, and a removal buries before it deletes: either this sees the tombstone, or the
   * removal's delete comes after this ADD.
   */
  async putBack(record: SessionRecord): Promise<CacheToken | 'taken' | 'ended'> {
    const token = await this.add(record);
    if (!token) return 'taken';
    if (!(await this.cache.isBuried(record.id))) return token;
    // Not only if it is still this copy: another request may have read it and written a change.
    await this.cache.delete(record.id);
    return 'ended';
  }
}
