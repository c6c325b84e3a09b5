import { Cluster } from 'iovalkey';
import { logId, silentLogger } from '../session/logger.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { ITEM_OVERHEAD_BYTES, MAX_ITEM_BYTES } from './memcache-client.js';
import {
  OWNER_PREFIX,
  TOMBSTONE_SUFFIX,
  type CachedItem,
  type CacheToken,
  type CacheWriteResult,
  type SessionCache,
  type CacheTierOptions,
} from './cache.js';
import type { ValkeyClient } from './valkey-client.js';
import { defineScripts } from './valkey-scripts.js';
import { batchWritesThisTurn } from './write-batching.js';

export interface ValkeyCacheOptions extends CacheTierOptions {
  /**
   * The client from `createValkeyClient`, owned by the cache from now on (close() quits it). Its
   * command timeout bounds a call; `callTimeoutMs`, one that must wait for the connection first.
   */
  client: ValkeyClient;
}

/**
 * The Valkey cache tier. Each session is one string key holding the session's bytes, with the
 * session's remaining lifetime as its TTL; the bytes themselves are the token of conditional
 * writes, compared on the server by a script. Every command touches one key, so a cluster
 * never sees a cross-slot request.
 */
export class ValkeyCache implements SessionCache {
  readonly name = 'Valkey';
  readonly #client: ValkeyClient;
  readonly #prefix: string;
  readonly #callTimeoutMs: number;
  readonly #breaker: CircuitBreaker;
  #roundTrips = 0;

  constructor(options: ValkeyCacheOptions) {
    this.#client = options.client;
    this.#prefix = options.keyPrefix ?? '';
    this.#callTimeoutMs = options.callTimeoutMs ?? 1000;
    this.#breaker = new CircuitBreaker({
      backend: 'Valkey',
      openMs: options.openMs,
      logger: options.logger ?? silentLogger,
      now: options.now,
      onRecovered: options.onRecovered,
    });
    defineScripts(this.#client);
  }

  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** The key of a session. */
  key(id: string): string {
    return this.#prefix + id;
  }

  /** The key that marks an ended session ID. */
  tombstoneKey(id: string): string {
    return this.#prefix + id + TOMBSTONE_SUFFIX;
  }

  /** The key of an owner's index (a set of session IDs). ':' is not base64url: no ID collides. */
  ownerKey(owner: string): string {
    return this.#prefix + OWNER_PREFIX + owner;
  }

  async read(id: string, ttlSeconds: number): Promise<CachedItem | undefined> {
    const key = this.key(id);
    const value = await this.#call('GETEX', id, () => this.#client.getexBuffer(key, 'EX', seconds(ttlSeconds)));
    return value ? { value, token: value } : undefined;
  }

  async get(id: string): Promise<Buffer | undefined> {
    const key = this.key(id);
    return (await this.#call('GET', id, () => this.#client.getBuffer(key))) ?? undefined;
  }

  async expire(id: string, ttlSeconds: number): Promise<void> {
    const key = this.key(id);
    // EXPIRE with 0 or less deletes the key: a session past its deadline is gone at once.
    await this.#call('EXPIRE', id, () => this.#client.expire(key, Math.ceil(ttlSeconds)));
  }

  async add(id: string, value: Buffer, ttlSeconds: number): Promise<CacheToken | undefined> {
    const key = this.#checked(id, value);
    const reply = await this.#call('SET NX', id, () => this.#client.set(key, value, 'EX', seconds(ttlSeconds), 'NX'));
    return reply === 'OK' ? value : undefined;
  }

  async replace(id: string, value: Buffer, ttlSeconds: number, token: CacheToken): Promise<CacheWriteResult> {
    const key = this.#checked(id, value);
    const reply = await this.#call('replace', id, () =>
      this.#client.gaesessionReplace(key, token, value, seconds(ttlSeconds)),
    );
    if (reply === 1) return { status: 'stored', token: value };
    return reply === 0 ? { status: 'gone' } : { status: 'conflict' };
  }

  async delete(id: string, token?: CacheToken): Promise<'deleted' | 'conflict' | 'absent'> {
    const key = this.key(id);
    if (!token) {
      const count = await this.#call('DEL', id, () => this.#client.del(key));
      return count > 0 ? 'deleted' : 'absent';
    }
    const reply = await this.#call('delete', id, () => this.#client.gaesessionDeleteIf(key, token));
    if (reply === 1) return 'deleted';
    return reply === 0 ? 'absent' : 'conflict';
  }

  async bury(id: string, ttlSeconds: number): Promise<void> {
    const key = this.tombstoneKey(id);
    await this.#call('SET', id, () => this.#client.set(key, '1', 'EX', seconds(ttlSeconds)));
  }

  async isBuried(id: string): Promise<boolean> {
    const key = this.tombstoneKey(id);
    return (await this.#call('EXISTS', id, () => this.#client.exists(key))) > 0;
  }

  async addOwned(owner: string, id: string, ttlSeconds: number): Promise<void> {
    const key = this.ownerKey(owner);
    await this.#call('add owned', id, () => this.#client.gaesessionAddOwned(key, id, seconds(ttlSeconds)));
  }

  async listOwned(owner: string): Promise<string[]> {
    const key = this.ownerKey(owner);
    return this.#call('SMEMBERS', undefined, () => this.#client.smembers(key));
  }

  async removeOwned(owner: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const key = this.ownerKey(owner);
    await this.#call('SREM', undefined, () => this.#client.srem(key, ...ids));
  }

  /** Quits politely if Valkey answers soon, then drops the connections and stops reconnecting. */
  async close(): Promise<void> {
    // Not connected (down, hung, reconnecting): there is nobody to say goodbye to.
    if (this.#client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#callTimeoutMs)));
      await Promise.race([this.#client.quit().catch(() => undefined), waited]);
      clearTimeout(timer);
    }
    this.#client.disconnect();
  }

  /**
   * The key of a session about to be written, after checking its size. Valkey would take 512 MB,
   * but the memcache tier's 1 MB item limit applies here too, so that a session that one tier
   * stores the other stores as well, and switching tiers changes no behaviour.
   */
  #checked(id: string, value: Buffer): string {
    const key = this.key(id);
    const limit = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES - Buffer.byteLength(key);
    if (value.length > limit) {
      throw new SessionTooLargeError(
        `session of ${value.length} bytes exceeds the cache item limit (${limit} bytes of value in a 1 MB item)`,
      );
    }
    return key;
  }

  /** Sends one command, bounded in time; every failure becomes StoreUnavailableError. */
  async #call<T>(operation: string, id: string | undefined, send: () => Promise<T>): Promise<T> {
    // Within the window after a failure: fail at once (a rejection, as this is async).
    this.#breaker.check();
    this.#roundTrips++;
    this.#batchWrites();
    try {
      // Connected (the usual case): the client's own command timeout bounds the call.
      const result = this.#client.status === 'ready' ? await send() : await this.#sendWhenReady(send);
      this.#breaker.succeeded();
      return result;
    } catch (error) {
      throw this.#failed(error, operation, id);
    }
  }

  /** Connecting (just after start-up, or reconnecting): waits for it within the call's deadline. */
  async #sendWhenReady<T>(send: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CallTimeout(this.#callTimeoutMs)), this.#callTimeoutMs);
    });
    try {
      return await Promise.race([this.#whenReady().then(send), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** See write-batching.ts. A cluster's command goes to the primary of its slot: each is held. */
  #batchWrites(): void {
    const client = this.#client;
    if (client instanceof Cluster) for (const node of client.nodes('master')) batchWritesThisTurn(node.stream);
    else batchWritesThisTurn(client.stream);
  }

  /** Shared by every call waiting for the connection: one listener, however many calls. */
  #ready: Promise<void> | undefined;

  /**
   * Resolves once the client is connected. With no offline queue a command sent while it
   * connects (just after start-up, or reconnecting after a restart) would fail at once; this
   * waits instead, within the call's own deadline.
   */
  #whenReady(): Promise<void> {
    if (this.#client.status === 'ready') return Promise.resolve();
    this.#ready ??= new Promise<void>((resolve) => {
      this.#client.once('ready', () => {
        this.#ready = undefined;
        resolve();
      });
    });
    return this.#ready;
  }

  #failed(error: unknown, operation: string, id: string | undefined): StoreUnavailableError {
    const message = error instanceof Error ? error.message : String(error);
    const what = `Valkey ${operation}${id === undefined ? '' : ` of ${logId(id)}`}`;
    // An error reply (out of memory, wrong type) means the server is there: no outage.
    if (error instanceof Error && error.name === 'ReplyError') {
      return new StoreUnavailableError(`${what} refused: ${message}`);
    }
    this.#breaker.failed(message, { operation, ...(id === undefined ? {} : { id: logId(id) }) });
    // A connection that timed out may be half-open (a peer gone without a reset, which TCP
    // notices only after minutes): replace it rather than wait on it again.
    if (error instanceof CallTimeout || /timed out/i.test(message)) this.#client.disconnect(true);
    return new StoreUnavailableError(`${what} failed: ${message}`);
  }
}

class CallTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** SET EX and GETEX EX refuse 0 and fractions: whole seconds, at least one. */
function seconds(ttlSeconds: number): number {
  return Math.max(1, Math.ceil(ttlSeconds));
}
