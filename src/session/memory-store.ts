import { logId, silentLogger, type Logger } from './logger.js';
import { isExpired, type SessionRecord } from './record.js';
import type { Loaded, RemoveResult, Store, StoreToken, WriteResult } from './store.js';

export interface MemoryStoreOptions {
  /**
   * Most sessions held (default 10,000). Past it, the least recently used one is dropped, so a
   * login flood costs bounded memory (the flood's own sessions go first, being the oldest used).
   */
  maxSessions?: number | undefined;
  /** How often expired sessions are swept out, in ms (default: one minute). */
  cleanerIntervalMs?: number | undefined;
  logger?: Logger | undefined;
  /** The clock, for tests. */
  now?: (() => number) | undefined;
}

/**
 * Sessions in this process's memory: for development, tests and single-instance apps. Lost on
 * restart, not shared between instances. Records are never changed, only replaced, so the
 * record itself is the token of a conditional write.
 */
export class MemoryStore implements Store {
  /** In order of last use: the first entry is the least recently used. */
  readonly #records = new Map<string, SessionRecord>();
  readonly #byOwner = new Map<string, Set<string>>();
  readonly #maxSessions: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #cleaner: NodeJS.Timeout;
  /** Logged once per process, not once per evicted session (a flood would flood the log too). */
  #warnedFull = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#cleaner = setInterval(() => this.removeExpired(), options.cleanerIntervalMs ?? 60_000);
    // The timer must not keep the process alive.
    this.#cleaner.unref();
  }

  /** Sessions held, expired ones included until the cleaner runs. */
  get size(): number {
    return this.#records.size;
  }

  async load(id: string): Promise<Loaded | undefined> {
    const record = this.#live(id);
    if (!record) return undefined;
    // Most recently used goes last.
    this.#records.delete(id);
    this.#records.set(id, record);
    return { record, token: record };
  }

  async write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult> {
    const stored = this.#live(record.id);
    if (token === undefined) {
      if (stored) return { status: 'conflict' };
      this.#evictIfFull();
      this.#index(record);
    } else if (!stored) {
      return { status: 'gone' };
    } else if (stored !== token) {
      return { status: 'conflict' };
    }
    this.#records.delete(record.id);
    this.#records.set(record.id, record);
    return { status: 'stored', token: record };
  }

  async remove(id: string, token?: StoreToken): Promise<RemoveResult> {
    const stored = this.#live(id);
    if (token !== undefined && stored === undefined) return 'gone';
    if (token !== undefined && stored !== token) return 'conflict';
    this.#drop(id);
    return 'removed';
  }

  async owned(owner: string): Promise<SessionRecord[]> {
    const ids = this.#byOwner.get(owner);
    if (!ids) return [];
    return [...ids].map((id) => this.#live(id)).filter((record) => record !== undefined);
  }

  /** Drops every expired session; returns how many. */
  removeExpired(): number {
    const now = this.#now();
    let removed = 0;
    for (const [id, record] of this.#records) {
      if (isExpired(record, now)) {
        this.#drop(id);
        removed++;
      }
    }
    if (removed > 0) this.#logger.info('expired sessions removed', { count: removed });
    return removed;
  }

  async close(): Promise<void> {
    clearInterval(this.#cleaner);
  }

  #live(id: string): SessionRecord | undefined {
    const record = this.#records.get(id);
    if (record && isExpired(record, this.#now())) {
      this.#drop(id);
      this.#logger.info('session expired', { sessionId: logId(id) });
      return undefined;
    }
    return record;
  }

  #evictIfFull(): void {
    while (this.#records.size >= this.#maxSessions) {
      const oldest = this.#records.keys().next().value;
      if (oldest === undefined) return;
      this.#drop(oldest);
      if (!this.#warnedFull)
        this.#logger.warn('memory store full: least recently used sessions are dropped', {
          maxSessions: this.#maxSessions,
        });
      this.#warnedFull = true;
    }
  }

  #index(record: SessionRecord): void {
    if (record.owner === undefined) return;
    let ids = this.#byOwner.get(record.owner);
    if (!ids) this.#byOwner.set(record.owner, (ids = new Set()));
    ids.add(record.id);
  }

  #drop(id: string): void {
    const record = this.#records.get(id);
    if (!record) return;
    this.#records.delete(id);
    if (record.owner === undefined) return;
    const ids = this.#byOwner.get(record.owner);
    ids?.delete(id);
    if (ids?.size === 0) this.#byOwner.delete(record.owner);
  }
}
