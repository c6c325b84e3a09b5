import type { Datastore } from '@google-cloud/datastore';
import type memjs from 'memjs';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import { Session, type SessionRecord } from '../session/session.js';
import { StoreUnavailableError, type Store } from '../session/store.js';
import { AsyncWriter } from './async-writer.js';
import { jsonCodec, UndecodableSessionError, type Codec } from './codec.js';
import { DatastoreTier, type BackupResult } from './datastore.js';
import { MemcacheTier } from './memcache.js';
import { refreshDue, sleep } from './rules.js';

/** When the Datastore copy of a memcache session is written: before the response, or after it. */
export type DatastoreWrites = 'sync' | 'async';

export interface GaeStoreOptions {
  /** The process's memjs client; without it the store keeps sessions in Datastore only. */
  memcache?: memjs.Client | undefined;
  /** The process's Datastore client; without it (SESSION_DATASTORE=off) memcache is all there is. */
  datastore?: Datastore | undefined;
  /** With both tiers: `sync` (default) or `async` Datastore writes. */
  datastoreWrites?: DatastoreWrites | undefined;
  /** Entity kind (default `sess_`). */
  kind?: string | undefined;
  /** Prefix of memcache keys (default none). */
  keyPrefix?: string | undefined;
  codec?: Codec | undefined;
  /** The idle timeout of the sessions this store holds, in seconds (default 1800). */
  timeoutSeconds?: number | undefined;
  /** Bound of one memcache call, retries included, in ms (default 1000). */
  memcacheCallTimeoutMs?: number | undefined;
  /** How long memcache is skipped after a failure, in ms (default 3000). */
  memcacheRetryAfterMs?: number | undefined;
  /** Bound of one Datastore operation, in ms (default 4000). */
  datastoreTimeoutMs?: number | undefined;
  /** How long Datastore is skipped after a failure, in ms (default 3000). */
  datastoreRetryAfterMs?: number | undefined;
  /** Least time between two asynchronous writes of one session, in ms (default 2000). */
  asyncIntervalMs?: number | undefined;
  /** How long `close` waits for pending asynchronous writes, in ms (default 5000). */
  closeGraceMs?: number | undefined;
  logger?: Logger | undefined;
}

/** Backend calls made so far, for tests and benchmarks. */
export interface GaeStoreStats {
  memcacheRoundTrips: number;
  datastoreReads: number;
  datastoreWrites: number;
  /** Sessions with an asynchronous Datastore write waiting or running. */
  pendingWrites: number;
}

/** Attempts of a memcache compare-and-set before a save gives up under contention. */
const CAS_ATTEMPTS = 20;
/** How many sessions saved during a memcache outage are remembered, to drop their stale memcache copies. */
const MAX_STALE_IDS = 10_000;

/**
 * Too many requests changed one session at once. Unlike memcache being down, this must not
 * send the save to Datastore: memcache would keep the older state and serve it.
 */
class ContentionError extends StoreUnavailableError {}

/**
 * The App Engine store (the Go `gaesession` store): sessions in memcache, backed up in
 * Datastore, or in Datastore only. What it does beyond the original:
 *
 * - It writes only when needed. A read is one memcache GAT, which also restarts the item's
 *   expiry; a save writes only if the request changed the session or a quarter of the timeout
 *   has passed since `accessed` (then `accessed` and Datastore's `exp` move forward). An
 *   unchanged view costs one round trip and no Datastore write.
 * - Concurrent requests lose no update: memcache writes carry the CAS value of the read and a
 *   conflict replays the request's changes on the newer state; Datastore writes are
 *   transactions that never replace a newer version.
 * - Every backend call is bounded, and a failing tier degrades the store instead of breaking
 *   it: memcache down → Datastore serves and stores; Datastore down → memcache carries on.
 */
export class GaeStore implements Store {
  readonly #memcache: MemcacheTier | undefined;
  readonly #datastore: DatastoreTier | undefined;
  readonly #writes: DatastoreWrites;
  readonly #writer: AsyncWriter;
  readonly #timeoutSeconds: number;
  readonly #closeGraceMs: number;
  readonly #logger: Logger;
  readonly #datastoreClient: Datastore | undefined;
  /** The CAS value of the memcache item each session was read from: what its save presents. */
  readonly #cas = new WeakMap<Session, Buffer>();
  /**
   * Sessions saved in Datastore only while memcache was down (in insertion order, bounded):
   * memcache may still hold an older copy, which must be deleted before memcache is read again.
   */
  readonly #staleInMemcache = new Set<string>();
  /** Deletions of those copies under way, shared by whoever needs one to finish. */
  readonly #dropping = new Map<string, Promise<void>>();
  #closed: Promise<void> | undefined;

  constructor(options: GaeStoreOptions) {
    if (!options.memcache && !options.datastore) throw new Error('GaeStore needs memcache, Datastore or both');
    const codec = options.codec ?? jsonCodec;
    this.#logger = options.logger ?? silentLogger;
    this.#datastoreClient = options.datastore;
    this.#memcache =
      options.memcache &&
      new MemcacheTier({
        client: options.memcache,
        codec,
        keyPrefix: options.keyPrefix,
        callTimeoutMs: options.memcacheCallTimeoutMs,
        retryAfterMs: options.memcacheRetryAfterMs,
        logger: this.#logger,
        onRecovered: () => void this.#dropStaleCopies(),
      });
    this.#datastore =
      options.datastore &&
      new DatastoreTier({
        datastore: options.datastore,
        codec,
        kind: options.kind,
        operationTimeoutMs: options.datastoreTimeoutMs,
        retryAfterMs: options.datastoreRetryAfterMs,
        logger: this.#logger,
      });
    // Without memcache, Datastore is where the next request looks: it must be written first.
    this.#writes = this.#memcache ? (options.datastoreWrites ?? 'sync') : 'sync';
    this.#timeoutSeconds = options.timeoutSeconds ?? 1800;
    this.#closeGraceMs = options.closeGraceMs ?? 5000;
    this.#writer = new AsyncWriter({
      write: (record, isNew) => this.#backupNow(record, isNew),
      intervalMs: options.asyncIntervalMs,
      logger: this.#logger,
    });
  }

  stats(): GaeStoreStats {
    return {
      memcacheRoundTrips: this.#memcache?.roundTrips ?? 0,
      datastoreReads: this.#datastore?.reads ?? 0,
      datastoreWrites: this.#datastore?.writes ?? 0,
      pendingWrites: this.#writer.pending,
    };
  }

  async get(id: string): Promise<Session | undefined> {
    let memcacheDown: StoreUnavailableError | undefined;
    const memcache = this.#memcache;
    if (memcache) {
      try {
        await this.#dropStaleCopy(memcache, id);
        const hit = await memcache.getAndTouch(id, this.#timeoutSeconds);
        if (hit) {
          // The GAT restarted the item's expiry with the store's timeout; a session made with another one gets its own.
          if (hit.record.timeout !== this.#timeoutSeconds) await memcache.touch(id, hit.record.timeout);
          const session = Session.fromRecord(hit.record);
          this.#cas.set(session, hit.cas);
          return session;
        }
      } catch (error) {
        if (error instanceof UndecodableSessionError) {
          // Datastore may still hold a good copy; if not, the session is gone and the cookie cleared.
          await this.#discardUndecodable('memcache', id, error, () => memcache.delete(id));
        } else if (error instanceof StoreUnavailableError) {
          memcacheDown = error;
        } else {
          throw error;
        }
      }
    }
    const datastore = this.#datastore;
    if (!datastore) {
      if (memcacheDown) throw memcacheDown;
      return undefined;
    }
    let record: SessionRecord | undefined;
    try {
      record = await datastore.load(id);
    } catch (error) {
      if (!(error instanceof UndecodableSessionError)) throw error;
      await this.#discardUndecodable('Datastore', id, error, () => this.#writer.remove(id, () => datastore.delete(id)));
      return undefined;
    }
    if (!record) return undefined;
    const session = Session.fromRecord(record);
    if (memcache && !memcacheDown && !(await this.#putBack(memcache, datastore, session, record))) return undefined;
    return session;
  }

  async add(session: Session): Promise<void> {
    const record = session.toRecord();
    if (this.#memcache) {
      try {
        const cas = await this.#memcache.add(record);
        // 18 random bytes make a collision practically impossible; never overwrite one anyway.
        if (!cas) throw new Error('a session with this ID already exists in memcache');
        session.markSaved(record);
        this.#cas.set(session, cas);
        await this.#backup(record, true);
        this.#logger.info('session added', { sessionId: logId(session.id) });
        return;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || !this.#datastore) throw error;
        // memcache is down but Datastore is on: the next request falls back to Datastore
        // after its memcache miss, so storing it there (synchronously) makes the login work.
        // The ADD may have landed all the same: that copy would go stale as Datastore moves on.
        this.#noteStaleInMemcache(record.id);
      }
    }
    const datastore = this.#requireDatastore();
    // A plain write is safe here: this is the first write of a fresh random ID, made before the
    // response that gives the ID out (memcache did not take it), so no other writer knows the ID.
    await this.#writer.run(record.id, () => datastore.insert(record));
    session.markSaved(record);
    this.#logger.info('session added', { sessionId: logId(session.id), tier: 'Datastore' });
  }

  async save(session: Session): Promise<boolean> {
    const now = Date.now();
    if (!session.changed && !refreshDue(session.accessed.getTime(), session.timeoutSeconds, now)) return true;
    if (!this.#memcache) return this.#saveInDatastore(session, now);
    try {
      return await this.#saveInMemcache(this.#memcache, session, now);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || error instanceof ContentionError || !this.#datastore)
        throw error;
      // memcache is down: Datastore is the session's home until it is back.
      this.#noteStaleInMemcache(session.id);
      return this.#saveInDatastore(session, now);
    }
  }

  async remove(id: string): Promise<void> {
    const failures: unknown[] = [];
    if (this.#memcache) await this.#memcache.delete(id).catch((error: unknown) => failures.push(error));
    const datastore = this.#datastore;
    if (datastore) {
      // Drops a waiting asynchronous write and deletes after one in flight, so it cannot undo the logout.
      await this.#writer.remove(id, () => datastore.delete(id)).catch((error: unknown) => failures.push(error));
    }
    // A session left in one tier would come back from it: the caller must know.
    if (failures.length > 0) throw failures[0];
    this.#logger.info('session removed', { sessionId: logId(id) });
  }

  /** Flushes pending asynchronous writes (within the grace period), then closes the clients. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#writer.close(this.#closeGraceMs);
      this.#memcache?.close();
      // Datastore has no public close; its gRPC clients do, and an open channel keeps a process alive.
      for (const client of grpcClients(this.#datastoreClient)) {
        await client.close().catch((error: unknown) => {
          this.#logger.warn('Datastore client not closed', { error: String(error) });
        });
      }
    })();
    return this.#closed;
  }

  /** Waits until every pending asynchronous write has landed (tests, benchmarks). */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  /** The Datastore tier, for the paths that only run with one (the constructor makes sure a store has a tier). */
  #requireDatastore(): DatastoreTier {
    if (!this.#datastore) throw new Error('GaeStore: this operation needs Datastore, which is off');
    return this.#datastore;
  }

  /** CAS loop: write the session over the state it was read from, replaying its changes on conflict. */
  async #saveInMemcache(memcache: MemcacheTier, session: Session, now: number): Promise<boolean> {
    /** What this request wrote to memcache before finding Datastore ahead of it. */
    let firstWrite: SessionRecord | undefined;
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      let cas = this.#cas.get(session);
      if (!cas) {
        await this.#dropStaleCopy(memcache, session.id);
        const latest = await memcache.getAndTouch(session.id, this.#timeoutSeconds);
        if (!latest) return this.#saveAfterMiss(session, now);
        session.rebase(latest.record);
        cas = latest.cas;
        this.#cas.set(session, cas);
        // Another request refreshed it and this one changed nothing: done.
        if (!session.changed && !refreshDue(latest.record.accessed, latest.record.timeout, now)) return true;
      }
      const record = session.toRecord(now);
      const result = await memcache.setIfUnchanged(record, cas);
      if (result.status === 'stored') {
        this.#cas.set(session, result.cas);
        const newer = await this.#backup(record, false);
        if (newer && !firstWrite) {
          // memcache served an older state than Datastore's (it missed saves made while it was
          // down): replay this request's changes on Datastore's state and write that over it.
          firstWrite = record;
          session.rebase(newer);
          continue;
        }
        session.markSaved(record);
        return true;
      }
      this.#cas.delete(session);
      if (firstWrite) {
        // memcache moved on from what this request wrote: a later request built on it.
        session.markSaved(firstWrite);
        return true;
      }
      if (result.status === 'not-found') return this.#saveAfterMiss(session, now);
      // Lost a race: a short random pause spreads out the requests retrying together.
      await sleep(Math.random() * 2 * attempt);
    }
    throw new ContentionError(`session changed by too many requests at once; gave up after ${CAS_ATTEMPTS} attempts`);
  }

  /** memcache lost the session (evicted, flushed) or it was removed: Datastore knows which. */
  async #saveAfterMiss(session: Session, now: number): Promise<boolean> {
    const datastore = this.#datastore;
    if (!datastore) return false;
    const saved = await this.#saveInDatastore(session, now);
    if (!saved || !this.#memcache) return saved;
    return this.#putBack(this.#memcache, datastore, session, session.toRecord(session.accessed.getTime()));
  }

  #saveInDatastore(session: Session, now: number): Promise<boolean> {
    const datastore = this.#requireDatastore();
    return this.#writer.run(session.id, () => datastore.save(session, now));
  }

  /**
   * Deletes what cannot be decoded, so the user is not stuck with an error on every request:
   * the session is lost either way, and the cookie gets cleared.
   */
  async #discardUndecodable(
    tier: string,
    id: string,
    error: UndecodableSessionError,
    remove: () => Promise<unknown>,
  ): Promise<void> {
    this.#logger.error('undecodable session deleted', { tier, sessionId: logId(id), error: error.message });
    await remove().catch((failure: unknown) => {
      this.#logger.warn('undecodable session not deleted', { tier, sessionId: logId(id), error: String(failure) });
    });
  }

  /** Puts a session found only in Datastore back into memcache, so the next read is a hit. */
  /**
   * Puts a session found only in Datastore back into memcache, so the next read is a hit.
   * False when a logout removed it meanwhile (memcache then does not keep it either).
   */
  async #putBack(
    memcache: MemcacheTier,
    datastore: DatastoreTier,
    session: Session,
    record: SessionRecord,
  ): Promise<boolean> {
    let cas: Buffer | undefined;
    try {
      cas = await memcache.add(record);
    } catch (error) {
      // The session was read; memcache being down only costs the next request a Datastore read.
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
    if (!cas) return true;
    // A logout may have deleted both tiers between this request's Datastore read and its ADD,
    // which then brought the session back: look again (only on this rare recovery path).
    const live = await datastore.load(record.id).then(
      (found) => found !== undefined,
      (error: unknown) => {
        if (error instanceof StoreUnavailableError) return true; // cannot tell: keep what was read
        throw error;
      },
    );
    if (!live) {
      await memcache.delete(record.id).catch((error: unknown) => {
        this.#logger.warn('removed session left in memcache', { sessionId: logId(record.id), error: String(error) });
      });
      return false;
    }
    this.#cas.set(session, cas);
    this.#logger.info('session recovered from Datastore', { sessionId: logId(session.id) });
    return true;
  }

  /**
   * The Datastore copy of a state just written to memcache. Resolves with Datastore's state
   * when a synchronous backup finds it newer than `record` (memcache was stale).
   */
  async #backup(record: SessionRecord, isNew: boolean): Promise<SessionRecord | undefined> {
    if (!this.#datastore) return undefined;
    if (this.#writes === 'async') {
      this.#writer.enqueue(record, isNew);
      return undefined;
    }
    if (!this.#datastore.available) {
      // Not even queued behind a write that is still waiting on the dead Datastore: memcache holds it.
      this.#logger.debug('Datastore backup skipped: Datastore unavailable', { sessionId: logId(record.id) });
      return undefined;
    }
    try {
      const result = await this.#writer.run(record.id, () => this.#backupNow(record, isNew));
      return result.status === 'newer' ? result.record : undefined;
    } catch (error) {
      // memcache holds the session: with Datastore down, sessions keep working (the tier logged it).
      if (!(error instanceof StoreUnavailableError)) throw error;
      return undefined;
    }
  }

  async #backupNow(record: SessionRecord, isNew: boolean): Promise<BackupResult> {
    const datastore = this.#requireDatastore();
    // Even a session's first write is version-checked: a retried or late one (async) may find
    // a newer state that another instance wrote meanwhile. `isNew` only skips the stillLive check.
    const memcache = this.#memcache;
    return datastore.backup(record, isNew, () => (memcache ? this.#stillInMemcache(memcache, record.id) : false));
  }

  /**
   * Whether a session missing from Datastore still lives (memcache has it). A memcache failure
   * here must not fail the Datastore transaction (nor mark Datastore down): the state was just
   * written to memcache, so it counts as live.
   */
  async #stillInMemcache(memcache: MemcacheTier, id: string): Promise<boolean> {
    try {
      return await memcache.has(id);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      return true;
    }
  }

  #noteStaleInMemcache(id: string): void {
    this.#staleInMemcache.delete(id);
    // Forgetting the oldest only costs the rebase in #saveInMemcache, which also catches a stale copy.
    if (this.#staleInMemcache.size >= MAX_STALE_IDS)
      this.#staleInMemcache.delete(this.#staleInMemcache.values().next().value ?? '');
    this.#staleInMemcache.add(id);
  }

  /** Deletes the memcache copy of a session saved while memcache was down, so its next read goes to Datastore. */
  async #dropStaleCopy(memcache: MemcacheTier, id: string): Promise<void> {
    if (!this.#staleInMemcache.has(id)) return;
    let dropping = this.#dropping.get(id);
    if (!dropping) {
      dropping = memcache
        .delete(id)
        .then(() => {
          this.#staleInMemcache.delete(id);
        })
        .finally(() => this.#dropping.delete(id));
      this.#dropping.set(id, dropping);
    }
    await dropping;
  }

  /** memcache is back: deletes every stale copy, for this instance's requests and every other's. */
  async #dropStaleCopies(): Promise<void> {
    const memcache = this.#memcache;
    if (!memcache) return;
    for (const id of [...this.#staleInMemcache]) {
      try {
        await this.#dropStaleCopy(memcache, id);
      } catch {
        return; // down again: the next recovery carries on, and each read drops its own first
      }
    }
  }
}

interface Closable {
  close(): Promise<void>;
}

/** The gRPC clients the Datastore client opened (an internal field: absent, or another shape, means none). */
function grpcClients(datastore: Datastore | undefined): Closable[] {
  const clients: unknown = datastore && Reflect.get(datastore, 'clients_');
  if (!(clients instanceof Map)) return [];
  return [...(clients.values() as Iterable<unknown>)].filter(
    (client): client is Closable =>
      typeof client === 'object' && client !== null && typeof Reflect.get(client, 'close') === 'function',
  );
}
