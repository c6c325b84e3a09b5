import type { Datastore } from '@google-cloud/datastore';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import { expiresAt, type SessionRecord } from '../session/record.js';
import { SessionContentionError, SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { decodeWith, UndecodableSessionError, type Codec } from './codec.js';
import { DatastoreRpc, type Found, type Mutation, type SessionEntity } from './datastore-rpc.js';

/** The default entity kind of sessions (SPEC `DATASTORE_KIND`). */
export const DEFAULT_KIND = 'sess_';
/** Datastore's entity limit is 1 MiB including key and property names; keep a margin. */
export const MAX_ENTITY_VALUE_BYTES = 1024 * 1024 - 1024;

/** What a step of `conditional` decided: its result, and the write that goes with it, if any. */
export interface Decision<T> {
  result: T;
  write?: Mutation | undefined;
}

export interface DatastoreTierOptions {
  datastore: Datastore;
  codec: Codec;
  kind?: string | undefined;
  /**
   * Time budget of one operation (a read, or a read-decide-write with its retries), in ms
   * (default 4000). The client's own default retry budget is minutes; a request must not wait
   * that long for a dead Datastore.
   */
  operationTimeoutMs?: number | undefined;
  /** After a failure, operations fail at once for this long (ms, default 3000). */
  openMs?: number | undefined;
  logger?: Logger | undefined;
  now?: (() => number) | undefined;
}

const CONDITIONAL_ATTEMPTS = 5;

/**
 * Sessions as Datastore entities (kind, key name = session ID, `exp`, `val`, `own`), every
 * operation bounded in time and behind a circuit breaker, over the calls of datastore-rpc.ts.
 * The Datastore-only store (datastore-store.ts) and the tiered store's backup (gae-store.ts)
 * are built on it.
 *
 * No transactions: a lookup returns each entity's version, and a write carries the version it
 * was based on (`baseVersion`), which Datastore refuses if another write came in between. That
 * is a transaction's guarantee for one entity, in a lookup and a commit, with nothing to
 * begin, hold open or roll back.
 */
export class DatastoreTier extends DatastoreRpc {
  readonly codec: Codec;
  readonly logger: Logger;
  readonly #timeoutMs: number;
  readonly #breaker: CircuitBreaker;
  readonly #now: () => number;

  constructor(options: DatastoreTierOptions) {
    const timeoutMs = options.operationTimeoutMs ?? 4000;
    // Each RPC gets part of the operation's budget, so one slow call does not spend it all.
    super(options.datastore, options.kind ?? DEFAULT_KIND, Math.min(2000, timeoutMs));
    this.codec = options.codec;
    this.#timeoutMs = timeoutMs;
    this.logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#breaker = new CircuitBreaker({
      backend: 'Datastore',
      openMs: options.openMs,
      logger: this.logger,
      now: this.#now,
    });
  }

  /** False within the window after a failure, when every operation fails at once. */
  get available(): boolean {
    return this.#breaker.closed;
  }

  /** The live session (a plain lookup), or undefined; an entity past its `exp` is deleted. */
  async lookup(id: string): Promise<SessionRecord | undefined> {
    const found = await this.bounded('read', () => this.find(id));
    return this.live(id, found?.entity);
  }

  /**
   * The record of a live entity. An expired one, or one this codec cannot read (a codec changed
   * by a deploy), is deleted in the background and reads as gone: the user is not stuck with an
   * error on every request, and the cookie gets cleared.
   */
  live(id: string, entity: SessionEntity | undefined): SessionRecord | undefined {
    if (!entity) return undefined;
    try {
      if (entity.exp.getTime() > this.#now()) return decodeWith(this.codec, entity.val, id);
    } catch (error) {
      if (!(error instanceof UndecodableSessionError)) throw error;
      this.logger.error('undecodable session deleted', {
        tier: 'Datastore',
        sessionId: logId(id),
        error: error.message,
      });
    }
    this.delete(id).catch((error: unknown) => {
      this.logger.warn('ended session not deleted from Datastore', { sessionId: logId(id), error: String(error) });
    });
    return undefined;
  }

  async delete(id: string): Promise<void> {
    // No base version: a refusal can only be contention, which commit() throws.
    await this.bounded('delete', () => this.commit(this.deletion(id)));
  }

  /**
   * The live sessions of an owner: one query on the `own` index (no composite index needed).
   * `known`, the request's own session, is not decoded again.
   */
  async owned(owner: string, known?: SessionRecord): Promise<SessionRecord[]> {
    const owned = await this.bounded('query', () => this.ownedBy(owner));
    const now = this.#now();
    const records: SessionRecord[] = [];
    for (const { id, entity } of owned) {
      if (id === known?.id) records.push(known);
      else if (entity.exp.getTime() > now) {
        try {
          records.push(this.codec.decode(entity.val));
        } catch {
          // An undecodable session is nobody's: the purge or its next read deletes it.
        }
      }
    }
    return records;
  }

  /** The entity of a record, checked against the entity size limit. */
  entity(record: SessionRecord): SessionEntity {
    const val = this.codec.encode(record);
    if (val.length > MAX_ENTITY_VALUE_BYTES) {
      throw new SessionTooLargeError(
        `session of ${val.length} bytes exceeds the Datastore entity limit (${MAX_ENTITY_VALUE_BYTES} bytes of value)`,
      );
    }
    const entity: SessionEntity = { exp: new Date(expiresAt(record)), val };
    if (record.owner !== undefined) entity.own = record.owner;
    return entity;
  }

  /**
   * Reads the entity, lets `decide` say what to write, and writes it conditionally; starts
   * over when another write came in between. The whole thing is bounded.
   */
  conditional<T>(what: string, id: string, decide: (found: Found | undefined) => Promise<Decision<T>>): Promise<T> {
    return this.bounded(what, async (expired) => {
      for (let attempt = 1; ; attempt++) {
        const { result, write } = await decide(await this.find(id));
        if (!write || (await this.commit(write)) !== undefined) return result;
        // No new attempt once the caller has been told it failed: that one could land unseen.
        if (attempt >= CONDITIONAL_ATTEMPTS || expired()) {
          throw new SessionContentionError(`Datastore ${what} lost to other writes ${attempt} times`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40 * attempt));
      }
    });
  }

  /**
   * Bounds an operation in time and turns every backend failure into StoreUnavailableError
   * (SessionTooLargeError, UndecodableSessionError and SessionContentionError pass through).
   * Logs once per outage.
   */
  async bounded<T>(what: string, operation: (expired: () => boolean) => Promise<T>): Promise<T> {
    // A hung Datastore must cost one bounded wait per window, not one per request.
    this.#breaker.check();
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        reject(new Error(`no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    try {
      const result = await Promise.race([operation(() => expired), deadline]);
      this.#breaker.succeeded();
      return result;
    } catch (error) {
      if (error instanceof SessionTooLargeError || error instanceof UndecodableSessionError) throw error;
      if (error instanceof SessionContentionError) {
        this.#breaker.succeeded(); // Datastore answered; the session is just busy
        throw error;
      }
      const message = error instanceof Error ? error.message : String(error);
      this.#breaker.failed(message, { operation: what });
      throw new StoreUnavailableError(`Datastore ${what} failed: ${message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
