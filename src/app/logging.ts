import { AsyncLocalStorage } from 'node:async_hooks';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { LogFields, Logger } from '../session/logger.js';
import type { LogLevel } from './config.js';

const SEVERITY: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** The trace of the request being served, so every line it logs links to it in Cloud Logging. */
const requestTrace = new AsyncLocalStorage<string>();

export interface AppLoggerOptions {
  /** One JSON object per line, as Cloud Logging parses them (on App Engine); else plain text. */
  json: boolean;
  level: LogLevel;
  /** The project ID, to turn a trace ID into Cloud Logging's trace resource name. */
  projectId?: string | undefined;
  /** Where lines go (stdout by default). */
  write?: (line: string) => void;
}

/**
 * The app's logger. On App Engine, stdout lines that are JSON objects become structured
 * entries: `severity` sets the level and `logging.googleapis.com/trace` groups them under
 * their request. Locally the same events read as plain lines.
 */
export function createLogger(options: AppLoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const log =
    (level: LogLevel) =>
    (message: string, fields: LogFields = {}) => {
      if (RANK[level] < RANK[options.level]) return;
      if (options.json) {
        const trace = requestTrace.getStore();
        // Fields first, so none of them can replace the severity or message Cloud Logging reads.
        const entry: LogFields = { ...fields, severity: SEVERITY[level], message };
        if (trace && options.projectId)
          entry['logging.googleapis.com/trace'] = `projects/${options.projectId}/traces/${trace}`;
        write(JSON.stringify(entry));
      } else {
        const extra = Object.entries(fields)
          .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' ');
        write(`${SEVERITY[level].padEnd(7)} ${message}${extra ? ' ' + extra : ''}`);
      }
    };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** True when running on App Engine (or another Google serverless runtime). */
export function onGoogleCloud(env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(env['GAE_SERVICE'] || env['K_SERVICE']);
}

/**
 * Logs one line per request (method, path, status, latency) and tags its other lines with its
 * trace. Below `info` (`LOG_LEVEL=warn` or `error`, or `LOG_REQUESTS=false`, App Engine's
 * default) the line is not built at all: only the trace tagging stays, which costs one header
 * lookup, so that the warnings and errors a request logs still link to it in Cloud Logging.
 */
export function requestLogger(logger: Logger, level: LogLevel = 'info'): RequestHandler {
  if (RANK[level] > RANK.info) {
    return (req: Request, _res: Response, next: NextFunction): void => {
      const trace = traceOf(req);
      if (trace) requestTrace.run(trace, next);
      else next();
    };
  }
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const trace = traceOf(req);
    const inTrace = (fn: () => void): void => (trace ? requestTrace.run(trace, fn) : fn());
    // 'close', not 'finish': a request whose client went away before the answer is logged too.
    res.once('close', () =>
      inTrace(() => {
        const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
        const path = req.originalUrl.split('?')[0];
        const aborted = !res.writableFinished;
        const fields = { method: req.method, path, status: res.statusCode, latencyMs: Math.round(latencyMs * 10) / 10 };
        if (aborted) Object.assign(fields, { aborted });
        const line = `${req.method} ${path} ${res.statusCode}${aborted ? ' (client gone before the answer)' : ''}`;
        if (res.statusCode >= 500) logger.error(line, fields);
        else logger.info(line, fields);
      }),
    );
    inTrace(next);
  };
}

/** The trace ID of `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS`, if well-formed. */
function traceOf(req: Request): string | undefined {
  const header = req.headers['x-cloud-trace-context'];
  if (typeof header !== 'string') return undefined;
  const id = header.split('/')[0];
  return id && /^[0-9a-f]{32}$/i.test(id) ? id : undefined;
}
