import memjs from 'memjs';
import { logId, silentLogger, type Logger } from '../session/logger.js';
import type { SessionRecord } from '../session/session.js';
import { SessionTooLargeError, StoreUnavailableError } from '../session/store.js';
import { decodeWith, UndecodableSessionError, type Codec } from './codec.js';
import { CircuitBreaker } from './circuit-breaker.js';

/** memcached's longest key. */
export const MAX_KEY_BYTES = 250;
/** memcached's default item size limit (`-I 1m`), which Memorystore and MemCachier also use. */
export const MAX_ITEM_BYTES = 1024 * 1024;
/**
 * What memcached adds to an item besides key and value (item header, CAS, flags, suffix,
 * chunk headers). It refuses a set whose total exceeds the limit, and then drops the value it
 * held, so the store checks against this conservative figure before sending anything.
 */
export const ITEM_OVERHEAD_BYTES = 1024;
/** memcached reads a relative expiry longer than this (30 days) as an absolute Unix time. */
export const MAX_RELATIVE_EXPIRY_SECONDS = 60 * 60 * 24 * 30;

/** Binary protocol opcodes and statuses used here (memcached protocol_binary.h). */
const OP = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, touch: 0x1c, gat: 0x1d } as const;
const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02, tooLarge: 0x03, notStored: 0x05 } as const;

/** A response from memcached (what memjs hands to a `perform` callback). */
interface MemjsResponse {
  header: { status: number; cas: Buffer };
  val: Buffer;
}

/**
 * The untyped internals of memjs this tier relies on. memjs has no CAS or GAT call, but its
 * `perform` sends any binary-protocol request over the client's pooled connection with its
 * retry and timeout handling; `incrSeq` + `seq` give the request its opaque number.
 */
export interface MemjsLowLevel {
  readonly seq: number;
  incrSeq(): void;
  perform(
    key: string,
    request: Buffer,
    seq: number,
    callback: (error: Error | null, response: MemjsResponse | null) => void,
  ): void;
  close(): void;
}

export interface MemcacheClientOptions {
  servers: string[];
  username?: string | undefined;
  password?: string | undefined;
  /** Attempts per call (memjs `retries`; default 3). */
  retries?: number | undefined;
  /** Time one attempt may take, in ms (memjs `timeout` and `conntimeout`; default 400). */
  attemptTimeoutMs?: number | undefined;
}

/**
 * The one memjs client of the process. Failover is off (sessions must not wander to another
 * server's stale copy); keep-alive notices dead peers; memjs's own console logging is
 * silenced because the tier logs each outage once.
 */
export function createMemcacheClient(options: MemcacheClientOptions): memjs.Client {
  const attempt = (options.attemptTimeoutMs ?? 400) / 1000;
  return memjs.Client.create(options.servers.join(','), {
    retries: options.retries ?? 3,
    retry_delay: 0.05,
    timeout: attempt,
    conntimeout: attempt,
    failover: false,
    keepAlive: true,
    logger: { log: () => {} },
    ...(options.username && options.password ? { username: options.username, password: options.password } : {}),
  });
}

/** A session read from memcache, with the CAS value a later write must present. */
export interface CachedRecord {
  record: SessionRecord;
  cas: Buffer;
}

export type CasResult = { status: 'stored'; cas: Buffer } | { status: 'exists' } | { status: 'not-found' };

export interface MemcacheTierOptions {
  /** The shared memjs client (its typings include the low-level calls used here). */
  client: MemjsLowLevel;
  codec: Codec;
  keyPrefix?: string | undefined;
  /**
   * The whole time a call may take, retries included, in ms (default 1000). memjs can wait
   * forever on a server that accepts a connection and never answers, so a timer of our own
   * bounds every call.
   */
  callTimeoutMs?: number | undefined;
  /** After a failure, calls fail at once for this long (ms, default 3000) instead of each waiting. */
  retryAfterMs?: number | undefined;
  logger?: Logger | undefined;
  /** Called when memcache answers again after an outage. */
  onRecovered?: (() => void) | undefined;
}

/**
 * Sessions in memcached over the binary protocol. Reads are GAT (get-and-touch): one round
 * trip returns the item with its CAS value and restarts its expiry, so a view that changes
 * nothing costs exactly that. Writes of changes are SETs carrying the CAS from the read, so
 * a write never overwrites another request's newer state (memcached answers "exists", and
 * the store replays its changes on the newer state).
 */
export class MemcacheTier {
  readonly #client: MemjsLowLevel;
  readonly #codec: Codec;
  readonly #prefix: string;
  readonly #callTimeoutMs: number;
  readonly #outage: CircuitBreaker;
  /** Requests sent to memcached, for tests and benchmarks. */
  roundTrips = 0;

  constructor(options: MemcacheTierOptions) {
    this.#client = options.client;
    this.#codec = options.codec;
    this.#prefix = options.keyPrefix ?? '';
    this.#callTimeoutMs = options.callTimeoutMs ?? 1000;
    this.#outage = new CircuitBreaker({
      backend: 'memcache',
      openMs: options.retryAfterMs,
      logger: options.logger ?? silentLogger,
      onRecovered: options.onRecovered,
    });
  }

  /** The memcache key of a session. */
  key(id: string): string {
    return this.#prefix + id;
  }

  /** Reads a session and restarts its expiry; undefined when memcache does not have it. */
  async getAndTouch(id: string, ttlSeconds: number): Promise<CachedRecord | undefined> {
    const response = await this.#send(OP.gat, id, expiration(ttlSeconds), '');
    if (response.header.status === STATUS.notFound) return undefined;
    this.#expectOk(response, 'GAT', id);
    return { record: this.#decode(response.val, id), cas: response.header.cas };
  }

  /** Whether memcache holds the session (a plain GET: nothing is touched). */
  async has(id: string): Promise<boolean> {
    const response = await this.#send(OP.get, id, '', '');
    if (response.header.status === STATUS.notFound) return false;
    this.#expectOk(response, 'GET', id);
    return true;
  }

  /** Restarts the expiry of an item without reading it. */
  async touch(id: string, ttlSeconds: number): Promise<boolean> {
    const response = await this.#send(OP.touch, id, expiration(ttlSeconds), '');
    if (response.header.status === STATUS.notFound) return false;
    this.#expectOk(response, 'TOUCH', id);
    return true;
  }

  /** Stores a session that memcache must not have yet; undefined when it does. */
  async add(record: SessionRecord): Promise<Buffer | undefined> {
    const value = this.encode(record);
    const response = await this.#send(OP.add, record.id, storeExtras(record.timeout), value);
    if (response.header.status === STATUS.exists || response.header.status === STATUS.notStored) return undefined;
    this.#expectOk(response, 'ADD', record.id);
    return response.header.cas;
  }

  /** Replaces the item only if it is still the one read with `cas`. */
  async setIfUnchanged(record: SessionRecord, cas: Buffer): Promise<CasResult> {
    const value = this.encode(record);
    const response = await this.#send(OP.set, record.id, storeExtras(record.timeout), value, cas);
    if (response.header.status === STATUS.exists) return { status: 'exists' };
    if (response.header.status === STATUS.notFound) return { status: 'not-found' };
    this.#expectOk(response, 'SET', record.id);
    return { status: 'stored', cas: response.header.cas };
  }

  /** Removes a session; true when it was there. */
  async delete(id: string): Promise<boolean> {
    const response = await this.#send(OP.delete, id, '', '');
    if (response.header.status === STATUS.notFound) return false;
    this.#expectOk(response, 'DELETE', id);
    return true;
  }

  /** The bytes of a record, after checking them against memcached's limits. */
  encode(record: SessionRecord): Buffer {
    const keyBytes = Buffer.byteLength(this.key(record.id));
    if (keyBytes > MAX_KEY_BYTES) {
      throw new SessionTooLargeError(
        `memcache key of ${keyBytes} bytes exceeds memcached's ${MAX_KEY_BYTES}-byte limit`,
      );
    }
    const value = this.#codec.encode(record);
    const limit = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES - keyBytes;
    if (value.length > limit) {
      throw new SessionTooLargeError(
        `session of ${value.length} bytes exceeds the memcache item limit (${limit} bytes of value in a 1 MB item)`,
      );
    }
    return value;
  }

  #decode(value: Buffer, id: string): SessionRecord {
    const record = decodeWith(this.#codec, value);
    // A key maps to one session; anything else there is corruption, and must not be served.
    if (record.id !== id) throw new UndecodableSessionError(`memcache item ${logId(id)} holds another session`);
    return record;
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
    id: string,
    extras: Buffer | string,
    value: Buffer | string,
    cas?: Buffer,
  ): Promise<MemjsResponse> {
    // Within the window after a failure: fail at once (a rejection, as this is async).
    this.#outage.check();
    const key = this.key(id);
    const client = this.#client;
    client.incrSeq();
    const seq = client.seq;
    const request = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, seq);
    // The 8-byte CAS field of the request header: memcached stores only if the item's CAS matches.
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
          reject(this.#failed(error ?? 'no response'));
        } else {
          this.#outage.succeeded();
          resolve(response);
        }
      };
      try {
        client.perform(key, request, seq, finish);
      } catch (error) {
        finish(error instanceof Error ? error : String(error), null);
      }
    });
  }

  #failed(error: Error | string): StoreUnavailableError {
    const message = typeof error === 'string' ? error : error.message;
    this.#outage.failed(message);
    return new StoreUnavailableError(`memcache unavailable: ${message}`);
  }

  close(): void {
    this.#client.close();
  }
}

/** The expiry field: seconds from now, or, beyond 30 days, the absolute Unix time memcached expects. */
export function expirySeconds(ttlSeconds: number, now = Date.now()): number {
  return ttlSeconds > MAX_RELATIVE_EXPIRY_SECONDS ? Math.floor(now / 1000) + ttlSeconds : ttlSeconds;
}

function expiration(ttlSeconds: number): Buffer {
  const extras = Buffer.alloc(4);
  extras.writeUInt32BE(expirySeconds(ttlSeconds), 0);
  return extras;
}

/** SET/ADD extras: 4 bytes of flags (unused: the codec knows the format), 4 of expiry. */
function storeExtras(ttlSeconds: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(0, 0);
  extras.writeUInt32BE(expirySeconds(ttlSeconds), 4);
  return extras;
}
