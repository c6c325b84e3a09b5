import memjs from 'memjs';
import { logId, silentLogger } from '../session/logger.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import {
  type CacheTierOptions,
  TOMBSTONE_SUFFIX,
  OWNER_PREFIX,
  type CachedItem,
  type CacheToken,
  type CacheWriteResult,
  type SessionCache,
} from './cache.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { batchWritesThisTurn } from './write-batching.js';
import {
  expiration,
  ITEM_OVERHEAD_BYTES,
  MAX_ITEM_BYTES,
  MAX_KEY_BYTES,
  answerLate,
  OP,
  RETRY_DELAY_MS,
  sentOnce,
  STATUS,
  socketOf,
  storeExtras,
  type MemjsLowLevel,
  type MemjsResponse,
} from './memcache-client.js';

export interface MemcacheCacheOptions extends CacheTierOptions {
  /** The shared memjs client (its typings include the low-level calls used here). */
  client: MemjsLowLevel;
}

/** Attempts of a compare-and-set on an owner index before an update gives up. */
const INDEX_ATTEMPTS = 10;

/**
 * The memcache cache tier, over the binary protocol. A read is GAT (get-and-touch): one round
 * trip returns the item with its CAS value and restarts its expiry. Conditional writes and
 * deletes carry that CAS value, so memcached itself refuses one that would overwrite another
 * request's newer state.
 */
export class MemcacheCache implements SessionCache {
  readonly name = 'memcache';
  readonly #client: MemjsLowLevel;
  readonly #prefix: string;
  readonly #callTimeoutMs: number;
  readonly #breaker: CircuitBreaker;
  roundTrips = 0;

  constructor(options: MemcacheCacheOptions) {
    this.#client = options.client;
    this.#prefix = options.keyPrefix ?? '';
    this.#callTimeoutMs = options.callTimeoutMs ?? 1000;
    this.#breaker = new CircuitBreaker({
      backend: 'memcache',
      openMs: options.openMs,
      logger: options.logger ?? silentLogger,
      now: options.now,
      onRecovered: options.onRecovered,
    });
  }

  async read(id: string, ttlSeconds: number): Promise<CachedItem | undefined> {
    const response = await this.#send(OP.gat, this.#prefix + id, expiration(ttlSeconds), '');
    if (response.header.status === STATUS.notFound) return undefined;
    this.#expectOk(response, 'GAT', id);
    return { value: response.val, token: response.header.cas };
  }

  async get(id: string): Promise<Buffer | undefined> {
    const response = await this.#send(OP.get, this.#prefix + id, '', '');
    if (response.header.status === STATUS.notFound) return undefined;
    this.#expectOk(response, 'GET', id);
    return response.val;
  }

  async expire(id: string, ttlSeconds: number): Promise<void> {
    const response = await this.#send(OP.touch, this.#prefix + id, expiration(ttlSeconds), '');
    if (response.header.status !== STATUS.notFound) this.#expectOk(response, 'TOUCH', id);
  }

  async add(id: string, value: Buffer, ttlSeconds: number): Promise<CacheToken | undefined> {
    const response = await this.#send(OP.add, this.#checkedKey(id, value), storeExtras(ttlSeconds), value);
    if (response.header.status === STATUS.exists || response.header.status === STATUS.notStored) return undefined;
    this.#expectOk(response, 'ADD', id);
    return response.header.cas;
  }

  async replace(id: string, value: Buffer, ttlSeconds: number, token: CacheToken): Promise<CacheWriteResult> {
    const key = this.#checkedKey(id, value);
    const response = await this.#send(OP.set, key, storeExtras(ttlSeconds), value, token);
    if (response.header.status === STATUS.exists) return { status: 'conflict' };
    if (response.header.status === STATUS.notFound) return { status: 'gone' };
    this.#expectOk(response, 'SET', id);
    return { status: 'stored', token: response.header.cas };
  }

  async delete(id: string, token?: CacheToken): Promise<'deleted' | 'conflict' | 'absent'> {
    const response = await this.#send(OP.delete, this.#prefix + id, '', '', token);
    if (response.header.status === STATUS.notFound) return 'absent';
    if (response.header.status === STATUS.exists) return 'conflict';
    this.#expectOk(response, 'DELETE', id);
    return 'deleted';
  }

  async bury(id: string, ttlSeconds: number): Promise<void> {
    const response = await this.#send(OP.set, this.#prefix + id + TOMBSTONE_SUFFIX, storeExtras(ttlSeconds), '1');
    this.#expectOk(response, 'SET', id);
  }

  async isBuried(id: string): Promise<boolean> {
    const response = await this.#send(OP.get, this.#prefix + id + TOMBSTONE_SUFFIX, '', '');
    if (response.header.status === STATUS.notFound) return false;
    this.#expectOk(response, 'GET', id);
    return true;
  }

  addOwned(owner: string, id: string, ttlSeconds: number): Promise<void> {
    return this.#updateIndex(owner, ttlSeconds, (ids) => (ids.includes(id) ? ids : [...ids, id]));
  }

  async listOwned(owner: string): Promise<string[]> {
    return (await this.#readIndex(owner))?.ids ?? [];
  }

  removeOwned(owner: string, ids: string[]): Promise<void> {
    // An index item lives as long as the newest session in it could; a removal keeps that TTL.
    return this.#updateIndex(owner, undefined, (current) => current.filter((id) => !ids.includes(id)));
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  /** An owner's index: one item holding a JSON array of IDs, changed by compare-and-set. */
  async #readIndex(owner: string): Promise<{ ids: string[]; cas: Buffer } | undefined> {
    const response = await this.#send(OP.get, this.#prefix + OWNER_PREFIX + owner, '', '');
    if (response.header.status === STATUS.notFound) return undefined;
    this.#expectOk(response, 'GET', owner);
    const parsed: unknown = JSON.parse(response.val.toString('utf8') || '[]');
    const ids = Array.isArray(parsed) ? parsed.filter((id): id is string => typeof id === 'string') : [];
    return { ids, cas: response.header.cas };
  }

  async #updateIndex(
    owner: string,
    ttlSeconds: number | undefined,
    change: (ids: string[]) => string[],
  ): Promise<void> {
    const key = this.#prefix + OWNER_PREFIX + owner;
    for (let attempt = 1; attempt <= INDEX_ATTEMPTS; attempt++) {
      const current = await this.#readIndex(owner);
      if (!current && ttlSeconds === undefined) return;
      const value = Buffer.from(JSON.stringify(change(current?.ids ?? [])), 'utf8');
      // A removal has no TTL of its own to give: 0 would mean "never expires", so keep a day.
      const extras = storeExtras(ttlSeconds ?? 86_400);
      const response = current
        ? await this.#send(OP.set, key, extras, value, current.cas)
        : await this.#send(OP.add, key, extras, value);
      const status = response.header.status;
      if (status === STATUS.exists || status === STATUS.notStored || status === STATUS.notFound) continue;
      this.#expectOk(response, 'SET', owner);
      return;
    }
    throw new StoreUnavailableError('memcache owner index changed by too many requests at once');
  }

  /** The key of a session's item, after checking key and value against memcached's limits. */
  #checkedKey(id: string, value: Buffer): string {
    const key = this.#prefix + id;
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes > MAX_KEY_BYTES) {
      throw new SessionTooLargeError(
        `memcache key of ${keyBytes} bytes exceeds memcached's ${MAX_KEY_BYTES}-byte limit`,
      );
    }
    const limit = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES - keyBytes;
    if (value.length > limit) {
      throw new SessionTooLargeError(
        `session of ${value.length} bytes exceeds the memcache item limit (${limit} bytes of value in a 1 MB item)`,
      );
    }
    return key;
  }

  #expectOk(response: MemjsResponse, operation: string, id: string): void {
    const status = response.header.status;
    if (status === STATUS.ok) return;
    if (status === STATUS.tooLarge) throw new SessionTooLargeError('memcached refused the session as too large');
    throw new StoreUnavailableError(
      `memcache ${operation} of ${logId(id)} failed with status 0x${status.toString(16)}`,
    );
  }

  /** Sends one request, bounded in time; every failure becomes StoreUnavailableError. */
  async #send(
    opcode: number,
    key: string,
    extras: Buffer | string,
    value: Buffer | string,
    cas?: Buffer,
  ): Promise<MemjsResponse> {
    // Within the window after a failure: fail at once (a rejection, as this is async).
    this.#breaker.check();
    const client = this.#client;
    client.incrSeq();
    const seq = client.seq;
    const request = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, seq);
    // The 8-byte CAS field of the request header: memcached acts only if the item's CAS matches.
    if (cas) cas.copy(request, 16, 0, 8);
    this.roundTrips++;
    return new Promise<MemjsResponse>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        finish(new Error(`no answer within ${this.#callTimeoutMs} ms`), null);
      }, this.#callTimeoutMs);
      const finish = (error: Error | string | null, response: MemjsResponse | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error || !response) {
          const message = typeof error === 'string' ? error : (error?.message ?? 'no response');
          this.#breaker.failed(message);
          reject(new StoreUnavailableError(`memcache unavailable: ${message}`));
        } else {
          this.#breaker.succeeded();
          resolve(response);
        }
      };
      const once = sentOnce(opcode, cas);
      let resends = once ? 1 : 0;
      const perform = (): void => {
        try {
          batchWritesThisTurn(socketOf(client.server(key)));
          client.perform(key, request, seq, answered, once ? 1 : undefined);
        } catch (error) {
          finish(error instanceof Error ? error : String(error), null);
        }
      };
      const answered = (error: Error | string | null, response: MemjsResponse | null): void => {
        // One that must go once is resent (as memjs resends the others) only if it never reached memcached.
        if (error && resends > 0 && !settled && !answerLate(error)) {
          resends--;
          setTimeout(perform, RETRY_DELAY_MS);
        } else {
          finish(error, response);
        }
      };
      perform();
    });
  }
}
