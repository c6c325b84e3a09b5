import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { SaveOutcome } from '../session/commit.js';
import type { CookieManager } from '../session/cookie-manager.js';
import type { SessionDraft } from '../session/draft.js';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import type { HttpExchange, SessionSummary } from '../session/manager.js';
import type { Attributes } from '../session/record.js';
import { Session } from '../session/session.js';
import { StoreUnavailableError } from '../session/store.js';
import { holdEndUntilSaved, type PendingSave } from './save-before-end.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** This request's session; set by `sessionMiddleware`. */
      sessions: RequestSession;
    }
  }
}

/** Sessions made by `create` and not added yet, with their drafts (a WeakMap: nothing per request). */
const created = new WeakMap<Session, SessionDraft>();

export interface GetOptions {
  /**
   * Resolve undefined (and set `unavailable`) instead of throwing when the store cannot be
   * reached: for a page that can honestly render as "logged out, sessions unavailable".
   */
  allowUnavailable?: boolean;
}

/**
 * One request's session (what a Go handler does with its Manager). Whatever route reads or
 * creates a session gets a private page (`Cache-Control: no-store`, `Vary: Cookie`) and its
 * changes saved before the response goes out; a store outage is an error (503) unless the
 * route asked otherwise, so it can never pass for "logged out".
 */
export class RequestSession implements HttpExchange, PendingSave {
  readonly #manager: CookieManager;
  readonly #req: Request;
  readonly #res: Response;
  /** Where this request's session events go. */
  readonly logger: Logger;
  #loading: Promise<SessionDraft | undefined> | undefined;
  #draft: SessionDraft | undefined;
  #session: Session | undefined;
  /** A save failed or found the session gone: the response says so, and nothing retries it. */
  #settled = false;
  #unavailable = false;
  /** The save under way (or done), so a listing of the owner's sessions shows its result. */
  #saving: Promise<SaveOutcome> | undefined;
  /** The session ended while this request held it: its changes were refused. */
  #gone = false;

  constructor(manager: CookieManager, req: Request, res: Response, logger: Logger) {
    this.#manager = manager;
    this.#req = req;
    this.#res = res;
    this.logger = logger;
  }

  /**
   * The request's session, or undefined if it has none. The type parameters state what the
   * app keeps in its sessions; they are not checked at run time.
   */
  async get<C extends Attributes = Attributes, V extends Attributes = Attributes>(
    options: GetOptions = {},
  ): Promise<Session<C, V> | undefined> {
    this.#loading ??= this.#load();
    try {
      await this.#loading;
    } catch (error) {
      if (!options.allowUnavailable || !(error instanceof StoreUnavailableError)) throw error;
      this.#unavailable = true;
      return undefined;
    }
    return this.#session as Session<C, V> | undefined;
  }

  /** True when `get({ allowUnavailable: true })` could not reach the store. */
  get unavailable(): boolean {
    return this.#unavailable;
  }

  /**
   * A new session, not stored until `add`. `owner` is the key its owner's sessions are found
   * by (a user name or ID): see `sessionsOf` and `removeSessionsOf`.
   */
  create<C extends Attributes, V extends Attributes>(
    constants?: C,
    variables?: Partial<V>,
    options: { owner?: string } = {},
  ): Session<C, V> {
    const draft = this.#manager.create(constants, variables, options.owner);
    const session = new Session<C, V>(draft);
    created.set(session, draft);
    return session;
  }

  /** Stores a new session and sets its cookie; throws (and sets no cookie) if it cannot be stored. */
  async add(session: Session): Promise<void> {
    const draft = created.get(session);
    if (!draft) throw new Error('add() takes a session made by create()');
    created.delete(session);
    this.#private();
    await this.#manager.add(draft, this);
    this.#use(draft, session);
  }

  /**
   * Saves the request's changes now (the middleware does it before the response otherwise),
   * so a page can show what was stored. 'gone': the session ended meanwhile (logged out
   * elsewhere, rotated) and the changes were refused. Throws when they could not be stored.
   */
  async save(): Promise<SaveOutcome> {
    const draft = this.#draft;
    if (this.#gone) return 'gone';
    if (!draft || this.#settled) return 'saved';
    try {
      this.#saving = this.#manager.save(draft);
      const outcome = await this.#saving;
      if (outcome === 'gone') this.#end('gone');
      return outcome;
    } catch (error) {
      // The response will report the failure: the end-of-response save must not try again.
      this.#settled = true;
      throw error;
    }
  }

  /** Ends the session everywhere and clears the cookie. */
  async remove(session: Session): Promise<void> {
    const draft = this.#own(session);
    await this.#manager.remove(draft, this);
    this.#end('removed');
  }

  /** Gives the session a new ID, keeping its data; the old ID is dead at once. */
  async rotate(session: Session): Promise<'rotated' | 'gone'> {
    const draft = this.#own(session);
    const outcome = await this.#manager.rotate(draft, this);
    if (outcome === 'gone') this.#end('gone');
    return outcome;
  }

  /**
   * The live sessions of an owner, most recently used first (this request's marked `current`).
   * Without `owner`: those of this request's session's owner (none if it was created without one).
   */
  sessionsOf(owner?: string): Promise<SessionSummary[]> {
    return this.#manager.sessionsOf(owner, this.#draft, this.#saving);
  }

  /** Ends every session of an owner, this one included ("log out everywhere"); returns how many. */
  async removeSessionsOf(owner: string): Promise<number> {
    const count = await this.#manager.removeSessionsOf(owner, this);
    if (this.#draft) this.#end('removed');
    return count;
  }

  // HttpExchange, for the manager.

  get cookieHeader(): string | undefined {
    return this.#req.headers.cookie;
  }

  get secure(): boolean {
    return this.#req.secure;
  }

  setCookie(header: string): void {
    const res = this.#res;
    // A later cookie of the same name (a login after a rejected cookie) replaces the earlier.
    const name = header.slice(0, header.indexOf('=') + 1);
    const previous = res.getHeader('Set-Cookie');
    if (previous === undefined) {
      res.setHeader('Set-Cookie', header);
      return;
    }
    const others = ([] as string[]).concat(previous as string | string[]).filter((h) => !h.startsWith(name));
    res.setHeader('Set-Cookie', [...others, header]);
  }

  /** True when the response must wait for a save, or for a save's durable write still landing. */
  get hasPendingSave(): boolean {
    const draft = this.#draft;
    return draft !== undefined && !this.#settled && (draft.landing !== undefined || draft.due(this.#manager.now()));
  }

  async #load(): Promise<SessionDraft | undefined> {
    // Only a request that reads its session can have one to save, and a page showing it is private.
    this.#private();
    const draft = await this.#manager.load(this);
    if (draft) this.#use(draft, new Session(draft));
    return draft;
  }

  #use(draft: SessionDraft, session: Session): void {
    this.#draft = draft;
    this.#session = session;
    this.#settled = false;
    this.#gone = false;
    this.#loading = Promise.resolve(draft);
  }

  #end(why: 'removed' | 'gone'): void {
    this.#gone = why === 'gone';
    if (why === 'gone')
      this.logger.info('changes to an ended session refused', { sessionId: logId(this.#draft?.base.id ?? '') });
    this.#draft = undefined;
    this.#session = undefined;
    this.#loading = Promise.resolve(undefined);
  }

  #own(session: Session): SessionDraft {
    if (!this.#draft || this.#session !== session) throw new Error("not this request's session");
    return this.#draft;
  }

  #privateDone = false;
  #private(): void {
    if (this.#privateDone) return;
    this.#privateDone = true;
    const res = this.#res;
    res.setHeader('Cache-Control', 'no-store');
    // `vary` parses and merges; with no Vary yet (the usual case) there is nothing to merge.
    if (res.getHeader('Vary') === undefined) res.setHeader('Vary', 'Cookie');
    else res.vary('Cookie');
  }
}

export interface SessionMiddlewareOptions {
  logger?: Logger;
}

/**
 * Express middleware that gives each request `req.sessions`. An anonymous request costs no
 * store access at all, and a request that never asks for its session one small object.
 */
export function sessionMiddleware(manager: CookieManager, options: SessionMiddlewareOptions = {}): RequestHandler {
  const logger = options.logger ?? silentLogger;
  // On Express's response prototype (every app's inherits it); other requests' responses end as usual.
  holdEndUntilSaved(express.response, (res) => (res.req as Partial<Request> | undefined)?.sessions);
  return (req: Request, res: Response, next: NextFunction): void => {
    req.sessions = new RequestSession(manager, req, res, logger);
    next();
  };
}
