/**
 * Shared pieces of the store's integration tests: the real services, clients on them, a
 * GaeStore or a whole demo app built the way src/app/sessions.ts builds it, and plain HTTP
 * requests (each on its own connection).
 */
import { before, beforeEach } from 'node:test';
import { Datastore } from '@google-cloud/datastore';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import memjs from 'memjs';
import { createApp } from '../../src/app/app.js';
import { loadConfig } from '../../src/app/config.js';
import type { SessionCache } from '../../src/gaesession/cache.js';
import { jsonCodec } from '../../src/gaesession/codec.js';
import { DatastoreStore } from '../../src/gaesession/datastore-store.js';
import { DatastoreTier, type DatastoreTierOptions } from '../../src/gaesession/datastore.js';
import { GaeStore, type GaeStoreOptions } from '../../src/gaesession/gae-store.js';
import { createMemcacheClient } from '../../src/gaesession/memcache-client.js';
import { MemcacheCache } from '../../src/gaesession/memcache.js';
import { datastorePurge } from '../../src/gaesession/purge.js';
import { createValkeyClient } from '../../src/gaesession/valkey-client.js';
import { ValkeyCache } from '../../src/gaesession/valkey.js';
import { silentLogger, type LogFields, type Logger } from '../../src/session/logger.js';
import type { Store } from '../../src/session/store.js';
import {
  freePort,
  sharedDatastoreEmulator,
  sharedMemcached,
  type DatastoreEmulator,
  type Memcached,
} from '../support/services.js';

export const PROJECT_ID = 'gaesession-test';

/** Points the Google client library at the emulator, as DATASTORE_EMULATOR_HOST does in the app. */
export async function useEmulator(): Promise<DatastoreEmulator> {
  const emulator = await sharedDatastoreEmulator();
  process.env['DATASTORE_EMULATOR_HOST'] = emulator.address;
  process.env['DATASTORE_PROJECT_ID'] = PROJECT_ID;
  return emulator;
}

export { sharedMemcached, type Memcached };

/**
 * The run's shared memcached and emulator, emptied before each test of the calling suite.
 * Call it inside `describe`; read the servers in tests (they are there once `before` ran).
 */
export function cleanSharedServices(): { memcached: Memcached; emulator: DatastoreEmulator } {
  const services = {} as { memcached: Memcached; emulator: DatastoreEmulator };
  before(async () => {
    services.memcached = await sharedMemcached();
    services.emulator = await useEmulator();
  });
  beforeEach(async () => {
    await services.memcached.flush();
    await services.emulator.reset();
  });
  return services;
}

/** A Datastore client of the test's own, to look at raw entities. */
export function datastoreClient(): Datastore {
  return new Datastore({ projectId: PROJECT_ID });
}

/** The raw Datastore entity of a session, as stored. */
export async function storedEntity(id: string, kind = 'sess_'): Promise<{ exp: Date; val: Buffer } | undefined> {
  const datastore = datastoreClient();
  const [entity] = (await datastore.get(datastore.key([kind, id]))) as [{ exp: Date; val: Buffer } | undefined];
  return entity;
}

/** The visit count in a session's Datastore entity. */
export async function storedCount(id: string): Promise<unknown> {
  const entity = await storedEntity(id);
  if (!entity) return undefined;
  const value = JSON.parse(entity.val.toString('utf8')) as { variables: Record<string, unknown> };
  return value.variables['count'];
}

/** A memjs client of the test's own, to look at raw items. */
export function rawMemcache(address: string): memjs.Client {
  return memjs.Client.create(address, { retries: 1, timeout: 1, logger: { log: () => {} } });
}

/** A logger that keeps every line, to check what was logged. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; message: string; fields?: LogFields | undefined }[] = [];
  debug(message: string, fields?: LogFields): void {
    this.lines.push({ level: 'debug', message, fields });
  }
  info(message: string, fields?: LogFields): void {
    this.lines.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: LogFields): void {
    this.lines.push({ level: 'warn', message, fields });
  }
  error(message: string, fields?: LogFields): void {
    this.lines.push({ level: 'error', message, fields });
  }
  count(level: string, message: string | RegExp): number {
    return this.lines.filter(
      (l) => l.level === level && (typeof message === 'string' ? l.message === message : message.test(l.message)),
    ).length;
  }
}

export type StoreMode = 'off' | 'sync' | 'async' | 'datastore-only';

/** One app instance's store with its own clients, and the tiers, to count calls or break them. */
export interface TestBackend {
  store: Store;
  /** The tiered store (every mode but Datastore-only). */
  gae: GaeStore | undefined;
  cache: SessionCache | undefined;
  tier: DatastoreTier | undefined;
  /** Closes the store, then the clients. */
  close(): Promise<void>;
}

export interface BackendOptions {
  logger?: Logger;
  timeoutSeconds?: number;
  kind?: string;
  keyPrefix?: string;
  cache?: { openMs?: number; callTimeoutMs?: number };
  datastore?: Partial<DatastoreTierOptions>;
  gae?: Partial<GaeStoreOptions>;
}

/** Where the cache tier is: a memcached address, or a Valkey URL (standalone or cluster). */
export type CacheServer = string | { valkeyUrl: string; cluster: boolean };

/** A store built the way src/app/sessions.ts builds it, on the given cache server. */
export function makeBackend(
  mode: StoreMode,
  cacheAddress: CacheServer | undefined,
  options: BackendOptions = {},
): TestBackend {
  const logger = options.logger ?? silentLogger;
  const datastore = mode === 'off' ? undefined : new Datastore({ projectId: PROJECT_ID });
  const tier =
    datastore && new DatastoreTier({ datastore, codec: jsonCodec, kind: options.kind, logger, ...options.datastore });
  const closeClients = async (): Promise<void> => {
    for (const client of datastore?.clients_.values() ?? []) await Promise.resolve(client.close() as unknown);
  };
  if (mode === 'datastore-only') {
    const store = new DatastoreStore(tier!);
    return { store, gae: undefined, cache: undefined, tier, close: () => store.close().then(closeClients) };
  }
  if (!cacheAddress) throw new Error('a cache store needs the cache server address');
  const cache: SessionCache =
    typeof cacheAddress === 'string'
      ? new MemcacheCache({
          client: createMemcacheClient({ servers: [cacheAddress] }),
          keyPrefix: options.keyPrefix,
          logger,
          ...options.cache,
        })
      : new ValkeyCache({
          client: createValkeyClient({ url: cacheAddress.valkeyUrl, cluster: cacheAddress.cluster }),
          keyPrefix: options.keyPrefix,
          logger,
          ...options.cache,
        });
  const gae = new GaeStore({
    cache,
    datastore: tier,
    datastoreWrites: mode === 'async' ? 'async' : 'sync',
    timeoutSeconds: options.timeoutSeconds ?? 1800,
    asyncIntervalMs: 200,
    logger,
    ...options.gae,
  });
  return {
    store: gae,
    gae,
    cache,
    tier,
    close: async () => {
      await gae.close();
      await cache.close();
      await closeClients();
    },
  };
}

export interface RunningApp {
  base: string;
  backend: TestBackend;
  logger: RecordingLogger;
  close(): Promise<void>;
}

/** The demo app (src/app/app.ts) on the App Engine store, listening on a free port. */
export async function startGaeApp(
  mode: StoreMode,
  cacheAddress: CacheServer | undefined,
  env: Record<string, string> = {},
  options: BackendOptions = {},
): Promise<RunningApp> {
  const config = loadConfig({
    SESSION_STORE: mode === 'datastore-only' ? 'datastore' : typeof cacheAddress === 'object' ? 'valkey' : 'memcache',
    SESSION_DATASTORE: mode === 'datastore-only' ? 'sync' : mode,
    PORT: '0',
    ...env,
  });
  const logger = new RecordingLogger();
  const backend = makeBackend(mode, cacheAddress, {
    timeoutSeconds: config.timeoutSeconds,
    kind: config.datastoreKind,
    keyPrefix: config.keyPrefix,
    logger,
    ...options,
  });
  const purge =
    mode === 'off' ? undefined : datastorePurge({ datastore: datastoreClient(), kind: config.datastoreKind });
  const { app } = createApp({ config, store: backend.store, purge, logger });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    backend,
    logger,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await backend.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

/** One HTTP request on a connection of its own (no keep-alive pool). */
export function request(
  base: string,
  path: string,
  options: {
    method?: string;
    cookie?: string | undefined;
    form?: Record<string, string>;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie) headers['cookie'] = options.cookie;
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, ms: Date.now() - started }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The `sessid=...` pair a response set, for the next request's Cookie header. */
export function sessionCookie(reply: Reply, name = 'sessid'): string | undefined {
  for (const header of reply.headers['set-cookie'] ?? []) {
    const match = new RegExp(`^${name}=([^;]*)`).exec(header);
    if (match && match[1]) return `${name}=${match[1]}`;
  }
  return undefined;
}

/** Logs in over HTTP and returns the session cookie. */
export async function login(base: string, userName = 'alice', password = 'a'): Promise<string> {
  const reply = await request(base, '/demo/login', { method: 'POST', form: { username: userName, password } });
  if (reply.status !== 303) throw new Error(`login answered ${reply.status}: ${reply.body}`);
  const cookie = sessionCookie(reply);
  if (!cookie) throw new Error('login set no session cookie');
  return cookie;
}

/** The visit count a demo page shows, or undefined on an anonymous page. */
export function visitCount(reply: Reply): number | undefined {
  const match = /data-testid="visit-count">(\d+)</.exec(reply.body);
  return match ? Number(match[1]) : undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check` is true, polling; fails after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(50);
  }
}

/** The ID inside a `sessid=ID` cookie pair. */
export function idOf(cookie: string): string {
  return cookie.slice(cookie.indexOf('=') + 1);
}

/** The number of live sessions of the user a demo page shows, or undefined on an anonymous page. */
export function sessionCount(reply: Reply): number | undefined {
  const match = /data-testid="session-count">(\d+)</.exec(reply.body);
  return match ? Number(match[1]) : undefined;
}

/** Whether a response clears the session cookie (logout, or a rejected cookie). */
export function clearsCookie(reply: Reply, name = 'sessid'): boolean {
  return (reply.headers['set-cookie'] ?? []).some((header) =>
    new RegExp(`^${name}=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)`).test(header),
  );
}

/** A demo server in a process of its own, started as `npm start` starts it (src/app/server.ts). */
export interface ServerProcess {
  base: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with its exit code once it ended. */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
  /** Kills it (SIGKILL) unless it ended already, and waits for the end. */
  stop(): Promise<void>;
}

/** The checkout whose server is started: this one, or RELIABILITY_ROOT (to show a test failing on older code). */
const serverRoot =
  process.env['RELIABILITY_ROOT'] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Starts `node --import tsx src/app/server.ts` on a free port with `env` over this process's
 * environment (the emulator's project ID given), and resolves once it answers `GET /demo`.
 */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/app/server.ts'], {
    cwd: serverRoot,
    env: { ...process.env, PORT: String(port), DATASTORE_PROJECT_ID: PROJECT_ID, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  for (;;) {
    if (
      await request(base, '/demo').then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > until || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`server did not start: ${output}`);
    }
    await sleep(100);
  }
  return {
    base,
    output: () => output,
    exited,
    kill: (signal) => child.kill(signal),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * What `loops` clients viewing one session as fast as they can saw until `stop` resolved:
 * the counts shown by 200 views, every status, and how many 200 views were anonymous (the
 * user shown as logged out).
 */
export async function viewLoops(
  base: string,
  cookie: string,
  loops: number,
  stop: Promise<unknown>,
): Promise<{ counts: number[]; statuses: number[]; anonymous: number }> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  const counts: number[] = [];
  const statuses: number[] = [];
  let anonymous = 0;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!stopped) {
        const reply = await request(base, '/demo', { cookie });
        statuses.push(reply.status);
        const count = visitCount(reply);
        if (reply.status === 200 && count !== undefined) counts.push(count);
        else if (reply.status === 200) anonymous++;
      }
    }),
  );
  return { counts, statuses, anonymous };
}
