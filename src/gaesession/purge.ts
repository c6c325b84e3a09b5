import { PropertyFilter, type Datastore, type Key } from '@google-cloud/datastore';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { silentLogger, type Logger } from '../session/logger.js';
import { DEFAULT_KIND } from './datastore.js';

/** What one purge run did. */
export interface PurgeResult {
  /** False when the deadline stopped it before every expired session was deleted. */
  completed: boolean;
  deleted: number;
}

/** Deletes expired sessions until done or until `deadline` (epoch ms) passes. */
export type PurgeFunction = (deadline: number) => Promise<PurgeResult>;

export interface PurgeHandlerOptions {
  /** Time budget of one call, in seconds (default 480: inside App Engine cron's 10 minutes). */
  deadlineSeconds?: number;
  logger?: Logger;
}

/**
 * The cron endpoint (the Go `PurgeExpiredSessFromDSFunc`). Only App Engine cron may call it:
 * App Engine strips `X-Appengine-Cron` from outside requests, so its presence proves the
 * caller. Without a purge function (no Datastore) there is nothing to delete.
 */
export function purgeHandler(purge: PurgeFunction | undefined, options: PurgeHandlerOptions = {}): RequestHandler {
  const deadlineMs = (options.deadlineSeconds ?? 480) * 1000;
  const logger = options.logger ?? silentLogger;
  return async (req: Request, res: Response, _next: NextFunction): Promise<void> => {
    // Node joins repeated headers with ", ", so a duplicated header fails this exact match.
    if (req.headers['x-appengine-cron'] !== 'true') {
      res.status(403).json({ error: 'only App Engine cron may call this' });
      return;
    }
    if (!purge) {
      res.json({ completed: true, deleted: 0 } satisfies PurgeResult);
      return;
    }
    try {
      const result = await purge(Date.now() + deadlineMs);
      logger.info('expired sessions purged', { ...result });
      res.json(result);
    } catch (error) {
      logger.error('purge failed', { error: String(error) });
      res.status(500).json({ error: 'purge failed: ' + (error instanceof Error ? error.message : String(error)) });
    }
  };
}

/** Most keys one Datastore commit may delete. */
export const MAX_PURGE_BATCH = 500;

export interface PurgeExpiredOptions {
  datastore: Datastore;
  /** Entity kind of the sessions (default `sess_`). */
  kind?: string | undefined;
  /** Stop starting new batches after this time (epoch ms); one batch always runs. */
  deadline: number;
  /** Keys per query and delete (default and maximum 500). */
  batchSize?: number | undefined;
  /** "Expired" means `exp` before this time (epoch ms; default now). */
  now?: number | undefined;
  /** Bound of each Datastore call, in ms (default 10000): a dead Datastore fails the run instead of hanging it. */
  callTimeoutMs?: number | undefined;
}

/** Deletes sent at once: the query pages on while earlier pages are being deleted. */
const DELETES_IN_FLIGHT = 4;

/** The run in progress, per Datastore client and kind. */
const running = new WeakMap<Datastore, Map<string, Promise<PurgeResult>>>();

/**
 * One run at a time per process (per Datastore client and kind): runs side by side query
 * the same expired keys, delete them again (deleting a missing key succeeds) and each count
 * them; concurrent calls reported 11,549 deletions for 2,000 sessions. A call made while a
 * run is going waits for it and reports that run's `completed`, with `deleted: 0`: each
 * deletion is counted once, by the call that made it, so summed reports stay true. It starts
 * no run of its own: the running one covers every session that had expired when it began.
 * If the run fails, the calls waiting for it fail with the same error.
 */
export async function purgeExpired(options: PurgeExpiredOptions): Promise<PurgeResult> {
  const kind = options.kind ?? DEFAULT_KIND;
  let runs = running.get(options.datastore);
  if (!runs) running.set(options.datastore, (runs = new Map<string, Promise<PurgeResult>>()));
  const current = runs.get(kind);
  if (current) return { completed: (await current).completed, deleted: 0 };
  const run = purgeOnce(options, kind);
  runs.set(kind, run);
  try {
    return await run;
  } finally {
    runs.delete(kind);
  }
}

/**
 * Deletes expired session entities (the work of the Go `PurgeExpiredSessFromDSFunc`): a
 * keys-only query for `exp < now`, read page by page with its cursor (a fresh query would
 * walk past the index entries just deleted), each page deleted in one commit while the next is
 * read, until none is left or the deadline passes. At least one page is processed per call,
 * so repeated calls always finish the job. An error ends the run and propagates (the handler
 * answers 500): nothing here loops on a failure.
 */
async function purgeOnce(options: PurgeExpiredOptions, kind: string): Promise<PurgeResult> {
  const { datastore } = options;
  const batchSize = Math.min(options.batchSize ?? MAX_PURGE_BATCH, MAX_PURGE_BATCH);
  const now = new Date(options.now ?? Date.now());
  // A deadline per call, no maxRetries (see DatastoreTier's `gax`: it would poison the shared client).
  const gaxOptions = { timeout: options.callTimeoutMs ?? 10_000 };
  let deleted = 0;
  let failure: Error | undefined;
  const inFlight = new Set<Promise<void>>();
  const deletePage = (keys: Key[]): void => {
    const done: Promise<void> = datastore.delete(keys, gaxOptions).then(
      () => void (deleted += keys.length),
      (error: unknown) => void (failure ??= error instanceof Error ? error : new Error(String(error))),
    );
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };

  let completed = false;
  let cursor: string | undefined;
  try {
    while (failure === undefined) {
      // Keys only: the purge never needs a session's contents, and key reads are the cheapest.
      let query = datastore
        .createQuery(kind)
        .filter(new PropertyFilter('exp', '<', now))
        .select('__key__');
      query = (cursor ? query.start(cursor) : query).limit(batchSize);
      const [entities, info] = await datastore.runQuery(query, { gaxOptions });
      const keys = entities.map((entity: Record<string | symbol, unknown>) => entity[datastore.KEY] as Key);
      if (keys.length > 0) deletePage(keys);
      if (keys.length < batchSize || !info.endCursor) {
        completed = true;
        break;
      }
      cursor = info.endCursor;
      if (Date.now() >= options.deadline) break;
      if (inFlight.size >= DELETES_IN_FLIGHT) await Promise.race(inFlight);
    }
  } finally {
    await Promise.all(inFlight);
  }
  if (failure !== undefined) throw failure;
  return { completed, deleted };
}

/** A `PurgeFunction` over a Datastore client, for `purgeHandler`. */
export function datastorePurge(options: Omit<PurgeExpiredOptions, 'deadline' | 'now'>): PurgeFunction {
  return (deadline) => purgeExpired({ ...options, deadline });
}
