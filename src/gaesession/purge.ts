import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { silentLogger, type Logger } from '../session/logger.js';

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
