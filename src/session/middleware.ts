import cookieParser from 'cookie-parser';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { logId, silentLogger, type Logger } from './logger.js';
import type { HttpExchange, Manager } from './manager.js';
import type { Attributes, Session } from './session.js';
import { SessionTooLargeError, StoreUnavailableError } from './store.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** This request's sessions; set by `sessionMiddleware`. */
      sessions: RequestSessions;
    }
  }
}

/** Parses the Cookie header into `req.cookies`; it calls its `next` synchronously. */
const parseCookies = cookieParser();
const nothing = (): void => {};

/**
 * One request's view of its session (what a Go handler does with its Manager). Handlers
 * call `get`, `create` + `add`, `remove`; changes made to a session from `get` are saved by
 * the middleware before the response is sent.
 */
export class RequestSessions {
  readonly #manager: Manager;
  readonly #req: Request;
  readonly #res: Response;
  readonly #logger: Logger;
  #exchange: HttpExchange | undefined;
  #current: Promise<Session | undefined> | undefined;
  #toSave: Session | undefined;
  #saved = false;
  #unavailable = false;

  constructor(manager: Manager, req: Request, res: Response, logger: Logger) {
    this.#manager = manager;
    this.#req = req;
    this.#res = res;
    this.#logger = logger;
  }

  /**
   * The request's session, or undefined if it has none. The type parameters state what the
   * app keeps in its sessions; they are not checked at run time. When the store is down this
   * resolves undefined and `unavailable` turns true, so a page can still render.
   */
  get<C extends Attributes = Attributes, V extends Attributes = Attributes>(): Promise<Session<C, V> | undefined> {
    this.#current ??= this.#load();
    return this.#current as Promise<Session<C, V> | undefined>;
  }

  /** True when `get` could not reach the store. */
  get unavailable(): boolean {
    return this.#unavailable;
  }

  /** A new session, not yet stored: fill it, then `add` it. */
  create<C extends Attributes, V extends Attributes>(constants?: C, variables?: Partial<V>): Session<C, V> {
    return this.#manager.newSession<C, V>(constants, variables);
  }

  /** Stores a new session and sets its cookie; throws (and sets no cookie) if it cannot be stored. */
  async add(session: Session): Promise<void> {
    // Stored here and now: nothing is left to save when the response ends.
    await this.#manager.add(session, this.#httpExchange());
    this.#current = Promise.resolve(session);
  }

  /** Removes a session everywhere and clears the cookie. */
  async remove(session: Session): Promise<void> {
    if (this.#toSave === session) this.#toSave = undefined;
    this.#current = Promise.resolve(undefined);
    await this.#manager.remove(session, this.#httpExchange());
  }

  /** True when the response must wait for `save`. */
  get hasPendingSave(): boolean {
    const session = this.#toSave;
    return session !== undefined && (!this.#saved || session.changed);
  }

  /**
   * Saves the request's changes (and keeps the session alive). The middleware calls it before
   * the response goes out; a handler may call it earlier to show what was stored.
   */
  async save(): Promise<void> {
    if (!this.hasPendingSave) return;
    const session = this.#toSave as Session;
    this.#saved = true;
    if (!(await this.#manager.save(session))) {
      this.#logger.info('changes to a session removed meanwhile were dropped', { sessionId: logId(session.id) });
    }
  }

  async #load(): Promise<Session | undefined> {
    // Only a request that reads its session can have one to save, and a page showing it is private.
    markPrivate(this.#res);
    saveBeforeEnd(this.#res, this, this.#logger);
    try {
      const session = await this.#manager.get(this.#httpExchange());
      this.#toSave = session;
      return session;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      this.#unavailable = true;
      return undefined;
    }
  }

  #httpExchange(): HttpExchange {
    return (this.#exchange ??= new ExpressExchange(this.#req, this.#res));
  }
}

export interface SessionMiddlewareOptions {
  logger?: Logger;
}

/**
 * Express middleware that gives each request `req.sessions`, and holds the response back
 * until the session's changes are stored: a client that sends its next request at once
 * sees them. An anonymous request costs no store access at all, and a request that never
 * asks for its session costs one small object.
 */
export function sessionMiddleware(manager: Manager, options: SessionMiddlewareOptions = {}): RequestHandler {
  const logger = options.logger ?? silentLogger;
  return (req: Request, res: Response, next: NextFunction): void => {
    req.sessions = new RequestSessions(manager, req, res, logger);
    next();
  };
}

/** The request and response as the Manager sees them; cookies are parsed on the first look. */
class ExpressExchange implements HttpExchange {
  readonly #req: Request;
  readonly #res: Response;

  constructor(req: Request, res: Response) {
    this.#req = req;
    this.#res = res;
  }

  cookie(name: string): string | undefined {
    const req = this.#req;
    if (req.cookies === undefined) {
      if (!req.headers.cookie) return undefined;
      parseCookies(req, this.#res, nothing);
    }
    const value: unknown = (req.cookies as Record<string, unknown>)[name];
    if (value === undefined || typeof value === 'string') return value;
    // cookie-parser turns a value starting `j:` into parsed JSON. That is still a cookie the
    // client sent, so hand it on in a form no ID validator accepts: it gets rejected and cleared.
    return 'j:' + JSON.stringify(value);
  }

  get secure(): boolean {
    return this.#req.secure;
  }

  setCookie(header: string): void {
    const res = this.#res;
    // A later cookie of the same name (a login after a rejected cookie) replaces the earlier.
    const name = header.slice(0, header.indexOf('=') + 1);
    const others = ([] as string[])
      .concat((res.getHeader('Set-Cookie') as string | string[] | undefined) ?? [])
      .filter((h) => !h.startsWith(name));
    res.setHeader('Set-Cookie', [...others, header]);
  }
}

/** A page that depends on the session must not be cached, or served to another user. */
function markPrivate(res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
  res.vary('Cookie');
}

/**
 * Delays `res.end` until the session is saved. Express's `send`, `render`, `json` and
 * `redirect` all finish through `end` before headers go out, so a failed save can still turn
 * the response into an error instead of a page showing state that was not kept.
 */
function saveBeforeEnd(res: Response, sessions: RequestSessions, logger: Logger): void {
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  res.end = ((...args: unknown[]): Response => {
    if (!sessions.hasPendingSave) return end(...args);
    sessions.save().then(
      () => end(...args),
      (error: unknown) => {
        logger.error('session not saved', { error: String(error) });
        if (res.headersSent) return end();
        const status = error instanceof SessionTooLargeError ? 500 : error instanceof StoreUnavailableError ? 503 : 500;
        const message =
          error instanceof SessionTooLargeError || error instanceof StoreUnavailableError
            ? `Your session could not be saved: ${error.message}`
            : 'Your session could not be saved.';
        for (const header of ['Content-Length', 'Content-Type', 'ETag', 'Location']) res.removeHeader(header);
        res.statusCode = status;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        return end(message + '\n');
      },
    );
    return res;
  }) as Response['end'];
}
