import { Socket } from 'node:net';
import memjs from 'memjs';

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
export const OP = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, touch: 0x1c, gat: 0x1d } as const;
export const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02, tooLarge: 0x03, notStored: 0x05 } as const;

/** A response from memcached (what memjs hands to a `perform` callback). */
export interface MemjsResponse {
  header: { status: number; cas: Buffer };
  val: Buffer;
}

/**
 * The untyped internals of memjs this tier relies on. memjs has no CAS or GAT call, but its
 * `perform` sends any binary-protocol request over the client's pooled connection with its
 * retry and timeout handling; `incrSeq` + `seq` give the request its opaque number; `server`
 * is the server a key goes to, whose `_socket` (once connected) the tier batches writes on.
 */
export interface MemjsLowLevel {
  readonly seq: number;
  incrSeq(): void;
  server(key: string): object | null | undefined;
  perform(
    key: string,
    request: Buffer,
    seq: number,
    callback: (error: Error | null, response: MemjsResponse | null) => void,
    /** Attempts for this request (the client's `retries` when undefined). */
    retries?: number,
  ): void;
  close(): void;
}

/**
 * memjs resends a request whose answer is late, though memcached may have applied it: an ADD
 * or a CAS write would then report its own success as a conflict (a put-back would skip its
 * tombstone check, a view would be replayed and counted twice). Those go again only after a
 * broken connection, which they cannot have passed; reads, touches and plain sets and deletes
 * can be repeated.
 */
export function sentOnce(opcode: number, cas: Buffer | undefined): boolean {
  return opcode === OP.add || cas !== undefined;
}

/** memjs gave up waiting for the answer (memcached may have applied the request), not a broken connection. */
export function answerLate(error: Error | string): boolean {
  return (typeof error === 'string' ? error : error.message).includes('waiting on response');
}

/** The connection of a memjs server (its `_socket`), once it has one. */
export function socketOf(server: object | null | undefined): Socket | undefined {
  const socket: unknown = server ? Reflect.get(server, '_socket') : undefined;
  return socket instanceof Socket ? socket : undefined;
}

/** memjs's pause before it resends a request (its `retry_delay`), and ours for one it does not resend. */
export const RETRY_DELAY_MS = 50;

export interface MemcacheClientOptions {
  servers: string[];
  username?: string | undefined;
  password?: string | undefined;
  /** Attempts per call (memjs `retries`; default 3). */
  retries?: number | undefined;
  /**
   * Time one attempt may take, in ms (memjs `timeout` and `conntimeout`; default 1000, the
   * tier's whole budget per call). Under load an answer comes late far more often than it is
   * lost, and a memjs timeout drops the connection with every request on it; a broken
   * connection fails at once, and that is what the retries are for.
   */
  attemptTimeoutMs?: number | undefined;
}

/**
 * The one memjs client of the process. Failover is off (sessions must not wander to another
 * server's stale copy); keep-alive notices dead peers; memjs's own console logging is
 * silenced because the tier logs each outage once.
 */
export function createMemcacheClient(options: MemcacheClientOptions): memjs.Client {
  const attempt = (options.attemptTimeoutMs ?? 1000) / 1000;
  return memjs.Client.create(options.servers.join(','), {
    retries: options.retries ?? 3,
    retry_delay: RETRY_DELAY_MS / 1000,
    timeout: attempt,
    conntimeout: attempt,
    failover: false,
    keepAlive: true,
    logger: { log: () => {} },
    ...(options.username && options.password ? { username: options.username, password: options.password } : {}),
  });
}

/**
 * The expiry field: seconds from now, or, beyond 30 days, the absolute Unix time memcached
 * expects. memcached's clock ticks once a second, so an item given N seconds may go after
 * N - 1: one more keeps it to its time (every read checks the session's deadline itself).
 */
export function expirySeconds(ttlSeconds: number, now = Date.now()): number {
  const seconds = ttlSeconds + 1;
  return seconds > MAX_RELATIVE_EXPIRY_SECONDS ? Math.floor(now / 1000) + seconds : seconds;
}

export function expiration(ttlSeconds: number): Buffer {
  const extras = Buffer.alloc(4);
  extras.writeUInt32BE(expirySeconds(ttlSeconds), 0);
  return extras;
}

/** SET/ADD extras: 4 bytes of flags (unused: the codec knows the format), 4 of expiry. */
export function storeExtras(ttlSeconds: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(0, 0);
  extras.writeUInt32BE(expirySeconds(ttlSeconds), 4);
  return extras;
}
