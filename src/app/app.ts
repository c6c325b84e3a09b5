import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { sessionMiddleware } from '../express/middleware.js';
import type { PurgeFunction } from '../gaesession/purge.js';
import { CookieManager } from '../session/cookie-manager.js';
import type { Logger } from '../session/logger.js';
import { SessionContentionError, SessionTooLargeError, StoreUnavailableError, type Store } from '../session/store.js';
import type { Config } from './config.js';
import { addDemoRoutes } from './demo.js';
import { requestLogger } from './logging.js';
import { securityHeaders } from './security.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface AppParts {
  config: Config;
  store: Store;
  /** Deletes expired sessions from Datastore; absent when there is no Datastore. */
  purge?: PurgeFunction | undefined;
  /** Where sessions are kept, in words, for the demo page. */
  storeDescription?: string | undefined;
  logger: Logger;
  /** The sessions' clock (creation, idle expiry, absolute lifetime), for tests. */
  now?: (() => number) | undefined;
}

/** The demo web app, ready to listen. Closing `manager` closes the store. */
export function createApp({ config, store, purge, storeDescription, logger, now }: AppParts): {
  app: Express;
  manager: CookieManager;
} {
  const manager = createCookieManager(config, store, logger, now);
  const app = express();
  // App Engine's front end terminates TLS and reports the scheme in X-Forwarded-Proto;
  // trusting the one proxy in front of the app makes `req.secure` (and Secure cookies) right.
  app.set('trust proxy', 1);
  app.set('x-powered-by', false);
  // No ETag on pages: they are private and `no-store`, so no client ever revalidates one, and
  // hashing every page body costs each view. Static files keep theirs (express.static's own).
  app.set('etag', false);
  app.set('view engine', 'ejs');
  app.set('views', path.join(root, 'views'));
  app.use(requestLogger(logger, config.logRequests ? config.logLevel : 'warn'));
  app.use(securityHeaders());
  app.use(sessionMiddleware(manager, { logger }));

  app.get('/', (_req, res) => res.redirect(302, '/demo'));
  addDemoRoutes(app, {
    password: config.demoPassword,
    purge,
    purgeDeadlineSeconds: config.purgeDeadlineSeconds,
    storeDescription: storeDescription ?? `in ${config.store}`,
    logger,
  });
  // After the pages, so that a page view does not walk past it; no page lives under /static.
  app.use('/static', express.static(path.join(root, 'public'), { maxAge: '1h' }));
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found.\n');
  });
  app.use(errorHandler(logger));
  return { app, manager };
}

/** The session manager the configuration describes (cookie, idle timeout, absolute lifetime). */
export function createCookieManager(config: Config, store: Store, logger: Logger, now?: () => number): CookieManager {
  return new CookieManager({
    store,
    cookie: config.cookie,
    timeoutSeconds: config.timeoutSeconds,
    lifetimeSeconds: config.lifetimeSeconds,
    logger,
    now,
  });
}

/** Turns errors into short answers: the client's fault 4xx, a store outage 503, the rest 500. */
function errorHandler(logger: Logger) {
  return (error: unknown, _req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = httpStatus(error);
    // A message that is a stack trace is what Cloud Error Reporting picks up from the logs.
    if (status >= 500)
      logger.error(error instanceof Error && error.stack ? error.stack : `request failed: ${String(error)}`);
    if (error instanceof StoreUnavailableError) res.setHeader('Retry-After', '1');
    const message =
      error instanceof SessionContentionError
        ? 'Too many requests changed your session at once; nothing was changed. Please try again.'
        : error instanceof StoreUnavailableError
          ? 'Sessions are unavailable right now; please try again in a moment.'
          : error instanceof SessionTooLargeError
            ? `The session could not be saved: ${error.message}`
            : status < 500 && error instanceof Error
              ? error.message
              : 'Something went wrong.';
    res
      .status(status)
      .type('text/plain')
      .send(message + '\n');
  };
}

function httpStatus(error: unknown): number {
  if (error instanceof StoreUnavailableError) return 503;
  if (typeof error === 'object' && error !== null) {
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 600) return status;
  }
  return 500;
}
