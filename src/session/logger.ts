/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/**
 * What the session layer needs from a logger: lifecycle events (added, removed, expired,
 * recovered) at `info`, degraded backends at `warn`, lost data at `error`. The app passes its
 * own (Cloud Logging aware) logger; tests pass `silentLogger`.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const nothing = (): void => {};

/** A logger that drops everything. */
export const silentLogger: Logger = { debug: nothing, info: nothing, warn: nothing, error: nothing };

/**
 * How a session ID appears in logs: enough to follow one session, too little to hijack it
 * (whoever reads the logs must not be able to replay a cookie).
 */
export function logId(id: string): string {
  return id.slice(0, 6) + '…';
}
