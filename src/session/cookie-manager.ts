import { clearingCookie, sessionCookie, type CookieOptions } from './cookie.js';
import { DEFAULT_ID_BYTES, newSessionId, sessionIdValidator } from './id.js';
import { silentLogger, type Logger } from './logger.js';
import type { HttpExchange, Manager } from './manager.js';
import { Session, type Attributes } from './session.js';
import type { Store } from './store.js';

export interface CookieManagerOptions {
  store: Store;
  cookie: CookieOptions;
  /** Idle timeout of new sessions, in seconds. */
  timeoutSeconds: number;
  /** Random bytes per session ID (default 18). */
  idBytes?: number;
  logger?: Logger;
}

/** A Manager that carries the session ID in a cookie (the Go `CookieManager`). */
export class CookieManager implements Manager {
  readonly store: Store;
  readonly #cookie: CookieOptions;
  readonly #timeoutSeconds: number;
  readonly #idBytes: number;
  readonly #isValidId: (value: string) => boolean;
  readonly #logger: Logger;

  constructor(options: CookieManagerOptions) {
    this.store = options.store;
    this.#cookie = options.cookie;
    this.#timeoutSeconds = options.timeoutSeconds;
    this.#idBytes = options.idBytes ?? DEFAULT_ID_BYTES;
    this.#isValidId = sessionIdValidator(this.#idBytes);
    this.#logger = options.logger ?? silentLogger;
  }

  newSession<C extends Attributes, V extends Attributes>(constants?: C, variables?: Partial<V>): Session<C, V> {
    return Session.create<C, V>({
      id: newSessionId(this.#idBytes),
      timeoutSeconds: this.#timeoutSeconds,
      ...(constants && { constants }),
      ...(variables && { variables }),
    });
  }

  async get(exchange: HttpExchange): Promise<Session | undefined> {
    const value = exchange.cookie(this.#cookie.name);
    if (value === undefined) return undefined;
    if (!this.#isValidId(value)) {
      this.#logger.debug('malformed session cookie rejected', { length: value.length });
      exchange.setCookie(clearingCookie(this.#cookie, exchange.secure));
      return undefined;
    }
    const session = await this.store.get(value);
    if (!session) exchange.setCookie(clearingCookie(this.#cookie, exchange.secure));
    return session;
  }

  async add(session: Session, exchange: HttpExchange): Promise<void> {
    await this.store.add(session);
    exchange.setCookie(sessionCookie(this.#cookie, session.id, exchange.secure));
  }

  save(session: Session): Promise<boolean> {
    return this.store.save(session);
  }

  async remove(session: Session, exchange: HttpExchange): Promise<void> {
    await this.store.remove(session.id);
    exchange.setCookie(clearingCookie(this.#cookie, exchange.secure));
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
