import type { Response } from 'express';
import type { SaveOutcome } from '../session/commit.js';
import type { Logger } from '../session/logger.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';

/** What `saveBeforeEnd` needs of the request's session. */
export interface PendingSave {
  readonly hasPendingSave: boolean;
  save(): Promise<SaveOutcome>;
}

/**
 * Holds `res.end` back until the session is saved. Express's `send`, `render`, `json` and
 * `redirect` all finish through `end` before headers go out, so a failed save still turns the
 * response into an error instead of a page showing state that was not kept.
 */
export function saveBeforeEnd(res: Response, sessions: PendingSave, logger: Logger): void {
  // Called with `apply(res, …)`: no bound copy per request.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = res.end as (...args: unknown[]) => Response;
  res.end = ((...args: unknown[]): Response => {
    if (!sessions.hasPendingSave) return original.apply(res, args);
    const end = (...endArgs: unknown[]): Response => original.apply(res, endArgs);
    sessions.save().then(
      (outcome) => {
        if (outcome === 'saved') return end(...args);
        return replaceAnswer(res, end, 409, 'Your session ended before this change could be saved.');
      },
      (error: unknown) => {
        logger.error('session not saved', { error: String(error) });
        const known = error instanceof SessionTooLargeError || error instanceof StoreUnavailableError;
        const status = error instanceof StoreUnavailableError ? 503 : 500;
        return replaceAnswer(
          res,
          end,
          status,
          known ? `Your session could not be saved: ${error.message}` : 'Your session could not be saved.',
        );
      },
    );
    return res;
  }) as Response['end'];
}

function replaceAnswer(
  res: Response,
  end: (...args: unknown[]) => Response,
  status: number,
  message: string,
): Response {
  if (res.headersSent) return end();
  for (const header of ['Content-Length', 'Content-Type', 'ETag', 'Location']) res.removeHeader(header);
  res.statusCode = status;
  if (status === 503) res.setHeader('Retry-After', '1');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  return end(message + '\n');
}
