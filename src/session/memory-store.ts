import { logId, silentLogger, type Logger } from './logger.js';
import { isExpired, Session, type SessionRecord } from './session.js';
import type { Store } from './store.js';

export interface MemoryStoreOptions {
  /** How often idle sessions are swept out, in milliseconds (default: one minute). */
  cleanerIntervalMs?: number;
  logger?: Logger;
  /** The clock, for tests. */
  now?: () => number;
}

/**
 * Keeps sessions in this process's memory: for development, tests and single-instance apps.
 * Sessions are lost on restart and not shared between instances. A periodic cleaner removes
 * the ones idle longer than their timeout; its timer never keeps the process alive.
 *
 * Stored records are never changed, only replaced, so a session can share the stored record
 * instead of a copy (a `Session` never changes a record either; see its comment).
 */
export class MemoryStore implements Store {
  readonly #records = new Map<string, SessionRecord>();
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #cleaner: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#cleaner = setInterval(() => this.removeExpired(), options.cleanerIntervalMs ?? 60_000);
    this.#cleaner.unref();
  }

  /** How many sessions are held, expired ones included until the cleaner runs. */
  get size(): number {
    return this.#records.size;
  }

  async get(id: string): Promise<Session | undefined> {
    const record = this.#live(id);
    if (!record) return undefined;
    // Reading counts as access, and costs nothing here, so idle time restarts now.
    const accessed: SessionRecord = { ...record, accessed: this.#now() };
    this.#records.set(id, accessed);
    return Session.fromRecord(accessed);
  }

  async add(session: Session): Promise<void> {
    const record = session.toRecord(this.#now());
    this.#records.set(session.id, record);
    session.markSaved(record);
    this.#logger.info('session added', { sessionId: logId(session.id) });
  }

  async save(session: Session): Promise<boolean> {
    if (!session.changed) return this.#live(session.id) !== undefined;
    const stored = this.#live(session.id);
    if (!stored) return false;
    if (stored.version !== session.version) session.rebase(stored);
    const record = session.toRecord(this.#now());
    this.#records.set(session.id, record);
    session.markSaved(record);
    return true;
  }

  async remove(id: string): Promise<void> {
    if (this.#records.delete(id)) this.#logger.info('session removed', { sessionId: logId(id) });
  }

  /** Drops every session idle longer than its timeout; returns how many. */
  removeExpired(): number {
    const now = this.#now();
    let removed = 0;
    for (const [id, record] of this.#records) {
      if (isExpired(record, now)) {
        this.#records.delete(id);
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
      this.#records.delete(id);
      this.#logger.info('session expired', { sessionId: logId(id) });
      return undefined;
    }
    return record;
  }
}
