import { TOMBSTONE_SUFFIX } from '../gaesession/cache.js';
import { DEFAULT_KIND } from '../gaesession/datastore.js';
import { MAX_KEY_BYTES } from '../gaesession/memcache-client.js';
import { isValidCookieName, type SecurePolicy } from '../session/cookie.js';
import { DEFAULT_ID_BYTES, idLength } from '../session/id.js';

export type StoreKind = 'memory' | 'memcache' | 'valkey' | 'datastore';
export type DatastoreMode = 'off' | 'sync' | 'async';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Everything the app reads from its environment, typed and checked. */
export interface Config {
  port: number;
  store: StoreKind;
  memcache: { servers: string[]; username: string; password: string; retries: number };
  /** The Valkey endpoint (with a cluster, its discovery endpoint) and whether it is a cluster. */
  valkey: { url: string; cluster: boolean };
  /** Datastore backup of the memcache and Valkey stores; always `sync` for the Datastore-only store. */
  datastore: DatastoreMode;
  datastoreKind: string;
  /** Least time between two asynchronous Datastore writes of one session (SESSION_DATASTORE=async). */
  asyncWriteIntervalMs: number;
  keyPrefix: string;
  timeoutSeconds: number;
  /** Absolute lifetime of a session, from its creation. */
  lifetimeSeconds: number;
  /** Most sessions the in-memory store holds before it drops the least recently used. */
  memoryMaxSessions: number;
  cookie: { name: string; maxAgeSeconds: number; secure: SecurePolicy };
  /** How long a client may take to send a whole request, and how long an idle connection stays open. */
  http: { requestTimeoutSeconds: number; keepAliveTimeoutSeconds: number };
  purgeDeadlineSeconds: number;
  /** How long shutdown waits for in-flight requests and pending writes. */
  shutdownGraceSeconds: number;
  demoPassword: string;
  logLevel: LogLevel;
  /**
   * One log line per request. Off by default on App Engine, whose front end already writes a
   * request log entry for every request (and groups the app's own lines under it by trace);
   * on locally, where nothing else does.
   */
  logRequests: boolean;
}

/** The demo's default password; the page shows it as a tip (a password you chose, it does not). */
export const DEFAULT_DEMO_PASSWORD = 'a';

/** A configuration value that cannot be right; the message names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const DAY = 24 * 60 * 60;

/** Reads the configuration from environment variables (see README for the table). */
export function loadConfig(env: Env = process.env): Config {
  const read = (name: string, fallback: string): string => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? fallback : value;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const value = read(name, fallback);
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${value}")`);
    }
    return value as T;
  };
  const integer = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const text = read(name, String(fallback));
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${text}")`);
    }
    return value;
  };

  const store = oneOf<StoreKind>('SESSION_STORE', 'memory', ['memory', 'memcache', 'valkey', 'datastore']);
  const datastore = oneOf<DatastoreMode>('SESSION_DATASTORE', 'sync', ['off', 'sync', 'async']);

  const servers = read('MEMCACHE_SERVERS', '127.0.0.1:11211')
    .split(',')
    .map((s) => s.trim());
  for (const server of servers) {
    if (!/^[^\s:,]+:\d{1,5}$/.test(server) || Number(server.split(':').pop()) > 65535) {
      throw new ConfigError(`MEMCACHE_SERVERS must be a comma-separated list of host:port (got "${server}")`);
    }
  }

  const valkeyUrl = read('VALKEY_URL', 'redis://127.0.0.1:6379');
  checkValkeyUrl(valkeyUrl);
  const valkeyCluster = oneOf('VALKEY_CLUSTER', 'false', ['true', 'false']) === 'true';

  const keyPrefix = env['SESSION_KEY_PREFIX'] ?? '';
  if (/[\s\p{Cc}]/u.test(keyPrefix)) {
    throw new ConfigError('SESSION_KEY_PREFIX must not contain spaces or control characters');
  }
  // The longest key made from a session ID is its tombstone: prefix + ID + ':ended'. memcached
  // takes 250 bytes; Valkey takes more, but one limit keeps the tiers interchangeable.
  const room = MAX_KEY_BYTES - idLength(DEFAULT_ID_BYTES) - TOMBSTONE_SUFFIX.length;
  if (Buffer.byteLength(keyPrefix) > room) {
    throw new ConfigError(
      `SESSION_KEY_PREFIX must be at most ${room} bytes, to leave room for the session ID and "${TOMBSTONE_SUFFIX}" in a ${MAX_KEY_BYTES}-byte memcache key`,
    );
  }

  const datastoreKind = read('DATASTORE_KIND', DEFAULT_KIND);
  if (/^__.*__$/.test(datastoreKind) || Buffer.byteLength(datastoreKind) > 1500) {
    throw new ConfigError(`DATASTORE_KIND is not a usable Datastore kind (got "${datastoreKind}")`);
  }

  const cookieName = read('SESSION_COOKIE_NAME', 'sessid');
  if (!isValidCookieName(cookieName)) {
    throw new ConfigError(
      `SESSION_COOKIE_NAME must be a cookie token (letters, digits, !#$%&'*+-.^_\`|~), got "${cookieName}"`,
    );
  }
  const cookieSecure = oneOf<SecurePolicy>('SESSION_COOKIE_SECURE', 'auto', ['auto', 'always', 'never']);
  // Browsers drop a __Host- or __Secure- cookie set without Secure (the prefix is matched
  // case-insensitively), and `auto` leaves Secure off over plain HTTP: the session would
  // silently never stick. (The cookie is always Path=/ without Domain, as __Host- needs.)
  const prefix = /^__(host|secure)-/i.exec(cookieName)?.[0];
  if (prefix !== undefined && cookieSecure !== 'always') {
    throw new ConfigError(
      `SESSION_COOKIE_NAME "${cookieName}" has the ${prefix} prefix, which needs SESSION_COOKIE_SECURE=always (got "${cookieSecure}")`,
    );
  }

  // A year at most: longer is surely a mistake, and memcached's expiry field must hold it.
  const timeoutSeconds = integer('SESSION_TIMEOUT_SECONDS', 1800, 1, 365 * DAY);
  const lifetimeSeconds = integer('SESSION_MAX_LIFETIME_SECONDS', Math.max(DAY, timeoutSeconds), 1, 400 * DAY);
  if (lifetimeSeconds < timeoutSeconds) {
    throw new ConfigError(
      `SESSION_MAX_LIFETIME_SECONDS (${lifetimeSeconds}) must not be below SESSION_TIMEOUT_SECONDS (${timeoutSeconds})`,
    );
  }

  return {
    port: integer('PORT', 8080, 0, 65535),
    store,
    memcache: {
      servers,
      username: env['MEMCACHE_USERNAME'] ?? '',
      password: env['MEMCACHE_PASSWORD'] ?? '',
      retries: integer('MEMCACHE_RETRIES', 3, 1, 10),
    },
    valkey: { url: valkeyUrl, cluster: valkeyCluster },
    datastore: store === 'datastore' ? 'sync' : datastore,
    datastoreKind,
    asyncWriteIntervalMs: integer('DATASTORE_ASYNC_INTERVAL_MS', 2000, 0, 600_000),
    keyPrefix,
    timeoutSeconds,
    lifetimeSeconds,
    memoryMaxSessions: integer('MEMORY_STORE_MAX_SESSIONS', 10_000, 1, 10_000_000),
    cookie: {
      name: cookieName,
      // Browsers cap Max-Age at 400 days.
      maxAgeSeconds: integer('SESSION_COOKIE_MAX_AGE_SECONDS', 2_592_000, 1, 400 * DAY),
      secure: cookieSecure,
    },
    http: {
      requestTimeoutSeconds: integer('HTTP_REQUEST_TIMEOUT_SECONDS', 30, 1, 3600),
      // Longer than the 600 s Google's front ends keep an idle connection to a backend (see server.ts).
      keepAliveTimeoutSeconds: integer('HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', 620, 1, 3600),
    },
    // App Engine ends a cron request after 10 minutes.
    purgeDeadlineSeconds: integer('PURGE_DEADLINE_SECONDS', 480, 1, 600),
    shutdownGraceSeconds: integer('SHUTDOWN_GRACE_SECONDS', 5, 0, 3600),
    // Not trimmed (spaces may be part of a password); empty means unset, like every variable.
    demoPassword: env['DEMO_PASSWORD'] || DEFAULT_DEMO_PASSWORD,
    logLevel: oneOf<LogLevel>('LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error']),
    logRequests:
      oneOf('LOG_REQUESTS', env['GAE_SERVICE'] || env['K_SERVICE'] ? 'false' : 'true', ['true', 'false']) === 'true',
  };
}

/**
 * VALKEY_URL must name a server: redis:// or rediss:// (TLS), a host, an optional port (6379) and
 * optional user:password@. A path (a database number) is refused rather than ignored: cluster
 * mode has only database 0. The message never repeats the password.
 */
function checkValkeyUrl(value: string): void {
  const form = 'redis://[user:password@]host[:port] or rediss://… for TLS';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`VALKEY_URL must be a URL, ${form}`);
  }
  if (url.password) url.password = '***';
  const shown = url.href;
  const wrong =
    (url.protocol !== 'redis:' && url.protocol !== 'rediss:') ||
    url.hostname === '' ||
    url.port === '0' ||
    !['', '/'].includes(url.pathname) ||
    url.search !== '' ||
    url.hash !== '';
  if (wrong) throw new ConfigError(`VALKEY_URL must be ${form} (got "${shown}")`);
}
