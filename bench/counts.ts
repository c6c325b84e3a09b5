import { randomBytes } from 'node:crypto';
import type { Datastore } from '@google-cloud/datastore';
import type { Redis } from 'iovalkey';
import type memjs from 'memjs';
import { memcacheCommands, memcachedStats, type MemcacheCommands } from './memcached-stats.js';
import { subtract } from './measure.js';
import type { ServerProcess } from './server-process.js';
import { watchRoundTrips, type ValkeyTrips } from './valkey.js';
import { logIn, visitCount } from './visitors.js';

/** Where each variant keeps a session, to weigh what it stores. */
export interface Backends {
  memcache: memjs.Client | undefined;
  datastore: Datastore | undefined;
  valkey: Redis | undefined;
}

/** Bytes one stored session takes: the memcache item's value, the Valkey value and the Datastore entity's payload. */
export interface StoredBytes {
  memcache: number | undefined;
  datastore: number | undefined;
  valkey?: number | undefined;
}

/** What one logged-in session of this variant occupies (read right after login and one view). */
export async function storedBytes(variant: string, cookie: string, backends: Backends): Promise<StoredBytes> {
  const id = sessionId(cookie);
  const item = async (key: string): Promise<number | undefined> =>
    (await backends.memcache?.get(key))?.value?.length ?? undefined;
  const entity = async (kind: string, property: string): Promise<number | undefined> => {
    if (!backends.datastore) return undefined;
    const [found] = (await backends.datastore.get(backends.datastore.key([kind, id]))) as [
      Record<string, unknown> | undefined,
    ];
    const value = found?.[property];
    if (typeof value === 'string') return Buffer.byteLength(value);
    return Buffer.isBuffer(value) ? value.length : undefined;
  };
  const valkey = async (key: string): Promise<number | undefined> => {
    const client = backends.valkey;
    if (!client) return undefined;
    const type = await client.type(key);
    if (type === 'string') return client.strlen(key);
    if (type !== 'hash') return undefined;
    const fields = await client.hgetall(key);
    return Object.entries(fields).reduce((n, [f, v]) => n + Buffer.byteLength(f) + Buffer.byteLength(v), 0);
  };
  switch (variant) {
    case 'valkey':
      return { memcache: undefined, valkey: await valkey(appKey(id)), datastore: undefined };
    case 'valkey-sync':
    case 'valkey-async':
      return { memcache: undefined, valkey: await valkey(appKey(id)), datastore: await entity(appKind(), 'val') };
    case 'es-redis':
      return { memcache: undefined, valkey: await valkey(`sess:${id}`), datastore: undefined };
    case 'iovalkey':
      return { memcache: undefined, valkey: await valkey(id), datastore: undefined };
    case 'memcache':
      return { memcache: await item(appKey(id)), datastore: undefined };
    case 'memcache-sync':
    case 'memcache-async':
      return { memcache: await item(appKey(id)), datastore: await entity(appKind(), 'val') };
    case 'datastore':
      return { memcache: undefined, datastore: await entity(appKind(), 'val') };
    case 'es-memcached':
    case 'memjs':
      return { memcache: await item(id), datastore: undefined };
    case 'es-datastore':
      return { memcache: undefined, datastore: await entity('express-sessions', 'data') };
    default:
      return { memcache: undefined, valkey: undefined, datastore: undefined };
  }
}

const appKey = (id: string): string => (process.env['SESSION_KEY_PREFIX'] ?? '') + id;
const appKind = (): string => process.env['DATASTORE_KIND'] || 'sess_';

/** The session ID in a cookie: the value itself, or express-session's signed `s:<id>.<signature>`. */
function sessionId(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  return value.startsWith('s:') ? value.slice(2, value.lastIndexOf('.')) : value;
}

/** Store traffic of a view that only reads the session (bench/server.ts `/bench/read`), and Valkey's of a counted one. */
export interface ReadOnlyCounts {
  views: number;
  /** memcache commands per view. */
  memcache: MemcacheCommands | undefined;
  /** Datastore RPCs per view, by method (`commit` is a write), including writes flushed at shutdown. */
  datastore: Record<string, number>;
  /** Valkey round trips per read-only view (MONITOR: commands a client sent; those a script ran apart). */
  valkey?: ValkeyTrips | undefined;
  /** The same per counted view (`GET /demo`, one after another: no contention). */
  valkeyCounted?: ValkeyTrips | undefined;
}

/**
 * Logs in, counts one view, (with Valkey: watches `views` counted views one after another,)
 * waits until the store is idle (asynchronous writes done), then sends `views` read-only views
 * one after another and stops the server, so that writes a store would defer are counted too.
 */
export async function readOnlyCounts(
  server: ServerProcess,
  ports: { memcached: number | undefined; valkey: number | undefined },
  views = 100,
): Promise<ReadOnlyCounts> {
  const cookie = await logIn(server.url, `reader-${randomBytes(3).toString('hex')}`);
  if ((await visitCount(`${server.url}/demo`, cookie)) !== 1) throw new Error(`${server.variant.name}: login failed`);
  const valkeyPort = server.variant.needs.valkey ? ports.valkey : undefined;
  const valkeyCounted = valkeyPort
    ? await watchRoundTrips(valkeyPort, async () => {
        for (let i = 0; i < views; i++) await visitCount(`${server.url}/demo`, cookie);
      })
    : undefined;
  const before = await untilIdle(server);
  const memcachedPort = server.variant.needs.memcached ? ports.memcached : undefined;
  const statsBefore = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  const readViews = async (): Promise<void> => {
    for (let i = 0; i < views; i++) {
      const response = await fetch(`${server.url}/bench/read`, { headers: { cookie } });
      const text = await response.text();
      if (!text.startsWith('session')) throw new Error(`${server.variant.name}: read-only view lost the session`);
    }
  };
  const valkeyRead = valkeyPort ? await watchRoundTrips(valkeyPort, readViews) : (await readViews(), undefined);
  const statsAfter = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  const after = await server.stop();
  if (!after) throw new Error(`${server.variant.name}: no final stats`);
  const commands = statsBefore && statsAfter ? memcacheCommands(statsBefore, statsAfter) : undefined;
  return {
    views,
    memcache: commands && (perEach(commands, views) as unknown as MemcacheCommands),
    datastore: perEach(subtract(after.datastore, before.datastore), views),
    valkey: valkeyRead && tripsPerView(valkeyRead, views),
    valkeyCounted: valkeyCounted && tripsPerView(valkeyCounted, views),
  };
}

function tripsPerView(trips: ValkeyTrips, views: number): ValkeyTrips {
  return {
    roundTrips: trips.roundTrips / views,
    byCommand: perEach(trips.byCommand, views),
    inScripts: perEach(trips.inScripts, views),
  };
}

/** Waits until the server made no Datastore call for 2.5 s (at most 20 s); returns its stats then. */
async function untilIdle(server: ServerProcess) {
  let last = await server.stats();
  let quietSince = Date.now();
  const giveUp = Date.now() + 20_000;
  while (Date.now() - quietSince < 2_500 && Date.now() < giveUp) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await server.stats();
    if (JSON.stringify(now.datastore) !== JSON.stringify(last.datastore)) quietSince = Date.now();
    last = now;
  }
  return last;
}

function perEach<T extends object>(counts: T, views: number): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([key, value]) => [key, (value as number) / views]));
}
