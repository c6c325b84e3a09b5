import type { Attributes, Session } from './session.js';
import type { Store } from './store.js';

/**
 * The part of an HTTP exchange a Manager uses, so the core depends on no web framework.
 * The Express middleware provides one per request.
 */
export interface HttpExchange {
  /** The value of the named request cookie, if the request has one. */
  cookie(name: string): string | undefined;
  /** Whether the request reached the front end over HTTPS. */
  readonly secure: boolean;
  /** Appends a Set-Cookie header to the response. */
  setCookie(header: string): void;
}

/**
 * Ties sessions to HTTP requests (the Go `session.Manager`): finds the session a request
 * names, and tells the client about new and removed ones.
 */
export interface Manager {
  readonly store: Store;
  /** A new session (new ID, configured timeout); nothing is stored until `add`. */
  newSession<C extends Attributes, V extends Attributes>(constants?: C, variables?: Partial<V>): Session<C, V>;
  /**
   * The live session the request names, or undefined. A malformed cookie, or one naming no
   * live session, is cleared; a malformed one never reaches the store.
   */
  get(exchange: HttpExchange): Promise<Session | undefined>;
  /** Stores a new session, then hands its ID to the client; no cookie if storing fails. */
  add(session: Session, exchange: HttpExchange): Promise<void>;
  /** Saves a request's changes to a session (see `Store.save`). */
  save(session: Session): Promise<boolean>;
  /** Removes the session from the store and clears the client's cookie. */
  remove(session: Session, exchange: HttpExchange): Promise<void>;
  /** Closes the store. */
  close(): Promise<void>;
}
