import { SessionCommitter, type SaveOutcome } from './commit.js';
import { clearingCookie, sessionCookie, sessionCookieValue, type CookieOptions } from './cookie.js';
import { SessionDraft } from './draft.js';
import { DEFAULT_ID_BYTES, newSessionId, sessionIdValidator } from './id.js';
import { logId, silentLogger, type Logger } from './logger.js';
import type { HttpExchange, SessionSummary } from './manager.js';
import { deadline, expiresAt, ownerHash, type Attributes, type SessionRecord } from './record.js';
import type { Store } from './store.js';

export interface CookieManagerOptions {
  store: Store;
  cookie: CookieOptions;
  /** Idle timeout of new sessions, in seconds. */
  timeoutSeconds: number;
  /** Absolute lifetime of new sessions, in seconds (default: a day, or the idle timeout if longer). */
  lifetimeSeconds?: number | undefined;
  /** Random bytes per session ID (default 18). */
  idBytes?: number | undefined;
  logger?: Logger | undefined;
  now?: (() => number) | undefined;
}

/**
 * Ties sessions to HTTP requests through a cookie that holds the session ID (the Go
 * `CookieManager`), and gives them their lifecycle: create, save, rotate, remove, and find or
 * end all sessions of one owner. It works on `SessionDraft`s; handlers see `Session`s, through
 * the Express middleware.
 */
export class CookieManager {
  readonly store: Store;
  readonly #cookie: CookieOptions;
  readonly #timeoutSeconds: number;
  readonly #lifetimeSeconds: number;
  readonly #idBytes: number;
  readonly #isValidId: (value: string) => boolean;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #committer: SessionCommitter;

  constructor(options: CookieManagerOptions) {
    this.store = options.store;
    this.#cookie = options.cookie;
    this.#timeoutSeconds = options.timeoutSeconds;
    this.#lifetimeSeconds = options.lifetimeSeconds ?? Math.max(86_400, options.timeoutSeconds);
    this.#idBytes = options.idBytes ?? DEFAULT_ID_BYTES;
    this.#isValidId = sessionIdValidator(this.#idBytes);
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#committer = new SessionCommitter(this.store, this.#now);
  }

  /** The sessions' clock (epoch ms). */
  now(): number {
    return this.#now();
  }

  /** A new session (new ID, the configured timeouts), not stored until `add`. */
  create(constants?: Attributes, variables?: Attributes, owner?: string): SessionDraft {
    return SessionDraft.create({
      id: newSessionId(this.#idBytes),
      timeoutSeconds: this.#timeoutSeconds,
      lifetimeSeconds: this.#lifetimeSeconds,
      constants,
      variables,
      owner: owner === undefined ? undefined : ownerHash(owner),
      now: this.#now(),
    });
  }

  /**
   * The live session the request's cookie names, or undefined. A cookie that is not exactly
   * one canonical session ID, or names no live session, is cleared, and only a canonical one
   * is ever looked up. Throws StoreUnavailableError when the store cannot tell.
   */
  async load(exchange: HttpExchange): Promise<SessionDraft | undefined> {
    const header = exchange.cookieHeader;
    const value = header === undefined ? undefined : sessionCookieValue(header, this.#cookie.name);
    if (value === undefined) return undefined;
    if (value === null || !this.#isValidId(value)) {
      this.#logger.debug('session cookie rejected: not exactly one canonical session ID');
      this.#clearCookie(exchange);
      return undefined;
    }
    const loaded = await this.store.load(value);
    if (!loaded) {
      this.#clearCookie(exchange);
      return undefined;
    }
    return new SessionDraft(loaded.record, loaded.token, false, loaded.source);
  }

  /** Stores a new session, then hands its ID to the client; no cookie if storing fails. */
  async add(draft: SessionDraft, exchange: HttpExchange): Promise<void> {
    const record = draft.next(this.#now());
    await this.#writeNew(draft, record);
    exchange.setCookie(sessionCookie(this.#cookie, record.id, exchange.secure));
    this.#logger.info('session added', { sessionId: logId(record.id) });
  }

  /** Stores a record under a new ID, durably (see `WriteResult`); never takes over a session that exists. */
  async #writeNew(draft: SessionDraft, record: SessionRecord): Promise<void> {
    const result = await this.store.write(record, undefined);
    // 18 random bytes make a collision practically impossible; never take over a session anyway.
    if (result.status !== 'stored') throw new Error('a session with this new ID exists already');
    draft.committed(record, result.token);
    await result.durable;
  }

  /** Saves a request's changes; 'gone' when the session ended meanwhile (nothing was stored). */
  save(draft: SessionDraft): Promise<SaveOutcome> {
    return this.#committer.save(draft);
  }

  /** Ends the session in every tier and clears the client's cookie. */
  async remove(draft: SessionDraft, exchange: HttpExchange): Promise<void> {
    const id = draft.base.id;
    await this.#committer.inLane(id, () => this.store.remove(id));
    this.#clearCookie(exchange);
    this.#logger.info('session removed', { sessionId: logId(id) });
  }

  /**
   * Gives the session a new ID, keeping its data and creation time (so not its absolute
   * lifetime either). The old ID is ended first, conditionally: a concurrent request of the
   * old ID either wrote before (its change is reloaded and carried over) or finds it gone
   * (its change is refused, and it is told). 'gone' when the session had ended already.
   */
  async rotate(draft: SessionDraft, exchange: HttpExchange): Promise<'rotated' | 'gone'> {
    const oldId = draft.base.id;
    const outcome = await this.#committer.inLane(oldId, async (lane) => {
      this.#committer.catchUp(draft, lane);
      for (;;) {
        const removed = await this.store.remove(oldId, draft.token);
        if (removed !== 'conflict') return removed;
        const newer = await this.store.load(oldId);
        if (!newer) return 'gone';
        draft.rebase(newer.record, newer.token);
      }
    });
    if (outcome === 'gone') {
      this.#clearCookie(exchange);
      return 'gone';
    }
    const record = draft.next(this.#now(), newSessionId(this.#idBytes));
    await this.#writeNew(draft, record);
    exchange.setCookie(sessionCookie(this.#cookie, record.id, exchange.secure));
    this.#logger.info('session rotated', { from: logId(oldId), sessionId: logId(record.id) });
    return 'rotated';
  }

  /**
   * The live sessions of an owner (the key given to `create`; undefined: the owner of
   * `current`, which costs no hashing), most recently used first. `current` is the request's
   * own session: it is not read again, and when `saving` (its save under way) is given, it is
   * listed as that save leaves it. The listing's reads go out at once, beside the save's write.
   */
  async sessionsOf(
    owner: string | undefined,
    current?: SessionDraft,
    saving?: Promise<unknown>,
  ): Promise<SessionSummary[]> {
    const hash = owner === undefined ? current?.base.owner : ownerHash(owner);
    if (hash === undefined) return [];
    const [records] = await Promise.all([this.store.owned(hash, current?.base), saving?.catch(noop)]);
    // Read now, after the save: what this request stored, not what it loaded.
    const own = current?.base;
    return records
      .map((record) => summaryOf(own && record.id === own.id ? own : record, own?.id))
      .sort((a, b) => b.accessed.getTime() - a.accessed.getTime());
  }

  /**
   * Ends every live session of an owner, on every instance ("log out everywhere"); returns how
   * many. A session created while this runs (a login racing it) is a new login and may stay.
   */
  async removeSessionsOf(owner: string, exchange?: HttpExchange): Promise<number> {
    const records = await this.store.owned(ownerHash(owner));
    await Promise.all(records.map((record) => this.#committer.inLane(record.id, () => this.store.remove(record.id))));
    if (exchange) this.#clearCookie(exchange);
    this.#logger.info('all sessions of an owner removed', { count: records.length });
    return records.length;
  }

  close(): Promise<void> {
    return this.store.close();
  }

  #clearCookie(exchange: HttpExchange): void {
    exchange.setCookie(clearingCookie(this.#cookie, exchange.secure));
  }
}

function summaryOf(record: SessionRecord, currentId: string | undefined): SessionSummary {
  return {
    label: logId(record.id),
    created: new Date(record.created),
    accessed: new Date(record.accessed),
    expires: new Date(expiresAt(record)),
    deadline: new Date(deadline(record)),
    current: record.id === currentId,
  };
}

function noop(): void {}
