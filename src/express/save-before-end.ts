import type { Response } from 'express';
import type { SaveOutcome } from '../session/commit.js';
import type { Logger } from '../session/logger.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';

/** What the hook needs of a request's session. */
export interface PendingSave {
  readonly hasPendingSave: boolean;
  save(): Promise<SaveOutcome>;
  /** Where a save that fails as the response ends is reported. */
  readonly logger: Logger;
}

type End = (this: Response, ...args: unknown[]) => Response;

const hooked = new WeakSet<object>();

/**
 * Makes `end` on every response made from `responsePrototype` wait until the session of its
 * request (`pendingOf`) is saved. Express's `send`, `render`, `json` and `redirect` all finish
 * through `end` before headers go out, so a failed save still turns the response into an error
 * instead of a page showing state that was not kept.
 *
 * The hook goes on the prototype, once, not on each response: an own `end` gives a response a
 * hidden class of its own, and every inline cache in Node's and Express's response code then
 * sees two shapes (measured: 6 to 8 % of the CPU of a counted in-memory view; docs/benchmarks.md).
 */
export function holdEndUntilSaved(
  responsePrototype: object,
  pendingOf: (res: Response) => PendingSave | undefined,
): void {
  if (hooked.has(responsePrototype)) return;
  hooked.add(responsePrototype);
  const proto = responsePrototype as { end: End };
  const original = proto.end;
  proto.end = function (this: Response, ...args: unknown[]): Response {
    const sessions = pendingOf(this);
    if (!sessions?.hasPendingSave) return original.apply(this, args);
    const end = (...endArgs: unknown[]): Response => original.apply(this, endArgs);
    sessions.save().then(
      (outcome) => {
        if (outcome === 'saved') return end(...args);
        return replaceAnswer(this, end, 409, 'Your session ended before this change could be saved.');
      },
      (error: unknown) => {
        sessions.logger.error('session not saved', { error: String(error) });
        const known = error instanceof SessionTooLargeError || error instanceof StoreUnavailableError;
        const status = error instanceof StoreUnavailableError ? 503 : 500;
        return replaceAnswer(
          this,
          end,
          status,
          known ? `Your session could not be saved: ${error.message}` : 'Your session could not be saved.',
        );
      },
    );
    return this;
  };
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
