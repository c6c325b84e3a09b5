import type { Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';
import { StoreUnavailableError } from '../session/store.js';
import { BackupQueue } from './backup-queue.js';
import type { SessionCache } from './cache.js';
import type { DatastoreTier } from './datastore.js';
import { backup } from './datastore-writes.js';
import { SyncBackups } from './sync-backups.js';

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
  readonly #sync: SyncBackups | undefined;

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
    } else {
      this.#sync = new SyncBackups((record, isNew) =>
        this.#write(record, isNew).catch((error: unknown) => {
          if (!(error instanceof StoreUnavailableError)) throw error;
        }),
      );
    }
  }

  /** Sessions with an asynchronous backup waiting or running. */
  get pending(): number {
    return this.#queue?.size ?? 0;
  }

  /**
   * Backs up `record`: queued (async), or written before the promise settles (sync; see
   * sync-backups.ts for how the writes of one session take turns).
   */
  write(record: SessionRecord, isNew: boolean): Promise<void> | undefined {
    // With Datastore down (the breaker open), the cache holds the session: no wait per request.
    if (this.#sync) return this.#datastore.available ? this.#sync.write(record, isNew) : undefined;
    this.#queue?.enqueue(record);
    return undefined;
  }

  /** Waits until the session's synchronous backups have landed. */
  landed(id: string): Promise<void> {
    return this.#sync?.settled(id) ?? Promise.resolve();
  }

  /** A state still waiting to be written: newer than what Datastore has. */
  waiting(id: string): SessionRecord | undefined {
    return this.#queue?.waiting(id);
  }

  /** The session was removed: its waiting state is dropped, and the writes in flight waited for. */
  async drop(id: string): Promise<void> {
    await this.landed(id);
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
