import { logId, silentLogger, type Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/session.js';
import { AbandonedOperationError } from './datastore.js';
import { isNewer } from './rules.js';

export interface AsyncWriterOptions {
  /** Writes one session's state to Datastore (the store's conditional backup write). */
  write: (record: SessionRecord, isNew: boolean) => Promise<unknown>;
  /** Least time between two writes of one session, in ms (default 2000). */
  intervalMs?: number | undefined;
  /** Attempts per state before it is given up and logged as lost (default 3). */
  attempts?: number | undefined;
  logger?: Logger | undefined;
}

interface Queued {
  record: SessionRecord;
  isNew: boolean;
  attempt: number;
}

/** One session's Datastore work: at most one state waiting, and a chain of operations run in order. */
interface Lane {
  queued: Queued | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The end of this session's operation chain; the next operation starts after it. */
  tail: Promise<void>;
  running: number;
  lastStart: number;
  /** Set by `remove`: a failed write of this session is not retried. */
  removed: boolean;
}

/**
 * Writes sessions to Datastore off the request path, in order, per session:
 *
 * - coalescing: while a write waits, a newer state of the same session replaces it, and a
 *   session is written at most once per `intervalMs` (a busy session costs one write per
 *   interval, not one per request);
 * - ordering: every Datastore operation on a session (these writes, synchronous writes,
 *   deletes) runs after the previous one finished, so writes land in order and a logout's
 *   delete lands after a write that was already in flight; `remove` drops the waiting state;
 * - shutdown: `close` writes everything still waiting and waits for it, within a grace period.
 */
export class AsyncWriter {
  readonly #write: AsyncWriterOptions['write'];
  readonly #intervalMs: number;
  readonly #attempts: number;
  readonly #logger: Logger;
  readonly #lanes = new Map<string, Lane>();
  #closing = false;

  constructor(options: AsyncWriterOptions) {
    this.#write = options.write;
    this.#intervalMs = options.intervalMs ?? 2000;
    this.#attempts = options.attempts ?? 3;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Sessions with a write waiting or running. */
  get pending(): number {
    let count = 0;
    for (const lane of this.#lanes.values()) if (lane.queued || lane.running > 0) count++;
    return count;
  }

  /** Queues `record` to be written; a newer state of the same session replaces a waiting one. */
  enqueue(record: SessionRecord, isNew: boolean): void {
    const lane = this.#lane(record.id);
    const waiting = lane.queued;
    if (!waiting) lane.queued = { record, isNew, attempt: 1 };
    else if (isNewer(record, waiting.record)) lane.queued = { record, isNew: isNew || waiting.isNew, attempt: 1 };
    else waiting.isNew ||= isNew;
    this.#schedule(record.id, lane);
  }

  /** Runs a Datastore operation on a session after the ones already running for it. */
  run<T>(id: string, operation: () => Promise<T>): Promise<T> {
    const lane = this.#lane(id);
    lane.running++;
    const result = lane.tail.then(operation);
    // The caller may be told of a timeout while the call goes on: the lane waits until it ended,
    // so that a slow write cannot land after the session's next operation (a logout's delete).
    const ended = result.then(
      () => {},
      (error: unknown) => (error instanceof AbandonedOperationError ? error.settled : undefined),
    );
    lane.tail = ended.then(() => this.#settled(id, lane));
    return result;
  }

  /** Drops the waiting write of a session and runs `remove` after any write in flight. */
  remove(id: string, remove: () => Promise<void>): Promise<void> {
    const lane = this.#lanes.get(id);
    if (lane) {
      clearTimeout(lane.timer);
      lane.timer = undefined;
      lane.queued = undefined;
      lane.removed = true;
    }
    return this.run(id, remove);
  }

  /** Writes every waiting state now and waits until nothing is running. */
  async flush(): Promise<void> {
    while (this.#lanes.size > 0) {
      for (const [id, lane] of this.#lanes) {
        if (lane.queued) this.#start(id, lane);
      }
      await Promise.all([...this.#lanes.values()].map((lane) => lane.tail));
    }
  }

  /** Flushes, waiting at most `graceMs`; what is still unwritten then is logged as lost. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    });
    const late = await Promise.race([this.flush().then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.#logger.error('asynchronous Datastore writes unfinished at shutdown', { sessions: this.pending, graceMs });
    }
  }

  #lane(id: string): Lane {
    let lane = this.#lanes.get(id);
    if (!lane) {
      lane = { queued: undefined, timer: undefined, tail: Promise.resolve(), running: 0, lastStart: 0, removed: false };
      this.#lanes.set(id, lane);
    }
    return lane;
  }

  #schedule(id: string, lane: Lane): void {
    if (lane.timer) return;
    const delay = this.#closing ? 0 : Math.max(0, lane.lastStart + this.#intervalMs - Date.now());
    lane.timer = setTimeout(() => this.#start(id, lane), delay);
    // A waiting write must not keep the process alive; `close` is what flushes at shutdown.
    lane.timer.unref();
  }

  #start(id: string, lane: Lane): void {
    clearTimeout(lane.timer);
    lane.timer = undefined;
    const job = lane.queued;
    if (!job) return;
    lane.queued = undefined;
    lane.lastStart = Date.now();
    // The failure is handled inside the operation, so the lane stays open until it is.
    void this.run(id, async () => {
      try {
        await this.#write(job.record, job.isNew);
      } catch (error) {
        const fields = { sessionId: logId(id), attempt: job.attempt, error: String(error) };
        // A newer state waiting replaces this one anyway, and a removed session needs nothing.
        if (lane.queued || lane.removed) return;
        if (job.attempt < this.#attempts && !this.#closing) {
          this.#logger.warn('asynchronous Datastore write failed; will retry', fields);
          lane.queued = { ...job, attempt: job.attempt + 1 };
          this.#schedule(id, lane);
        } else {
          this.#logger.error('asynchronous Datastore write given up: the session is only in memcache', fields);
        }
      }
    });
  }

  #settled(id: string, lane: Lane): void {
    lane.running--;
    if (lane.running === 0 && !lane.queued && !lane.timer && this.#lanes.get(id) === lane) this.#lanes.delete(id);
  }
}
