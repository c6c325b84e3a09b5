import type { Datastore, Key, Transaction } from '@google-cloud/datastore';
import type { CallOptions } from 'google-gax';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import { expiresAt, isExpired, type Session, type SessionRecord } from '../session/session.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import { decodeWith, UndecodableSessionError, type Codec } from './codec.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { isNewer, refreshDue, sameState, sleep } from './rules.js';

/** Datastore's entity limit is 1 MiB including key and property names; keep a margin. */
export const MAX_ENTITY_VALUE_BYTES = 1024 * 1024 - 1024;

/** The stored entity: exactly SPEC's layout. */
interface SessionEntity {
  /** Last access + timeout; indexed, so the purge can find expired sessions. */
  exp: Date;
  /** The encoded session; unindexed (a blob, up to the entity limit). */
  val: Buffer;
}

export interface DatastoreTierOptions {
  datastore: Datastore;
  codec: Codec;
  /** Entity kind (SPEC `DATASTORE_KIND`, default `sess_`). */
  kind?: string | undefined;
  /**
   * Time budget of one tier operation (a read, or a whole transaction with its retries), in
   * ms (default 4000). The client's own default retry budget is minutes; a request must not
   * wait that long for a dead Datastore.
   */
  operationTimeoutMs?: number | undefined;
  /** After a failure, operations fail at once for this long (ms, default 3000) instead of each waiting. */
  retryAfterMs?: number | undefined;
  logger?: Logger | undefined;
}

/**
 * What a conditional backup write did. `newer`: Datastore holds a newer state than the record
 * (saved there while memcache was down, so the memcache copy the record was built on is stale).
 */
export type BackupResult = { status: 'written' } | { status: 'skipped' } | { status: 'newer'; record: SessionRecord };

/**
 * A Datastore operation that ran out of time. The caller gets this at once, but the call it
 * started may still land: `settled` says when it has finished, so the session's next
 * operation (a logout's delete) waits for it instead of being overtaken.
 */
export class AbandonedOperationError extends StoreUnavailableError {
  constructor(
    message: string,
    readonly settled: Promise<void>,
  ) {
    super(message);
  }
}

/** gRPC status ABORTED: a transaction lost a race with another one; worth retrying. */
const ABORTED = 10;
const TRANSACTION_ATTEMPTS = 5;

/**
 * Sessions as Datastore entities: kind `kind`, key name = session ID, properties `exp` and
 * `val`. Writes that could race are transactions that compare the `version` inside `val`,
 * so an older state (a late asynchronous write, a slow request) never replaces a newer one.
 */
export class DatastoreTier {
  readonly #datastore: Datastore;
  readonly #codec: Codec;
  readonly #kind: string;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #gax: CallOptions;
  readonly #outage: CircuitBreaker;
  /** Entity reads, for tests and benchmarks (transactional reads included). */
  reads = 0;
  /** Entity writes and deletes committed, for tests and benchmarks. */
  writes = 0;

  constructor(options: DatastoreTierOptions) {
    this.#datastore = options.datastore;
    this.#codec = options.codec;
    this.#kind = options.kind ?? 'sess_';
    this.#timeoutMs = options.operationTimeoutMs ?? 4000;
    this.#logger = options.logger ?? silentLogger;
    this.#outage = new CircuitBreaker({ backend: 'Datastore', openMs: options.retryAfterMs, logger: this.#logger });
    // Per RPC: a short deadline and few retries, so the outer budget is not spent in one call.
    this.#gax = { timeout: Math.min(2000, this.#timeoutMs), maxRetries: 1 };
  }

  get kind(): string {
    return this.#kind;
  }

  /** False within the window after a failure, when every operation fails at once. */
  get available(): boolean {
    return this.#outage.closed;
  }

  key(id: string): Key {
    return this.#datastore.key([this.#kind, id]);
  }

  /** The live session, or undefined; an entity whose `exp` has passed is deleted. */
  async load(id: string, now = Date.now()): Promise<SessionRecord | undefined> {
    const entity = await this.#bounded('read', async () => {
      this.reads++;
      const [found] = (await this.#datastore.get(this.key(id), { gaxOptions: this.#gax })) as [
        SessionEntity | undefined,
      ];
      return found;
    });
    if (!entity) return undefined;
    if (entity.exp.getTime() <= now) {
      await this.delete(id).catch((error: unknown) => {
        this.#logger.warn('expired session not deleted from Datastore', { sessionId: logId(id), error: String(error) });
      });
      this.#logger.info('session expired', { sessionId: logId(id) });
      return undefined;
    }
    return decodeWith(this.#codec, entity.val);
  }

  /** Writes a brand-new session (random ID: nothing to race with). */
  async insert(record: SessionRecord): Promise<void> {
    const entity = this.#entity(record);
    await this.#bounded('write', async () => {
      await this.#datastore.save({ ...entity, method: 'upsert' }, this.#gax);
      this.writes++;
    });
  }

  /**
   * The backup write of the memcache store: writes `record` unless Datastore already holds a
   * newer version of the session. When the entity is missing and the record is not the
   * session's first, the session may have been removed (logout) since the record was made:
   * `stillLive` (memcache still has it) decides, so a late write never undoes a logout.
   * A stored state that is newer, or of the same version but different, is returned: the
   * record was built on a stale memcache copy, and the caller decides what to replay.
   */
  async backup(
    record: SessionRecord,
    isNew: boolean,
    stillLive: () => Promise<boolean> | boolean,
  ): Promise<BackupResult> {
    const entity = this.#entity(record);
    return this.#transaction('backup', async (transaction): Promise<BackupResult> => {
      const stored = await this.#read(transaction, record.id);
      if (stored) {
        const diverged = stored.version === record.version && !sameState(stored, record);
        if (stored.version > record.version || diverged) return { status: 'newer', record: stored };
        if (isNewer(stored, record)) return { status: 'skipped' };
      } else if (!isNew && !(await stillLive())) {
        return { status: 'skipped' };
      }
      transaction.save(entity);
      return { status: 'written' };
    });
  }

  /**
   * The save of the Datastore-only store (and of the memcache store while memcache is down):
   * a read-compare-write transaction. A newer stored state gets the session's changes replayed
   * on it (`rebase`); a missing or expired entity means the session was removed: false.
   */
  async save(session: Session, now = Date.now()): Promise<boolean> {
    let record: SessionRecord | undefined;
    const saved = await this.#transaction('save', async (transaction) => {
      const stored = await this.#read(transaction, session.id);
      if (!stored || isExpired(stored, now)) return false;
      if (stored.version !== session.version) {
        session.rebase(stored);
        // Another request refreshed it and this one changed nothing: nothing left to write.
        if (!session.changed && !refreshDue(stored.accessed, stored.timeout, now)) {
          record = stored;
          return true;
        }
      }
      record = session.toRecord(now);
      transaction.save(this.#entity(record));
      return true;
    });
    if (saved && record) session.markSaved(record);
    return saved;
  }

  async delete(id: string): Promise<void> {
    await this.#bounded('delete', async () => {
      await this.#datastore.delete(this.key(id), this.#gax);
      this.writes++;
    });
  }

  #entity(record: SessionRecord): { key: Key; data: SessionEntity; excludeFromIndexes: string[] } {
    const val = this.#codec.encode(record);
    if (val.length > MAX_ENTITY_VALUE_BYTES) {
      throw new SessionTooLargeError(
        `session of ${val.length} bytes exceeds the Datastore entity limit (${MAX_ENTITY_VALUE_BYTES} bytes of value)`,
      );
    }
    const exp = new Date(expiresAt(record));
    return { key: this.key(record.id), data: { exp, val }, excludeFromIndexes: ['val'] };
  }

  async #read(transaction: Transaction, id: string): Promise<SessionRecord | undefined> {
    this.reads++;
    const [entity] = (await transaction.get(this.key(id), { gaxOptions: this.#gax })) as [SessionEntity | undefined];
    return entity ? decodeWith(this.#codec, entity.val) : undefined;
  }

  /**
   * Runs `body` in a transaction and commits it if it queued a write; retried when another
   * transaction on the same entity won the race (ABORTED). The whole thing is bounded.
   */
  #transaction<T>(what: string, body: (transaction: Transaction) => Promise<T>): Promise<T> {
    return this.#bounded(what, async (expired) => {
      for (let attempt = 1; ; attempt++) {
        // No `run()`: the transaction begins with its first read (a lookup that asks for a new
        // transaction), which saves the beginTransaction round trip on every changed view.
        const transaction = this.#datastore.transaction();
        try {
          const result = await body(transaction);
          const [response] = await transaction.commit(this.#gax);
          this.writes += response.mutationResults?.length ?? 0;
          return result;
        } catch (error) {
          await transaction.rollback(this.#gax).catch(() => {});
          // No new attempt once the caller has been told it failed: that one could land unseen.
          if (grpcCode(error) !== ABORTED || attempt >= TRANSACTION_ATTEMPTS || expired()) throw error;
          await sleep(10 + Math.random() * 40 * attempt);
        }
      }
    });
  }

  /**
   * Bounds an operation in time and turns every backend failure into StoreUnavailableError
   * (SessionTooLargeError and UndecodableSessionError pass through). Logs once per outage.
   */
  async #bounded<T>(what: string, operation: (expired: () => boolean) => Promise<T>): Promise<T> {
    // A hung Datastore must cost one bounded wait per window, not one per request.
    this.#outage.check();
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const running = operation(() => expired);
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        const settled = running.then(
          () => {},
          () => {},
        );
        reject(new AbandonedOperationError(`no answer within ${this.#timeoutMs} ms`, settled));
      }, this.#timeoutMs);
    });
    try {
      const result = await Promise.race([running, deadline]);
      this.#outage.succeeded();
      return result;
    } catch (error) {
      if (error instanceof SessionTooLargeError || error instanceof UndecodableSessionError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      this.#outage.failed(message, { operation: what });
      const failure = `Datastore ${what} failed: ${message}`;
      if (error instanceof AbandonedOperationError) throw new AbandonedOperationError(failure, error.settled);
      throw new StoreUnavailableError(failure);
    } finally {
      clearTimeout(timer);
    }
  }
}

function grpcCode(error: unknown): number | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}
