import type { Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';
import { StoreUnavailableError } from '../session/store.js';
import { BackupQueue } from './backup-queue.js';
import type { SessionCache } from './cache.js';
import type { DatastoreTier } from './datastore.js';
import { backup } from './datastore-writes.js';

/** When the Datastore copy of a cached session is written: before the response, or after it. */
export type DatastoreWrites = 'sync' | 'async';

export interface BackupOptions {
  datastore: DatastoreTier;
  cache: SessionCache;
  writes: DatastoreWrites;
  intervalMs?: number | undefined;
  logger: Logger;
  now: () => number;
}

/**
 * The Datastore copy of what the cache tier took: written before the response (`sync`) or
 * queued (`async`). Datastore holding a newer version is normal (another request's backup
 * landed first): the cache's line of versions is the truth, and a backup never undoes a cache
 * write (others may have read it already). A backup that finds the entity gone writes it only
 * if the cache says the session has no tombstone: a late backup never brings back a
 * logged-out session.
 */
export class DatastoreBackup {
  readonly #datastore: DatastoreTier;
  readonly #cache: SessionCache;
  readonly #queue: BackupQueue | undefined;
  /** Sync writes under way, by session: a removal waits for them. */
  readonly #inFlight = new Map<string, Set<Promise<void>>>();

  constructor(options: BackupOptions) {
    this.#datastore = options.datastore;
    this.#cache = options.cache;
    if (options.writes === 'async') {
      this.#queue = new BackupQueue({
        // Even a new session's backup checks for a tombstone: it may land after a logout.
        write: (record) => this.#write(record, false),
        intervalMs: options.intervalMs,
        logger: options.logger,
        now: options.now,
      });
    }
  }

  /** Sessions with an asynchronous backup waiting or running. */
  get pending(): number {
    return this.#queue?.size ?? 0;
  }

  /**
   * Backs up `record`: queued (async), or written now (sync; resolves once written). Sync
   * writes of one session may overlap, each checked against the version Datastore holds.
   */
  write(record: SessionRecord, isNew: boolean): Promise<void> | undefined {
    if (this.#queue) {
      this.#queue.enqueue(record);
      return undefined;
    }
    // With Datastore down (the breaker open), the cache holds the session: no wait per request.
    if (!this.#datastore.available) return undefined;
    const written = this.#write(record, isNew).catch((error: unknown) => {
      if (!(error instanceof StoreUnavailableError)) throw error;
    });
    const inFlight = this.#inFlight.get(record.id) ?? new Set<Promise<void>>();
    inFlight.add(written);
    this.#inFlight.set(record.id, inFlight);
    const settled = (): void => {
      inFlight.delete(written);
      if (inFlight.size === 0 && this.#inFlight.get(record.id) === inFlight) this.#inFlight.delete(record.id);
    };
    written.then(settled, settled);
    return written;
  }

  /** A state still waiting to be written: newer than what Datastore has. */
  waiting(id: string): SessionRecord | undefined {
    return this.#queue?.waiting(id);
  }

  /** The session was removed: its waiting state is dropped, and the writes in flight waited for. */
  async drop(id: string): Promise<void> {
    const inFlight = this.#inFlight.get(id);
    if (inFlight) await Promise.allSettled(inFlight);
    await this.#queue?.drop(id);
  }

  flush(): Promise<void> {
    return this.#queue?.flush() ?? Promise.resolve();
  }

  close(graceMs: number): Promise<void> {
    return this.#queue?.close(graceMs) ?? Promise.resolve();
  }

  async #write(record: SessionRecord, isNew: boolean): Promise<void> {
    let unknown = false;
    const stillLive = (): Promise<boolean> =>
      this.#cache.isBuried(record.id).then(
        (buried) => !buried,
        () => {
          unknown = true;
          return false;
        },
      );
    await backup(this.#datastore, record, isNew, stillLive);
    // The entity is gone and the cache cannot say whether a logout buried the session: not
    // written, as it may be a logged-out one (the queue tries again; sync mode leaves it cached).
    if (unknown)
      throw new StoreUnavailableError(`${this.#cache.name} unavailable: cannot tell whether the session ended`);
  }
}
