import type { SessionRecord } from '../session/record.js';

/** A state waiting for its session's running write to end, and everyone who waits for it. */
interface Waiting {
  record: SessionRecord;
  done: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Lane {
  running: Promise<void>;
  waiting: Waiting | undefined;
}

/**
 * The synchronous Datastore backups (`SESSION_DATASTORE=sync`), one write per session at a
 * time. A save that finds its session's write running waits for the next one, and the next
 * one writes the newest state waiting: the backup is version-checked, so it stands for every
 * older state too. Under contention a session costs one Datastore write per round trip, not
 * one per view, and its saves do not conflict with each other's writes.
 */
export class SyncBackups {
  readonly #write: (record: SessionRecord, isNew: boolean) => Promise<void>;
  readonly #lanes = new Map<string, Lane>();

  constructor(write: (record: SessionRecord, isNew: boolean) => Promise<void>) {
    this.#write = write;
  }

  /** Resolves once Datastore holds `record`'s state or a newer one (or the write gave up). */
  write(record: SessionRecord, isNew: boolean): Promise<void> {
    const lane = this.#lanes.get(record.id);
    if (!lane) return this.#start(record, isNew);
    if (lane.waiting) {
      if (record.version > lane.waiting.record.version) lane.waiting.record = record;
      return lane.waiting.done;
    }
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    lane.waiting = { record, done, resolve, reject };
    return done;
  }

  /** Waits until no write of the session is running or waiting. */
  async settled(id: string): Promise<void> {
    for (let lane = this.#lanes.get(id); lane; lane = this.#lanes.get(id)) {
      await Promise.allSettled([lane.running, lane.waiting?.done]);
    }
  }

  #start(record: SessionRecord, isNew: boolean): Promise<void> {
    const lane: Lane = { running: this.#write(record, isNew), waiting: undefined };
    this.#lanes.set(record.id, lane);
    const next = (): void => {
      const waiting = lane.waiting;
      if (!waiting) {
        this.#lanes.delete(record.id);
        return;
      }
      lane.waiting = undefined;
      // Not a new session: its first write came before (a late one checks for a logout).
      lane.running = this.#write(waiting.record, false);
      lane.running.then(waiting.resolve, waiting.reject);
      lane.running.then(next, next);
    };
    lane.running.then(next, next);
    return lane.running;
  }
}
