import { logId, silentLogger, type Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';

export interface BackupQueueOptions {
  /** Writes one session's state to Datastore (the store's version-checked backup). */
  write: (record: SessionRecord) => Promise<unknown>;
  /** Least time between two writes of one session, in ms (default 2000). */
  intervalMs?: number | undefined;
  /** Attempts per state before it is given up and logged as lost (default 3). */
  attempts?: number | undefined;
  logger?: Logger | undefined;
  now?: (() => number) | undefined;
}

/** One session's backups: at most one state waiting, and at most one write running. */
interface Lane {
  waiting: { record: SessionRecord; attempt: number } | undefined;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  lastStart: number;
  /** The session was removed while a write was running: that write is not tried again. */
  dropped: boolean;
}

/**
 * The asynchronous Datastore backups (`SESSION_DATASTORE=async`), off the request path:
 *
 * - coalescing: a newer state of a session replaces the one waiting, and a session is written
 *   at most once per `intervalMs` (a busy session costs one write per interval, not one per view);
 * - order: one write per session at a time, so its states land in order (and each write is
 *   version-checked, so an older state never replaces a newer one anyway);
 * - `drop`: a logout discards the waiting state;
 * - shutdown: `close` writes everything still waiting, within a grace period.
 */
export class BackupQueue {
  readonly #write: BackupQueueOptions['write'];
  readonly #intervalMs: number;
  readonly #attempts: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #lanes = new Map<string, Lane>();
  #closing = false;

  constructor(options: BackupQueueOptions) {
    this.#write = options.write;
    this.#intervalMs = options.intervalMs ?? 2000;
    this.#attempts = options.attempts ?? 3;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Sessions with a backup waiting or running. */
  get size(): number {
    return this.#lanes.size;
  }

  /** The state waiting to be written for a session: newer than what Datastore has. */
  waiting(id: string): SessionRecord | undefined {
    return this.#lanes.get(id)?.waiting?.record;
  }

  enqueue(record: SessionRecord): void {
    let lane = this.#lanes.get(record.id);
    if (!lane) {
      lane = { waiting: undefined, timer: undefined, running: undefined, lastStart: 0, dropped: false };
      this.#lanes.set(record.id, lane);
    }
    lane.dropped = false;
    const earlier = lane.waiting;
    if (!earlier || record.version >= earlier.record.version) {
      lane.waiting = { record, attempt: 1 };
    }
    this.#schedule(record.id, lane);
  }

  /**
   * Discards a session's waiting state (it was removed). Resolves once a write already in
   * flight has landed or failed (it never rejects; a failed one is not retried), so the
   * removal's delete comes after it.
   */
  drop(id: string): Promise<void> {
    const lane = this.#lanes.get(id);
    if (!lane) return Promise.resolve();
    clearTimeout(lane.timer);
    lane.timer = undefined;
    lane.waiting = undefined;
    lane.dropped = true;
    if (!lane.running) this.#lanes.delete(id);
    return lane.running ?? Promise.resolve();
  }

  /** Writes every waiting state now and waits until nothing is left. */
  async flush(): Promise<void> {
    while (this.#lanes.size > 0) {
      for (const [id, lane] of this.#lanes) if (!lane.running) this.#start(id, lane);
      await Promise.all([...this.#lanes.values()].map((lane) => lane.running ?? Promise.resolve()));
    }
  }

  /** Flushes, waiting at most `graceMs`; what is still unwritten then is logged as lost. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.flush().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (late)
      this.#logger.error('asynchronous Datastore writes unfinished at shutdown', { sessions: this.size, graceMs });
  }

  #schedule(id: string, lane: Lane): void {
    if (lane.timer || lane.running) return;
    const delay = this.#closing ? 0 : Math.max(0, lane.lastStart + this.#intervalMs - this.#now());
    lane.timer = setTimeout(() => this.#start(id, lane), delay);
    // A waiting write must not keep the process alive; `close` is what flushes at shutdown.
    lane.timer.unref();
  }

  #start(id: string, lane: Lane): void {
    clearTimeout(lane.timer);
    lane.timer = undefined;
    const job = lane.waiting;
    if (!job) {
      if (!lane.running) this.#lanes.delete(id);
      return;
    }
    lane.waiting = undefined;
    lane.lastStart = this.#now();
    lane.running = this.#write(job.record).then(
      () => {},
      (error: unknown) => {
        const fields = { sessionId: logId(id), attempt: job.attempt, error: String(error) };
        // A newer state waiting replaces this one anyway; a removed session's is not retried.
        if (lane.waiting || lane.dropped) return;
        if (job.attempt < this.#attempts && !this.#closing) {
          this.#logger.warn('asynchronous Datastore write failed; will retry', fields);
          lane.waiting = { ...job, attempt: job.attempt + 1 };
        } else {
          this.#logger.error('asynchronous Datastore write given up: the session is only in the cache', fields);
        }
      },
    );
    void lane.running.then(() => {
      lane.running = undefined;
      if (lane.waiting) this.#schedule(id, lane);
      else if (this.#lanes.get(id) === lane) this.#lanes.delete(id);
    });
  }
}
