import { PropertyFilter, type Datastore } from '@google-cloud/datastore';
import type { google } from '@google-cloud/datastore/build/protos/protos.js';
import type { CallOptions } from 'google-gax';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import { expiresAt, type SessionRecord } from '../session/record.js';
import { SessionContentionError, SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { decodeWith, UndecodableSessionError, type Codec } from './codec.js';
import { entityFromProto, entityToProto, type KeyProto, type Mutation } from './entity-proto.js';

/** The default entity kind of sessions (SPEC `DATASTORE_KIND`). */
export const DEFAULT_KIND = 'sess_';
/** Datastore's entity limit is 1 MiB including key and property names; keep a margin. */
export const MAX_ENTITY_VALUE_BYTES = 1024 * 1024 - 1024;

/** The stored entity: SPEC's layout. */
export interface SessionEntity {
  /** When the session ends (idle end, never past its deadline); indexed, so the purge finds expired ones. */
  exp: Date;
  /** The encoded session; unindexed (a blob, up to the entity limit). */
  val: Buffer;
  /** The owner's hash, indexed: "log out everywhere" finds a user's sessions by it. */
  own?: string;
}

/** An entity as a lookup found it, with Datastore's version of it: the base of a conditional write. */
export interface Found {
  entity: SessionEntity;
  version: string;
}

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

/** gRPC status codes worth telling apart. */
export const GRPC = { ALREADY_EXISTS: 6, ABORTED: 10 } as const;
const CONDITIONAL_ATTEMPTS = 5;

/**
 * Sessions as Datastore entities (kind, key name = session ID, `exp`, `val`, `own`), every
 * call bounded in time and behind a circuit breaker. The Datastore-only store
 * (datastore-store.ts) and the tiered store's backup (gae-store.ts) are built on it.
 *
 * No transactions: a lookup returns each entity's version, and a write carries the version it
 * was based on (`baseVersion`), which Datastore refuses if another write came in between. That
 * is a transaction's guarantee for one entity, in a lookup and a commit, with nothing to
 * begin, hold open or roll back.
 */
export class DatastoreTier {
  readonly datastore: Datastore;
  readonly codec: Codec;
  readonly kind: string;
  readonly #timeoutMs: number;
  readonly logger: Logger;
  readonly #breaker: CircuitBreaker;
  readonly #now: () => number;
  /**
   * Per RPC: a short deadline (the client retries within it), so the operation's budget is not
   * spent in one call. No `maxRetries`: google-gax writes it into the client's shared defaults,
   * and every later call made without it, by anyone, then fails ("Cannot set both
   * totalTimeoutMillis and maxRetries").
   */
  readonly gax: CallOptions;
  /** Entity reads (lookups) and queries, for tests and benchmarks. */
  reads = 0;
  /** Entity writes and deletes committed, for tests and benchmarks. */
  writes = 0;

  constructor(options: DatastoreTierOptions) {
    this.datastore = options.datastore;
    this.codec = options.codec;
    this.kind = options.kind ?? DEFAULT_KIND;
    this.#timeoutMs = options.operationTimeoutMs ?? 4000;
    this.logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#breaker = new CircuitBreaker({
      backend: 'Datastore',
      openMs: options.openMs,
      logger: this.logger,
      now: this.#now,
    });
    this.gax = { timeout: Math.min(2000, this.#timeoutMs) };
  }

  /** False within the window after a failure, when every operation fails at once. */
  get available(): boolean {
    return this.#breaker.closed;
  }

  key(id: string): KeyProto {
    const namespaceId = this.datastore.namespace;
    const path = [{ kind: this.kind, name: id }];
    return namespaceId ? { partitionId: { namespaceId }, path } : { path };
  }

  /** The entity and its version (one strongly consistent lookup), or undefined. */
  async find(id: string): Promise<Found | undefined> {
    this.reads++;
    const response = await this.#call<google.datastore.v1.ILookupResponse>('lookup', { keys: [this.key(id)] });
    if (response.deferred?.length) throw new Error('Datastore deferred the lookup');
    const found = response.found?.[0];
    return found?.entity ? { entity: entityFromProto(found.entity), version: String(found.version) } : undefined;
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
    await this.bounded('delete', () => this.commit({ delete: this.key(id) }));
  }

  /** The live sessions of an owner: one query on the `own` index (no composite index needed). */
  async owned(owner: string): Promise<SessionRecord[]> {
    const entities = await this.bounded('query', async () => {
      this.reads++;
      const query = this.datastore.createQuery(this.kind).filter(new PropertyFilter('own', '=', owner));
      const [found] = await this.datastore.runQuery(query, { gaxOptions: this.gax });
      return found as SessionEntity[];
    });
    const now = this.#now();
    const records: SessionRecord[] = [];
    for (const entity of entities) {
      if (entity.exp.getTime() <= now) continue;
      try {
        records.push(this.codec.decode(entity.val));
      } catch {
        // An undecodable session is nobody's: the purge or its next read deletes it.
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

  /** The write of `entity`: over the version `baseVersion` if given, else only where there is none. */
  put(id: string, entity: SessionEntity, baseVersion?: string): Mutation {
    const proto = entityToProto(this.key(id), entity);
    return baseVersion === undefined ? { insert: proto } : { upsert: proto, baseVersion };
  }

  /** The delete of an entity, if it is still at `baseVersion`. */
  deletion(id: string, baseVersion: string): Mutation {
    return { delete: this.key(id), baseVersion };
  }

  /**
   * Commits one write on its own. Resolves the entity's new version, or undefined when
   * Datastore refused it as a conflict: its base version was no longer current, or an insert
   * found the key taken.
   */
  async commit(mutation: Mutation): Promise<string | undefined> {
    let result: google.datastore.v1.IMutationResult | undefined;
    try {
      const response = await this.#call<google.datastore.v1.ICommitResponse>('commit', { mutations: [mutation] });
      result = response.mutationResults?.[0];
    } catch (error) {
      const code = grpcCode(error);
      if (code === GRPC.ALREADY_EXISTS || code === GRPC.ABORTED) return undefined;
      throw error;
    }
    if (result?.conflictDetected) return undefined;
    this.writes++;
    return String(result?.version);
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

  /** One RPC through the library's own client (it adds the project, database and headers). */
  #call<T>(method: 'lookup' | 'commit', request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      this.datastore.request_(
        { client: 'DatastoreClient', method, reqOpts: request, gaxOpts: this.gax },
        (error, response) => (error ? reject(error) : resolve(response as T)),
      );
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

export function grpcCode(error: unknown): number | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}
