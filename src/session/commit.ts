import type { SessionDraft } from './draft.js';
import { SessionContentionError, type Loaded, type Store } from './store.js';

/** What became of a request's changes: stored, or refused because the session ended meanwhile. */
export type SaveOutcome = 'saved' | 'gone';

/** Writes before a save under contention gives up (each loser reloads and replays first). */
const MAX_ATTEMPTS = 30;

/**
 * The store protocol, written once for every store: write the request's record
 * conditionally; if another request wrote first, load the newer record, replay this
 * request's changes on it (`Session.update` is what makes replay meaningful) and write
 * again. An unchanged session is written only when a refresh is due.
 *
 * Within one process, saves of one session wait for each other in a lane instead of racing:
 * each then starts from the record the one before it stored, so they do not conflict at all.
 * Only writers on other instances (or outside this process) cause reloads.
 */
export class SessionCommitter {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #lanes = new Map<string, Lane>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Saves the draft's changes (or refreshes it); 'gone' when it ended meanwhile, nothing stored. */
  async save(draft: SessionDraft): Promise<SaveOutcome> {
    const outcome = await this.inLane(draft.base.id, async (lane): Promise<SaveOutcome> => {
      for (let attempt = 1; ; attempt++) {
        this.catchUp(draft, lane);
        const now = this.#now();
        if (!draft.due(now)) return 'saved';
        const record = draft.next(now);
        const result = await this.#store.write(record, draft.token);
        if (result.status === 'stored') {
          draft.committed(record, result.token, result.durable);
          lane.latest = { record, token: result.token };
          return 'saved';
        }
        if (result.status === 'gone') return 'gone';
        if (attempt >= MAX_ATTEMPTS) {
          throw new SessionContentionError(`session changed by too many requests at once; gave up after ${attempt}`);
        }
        // Another instance wrote first. After a few rounds, a short random pause spreads out
        // the writers that keep colliding.
        if (attempt > 2) await pause(Math.random() * attempt * 2);
        const newer = await this.#store.load(record.id);
        if (!newer) return 'gone';
        draft.rebase(newer.record, newer.token);
      }
    });
    // A synchronous backup (this save's, or an earlier one's still landing): the request waits
    // for it, the session's next save does not.
    await draft.landing;
    return outcome;
  }

  /** Moves the draft onto the record the lane stored last, if that is newer than its own. */
  catchUp(draft: SessionDraft, lane: Lane): void {
    const latest = lane.latest;
    if (!latest || latest.record.version <= draft.base.version) return;
    draft.rebase(latest.record, latest.token);
  }

  /**
   * Runs `operation` after every other operation of this process on session `id`. The lane
   * remembers the last record stored through it, so the next writer in line starts from it.
   */
  async inLane<T>(id: string, operation: (lane: Lane) => Promise<T>): Promise<T> {
    let lane = this.#lanes.get(id);
    let result: Promise<T>;
    if (!lane) {
      // Nothing of this session is running here (the common case): start at once.
      lane = { tail: undefined, users: 1, latest: undefined };
      this.#lanes.set(id, lane);
      result = operation(lane);
    } else {
      lane.users++;
      const current = lane;
      const run = (): Promise<T> => operation(current);
      // After the one before, whether it succeeded or failed (its caller handles its error).
      result = lane.tail ? lane.tail.then(run, run) : run();
    }
    lane.tail = result;
    try {
      return await result;
    } finally {
      if (--lane.users === 0) this.#lanes.delete(id);
    }
  }
}

/** One session's queue of operations in this process. */
export interface Lane {
  /** The last operation queued; the next one starts when it has settled. */
  tail: Promise<unknown> | undefined;
  users: number;
  /** The last record stored through this lane (while the lane is busy). */
  latest: Loaded | undefined;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
