import { logId, silentLogger, type Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';
import {
  StoreUnavailableError,
  type Loaded,
  type RemoveResult,
  type Store,
  type StoreToken,
  type WriteResult,
} from '../session/store.js';
import { DatastoreBackup, type DatastoreWrites } from './backup.js';
import type { CacheToken, SessionCache } from './cache.js';
import { jsonCodec, type Codec } from './codec.js';
import type { DatastoreTier } from './datastore.js';
import { CacheRecords } from './cache-records.js';
import { removeIf, writeIf } from './datastore-writes.js';
import { OwnerIndex } from './owner-index.js';
import { StaleCopies } from './stale-copies.js';

export type { DatastoreWrites } from './backup.js';

export interface GaeStoreOptions {
  /** The cache tier: memcache (MemcacheCache) or Valkey (ValkeyCache). */
  cache: SessionCache;
  /** The Datastore tier; without it (SESSION_DATASTORE=off) the cache is all there is. */
  datastore?: DatastoreTier | undefined;
  /** `sync` (default) or `async` Datastore writes. */
  datastoreWrites?: DatastoreWrites | undefined;
  /** The idle timeout (seconds): how long a read keeps a cached session. The app's one setting. */
  timeoutSeconds: number;
  codec?: Codec | undefined;
  /** Least time between two asynchronous writes of one session, in ms (default 2000). */
  asyncIntervalMs?: number | undefined;
  /** How long `close` waits for pending asynchronous writes, in ms (default 5000). */
  closeGraceMs?: number | undefined;
  logger?: Logger | undefined;
  now?: (() => number) | undefined;
}

/** Which tier a token came from: the cache (its CAS value or bytes) or Datastore (while the cache was away). */
type TieredToken = { cache: CacheToken } | { datastoreVersion: number };

/**
 * The App Engine store (the Go `gaesession` store): sessions in a cache tier, backed up in
 * Datastore. It is a tiering policy over two record stores — the cache's (cache-records.ts
 * over memcache.ts or valkey.ts) and Datastore's (datastore.ts, datastore-writes.ts) — and each
 * other concern has its file: backups (backup.ts, backup-queue.ts), stale cache copies
 * (stale-copies.ts), owner indexes (owner-index.ts).
 *
 * - Read: the cache (one round trip that also restarts the item's TTL); on a miss Datastore,
 *   and the session is put back into the cache, unless it was ended meanwhile.
 * - Write: a conditional write to the cache, then the backup (sync: before the response;
 *   async: queued), version-checked, so an older state never replaces a newer one.
 * - Remove: a tombstone in the cache first, then both tiers: no read-through, put-back or
 *   late backup brings the session back.
 * - Degrade: cache down → Datastore serves and stores; Datastore down → the cache carries on.
 */
export class GaeStore implements Store {
  readonly #cache: SessionCache;
  readonly #datastore: DatastoreTier | undefined;
  readonly #backup: DatastoreBackup | undefined;
  readonly #closeGraceMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #stale = new StaleCopies();
  readonly #owners: OwnerIndex;
  readonly #records: CacheRecords;

  constructor(options: GaeStoreOptions) {
    this.#cache = options.cache;
    this.#datastore = options.datastore;
    const codec = options.codec ?? jsonCodec;
    this.#closeGraceMs = options.closeGraceMs ?? 5000;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    const datastore = this.#datastore;
    this.#backup =
      datastore &&
      new DatastoreBackup({
        datastore,
        cache: this.#cache,
        writes: options.datastoreWrites ?? 'sync',
        intervalMs: options.asyncIntervalMs,
        logger: this.#logger,
        now: this.#now,
      });
    this.#records = new CacheRecords({
      cache: this.#cache,
      codec,
      timeoutSeconds: options.timeoutSeconds,
      logger: this.#logger,
      now: this.#now,
    });
    this.#owners = new OwnerIndex({ cache: this.#cache, datastore, codec, now: this.#now });
  }

  async load(id: string): Promise<Loaded | undefined> {
    let cacheDown = false;
    let record: SessionRecord | undefined;
    for (let attempt = 1; attempt <= 2 && !cacheDown; attempt++) {
      try {
        const hit = await this.#readCache(id);
        if (hit) return hit;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || !this.#datastore) throw error;
        cacheDown = true;
      }
      record = await this.#readDatastore(id);
      if (!record) return undefined;
      if (cacheDown) break;
      const putBack = await this.#putBack(record);
      if (putBack !== 'taken') return putBack;
      // Another request put it back (or wrote it) first: read the cache again.
    }
    // The cache is away, or busy changing hands: the session was read all the same.
    const source = `Datastore (${this.#cache.name} ${cacheDown ? 'unreachable' : 'busy'})`;
    return record && { record, token: { datastoreVersion: record.version } satisfies TieredToken, source };
  }

  async write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult> {
    const tiered = token as TieredToken | undefined;
    if (tiered && 'datastoreVersion' in tiered) return this.#writeDatastore(record, tiered.datastoreVersion);
    let result: WriteResult;
    try {
      // A copy older than a write this instance made in Datastore must not take a write.
      if (this.#stale.has(record.id)) await this.#stale.drop(this.#cache, record.id);
      if (!tiered) {
        const cas = await this.#records.add(record);
        if (!cas) return { status: 'conflict' };
        if (record.owner !== undefined) await this.#owners.add(record);
        result = { status: 'stored', token: { cache: cas } satisfies TieredToken };
      } else {
        const written = await this.#records.replace(record, tiered.cache);
        // Evicted, flushed or ended: a reload asks Datastore, which knows which.
        if (written.status === 'gone') return { status: this.#datastore ? 'conflict' : 'gone' };
        if (written.status === 'conflict') return written;
        result = { status: 'stored', token: { cache: written.token } satisfies TieredToken };
      }
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || !this.#datastore) throw error;
      // The cache is down: Datastore is the session's home until it is back.
      return this.#writeDatastore(record, tiered ? record.version - 1 : undefined);
    }
    const durable = this.#backup?.write(record, !tiered);
    durable?.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection
    return durable ? { ...result, durable } : result;
  }

  async remove(id: string, token?: StoreToken): Promise<RemoveResult> {
    const tiered = token as TieredToken | undefined;
    let absentFromCache = false;
    let buried = true;
    try {
      const ended = await this.#records.end(id, tiered && 'cache' in tiered ? tiered.cache : undefined);
      if (ended === 'conflict') return 'conflict';
      absentFromCache = ended === 'absent';
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || !this.#datastore) throw error;
      this.#stale.note(id);
      buried = false;
    }
    const datastore = this.#datastore;
    if (!datastore) return absentFromCache ? 'gone' : 'removed';
    await this.#backup?.drop(id); // a backup in flight must land before the delete, not after
    try {
      if (tiered && 'datastoreVersion' in tiered) return await removeIf(datastore, id, tiered.datastoreVersion);
      // Gone from the cache (evicted, or ended): Datastore tells which, on this rare path only.
      const existed = absentFromCache ? (await datastore.lookup(id)) !== undefined : true;
      await datastore.delete(id);
      return existed ? 'removed' : 'gone';
    } catch (error) {
      // The tombstone outlives the entity's `exp`, and every read and backup honours it: the
      // logout holds, and the purge deletes the entity in time.
      if (!buried || !(error instanceof StoreUnavailableError)) throw error;
      this.#logger.warn('ended session left in Datastore until it expires', { sessionId: logId(id) });
      return 'removed';
    }
  }

  owned(owner: string, known?: SessionRecord): Promise<SessionRecord[]> {
    return this.#owners.list(owner, known);
  }

  /** Writes pending asynchronous backups (within the grace period). The app closes the clients it made. */
  async close(): Promise<void> {
    await this.#backup?.close(this.#closeGraceMs);
  }

  /** Sessions with an asynchronous backup waiting or running. */
  get pendingBackups(): number {
    return this.#backup?.pending ?? 0;
  }

  /** Waits until every pending asynchronous backup has landed (tests, benchmarks). */
  flush(): Promise<void> {
    return this.#backup?.flush() ?? Promise.resolve();
  }

  /** The cached session; undefined on a miss. */
  async #readCache(id: string): Promise<Loaded | undefined> {
    if (this.#stale.has(id)) await this.#stale.drop(this.#cache, id);
    const hit = await this.#records.read(id);
    return hit && { record: hit.record, token: { cache: hit.token } satisfies TieredToken, source: this.#cache.name };
  }

  async #readDatastore(id: string): Promise<SessionRecord | undefined> {
    await this.#backup?.landed(id); // a sync backup still landing would make this read an old state
    const record = await this.#datastore?.lookup(id);
    // An asynchronous backup still waiting here holds a newer state than Datastore's.
    const waiting = this.#backup?.waiting(id);
    return record && waiting && waiting.version > record.version ? waiting : record;
  }

  /**
   * Puts a session read from Datastore back into the cache, unless it was ended meanwhile
   * (then undefined). 'taken': the cache has it already.
   */
  async #putBack(record: SessionRecord): Promise<Loaded | undefined | 'taken'> {
    let put: CacheToken | 'taken' | 'ended';
    try {
      put = await this.#records.putBack(record);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      // Read, maybe not cached; but its ADD may have landed unanswered, with no tombstone
      // check after it: the next access drops that copy first.
      this.#stale.note(record.id);
      return { record, token: { datastoreVersion: record.version } satisfies TieredToken, source: 'Datastore' };
    }
    if (put === 'taken') return 'taken';
    if (put === 'ended') return undefined;
    this.#logger.info('session recovered from Datastore', { sessionId: logId(record.id) });
    const source = `Datastore, put back into ${this.#cache.name}`;
    return { record, token: { cache: put } satisfies TieredToken, source };
  }

  /**
   * A write while the cache is away, conditional on the Datastore version the record was built
   * on. If the cache answers again, the record goes back into it (its old copy dropped first),
   * so the next write is a cache write again and the session leaves Datastore-only mode.
   */
  async #writeDatastore(record: SessionRecord, baseVersion: number | undefined): Promise<WriteResult> {
    const datastore = this.#datastore;
    if (!datastore) throw new StoreUnavailableError(`${this.#cache.name} unavailable and Datastore is off`);
    this.#stale.note(record.id);
    await this.#backup?.landed(record.id); // based on what Datastore holds once its backups landed
    const status = await writeIf(datastore, record, baseVersion);
    if (status !== 'stored') return { status };
    const back = await this.#backInCache(record);
    return { status, token: back ?? ({ datastoreVersion: record.version } satisfies TieredToken) };
  }

  /** Puts a record just written to Datastore into the cache again, if the cache answers. */
  async #backInCache(record: SessionRecord): Promise<TieredToken | undefined> {
    try {
      await this.#stale.drop(this.#cache, record.id);
      const loaded = await this.#putBack(record);
      return loaded && loaded !== 'taken' && 'cache' in loaded.token ? (loaded.token as TieredToken) : undefined;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      return undefined;
    }
  }
}
