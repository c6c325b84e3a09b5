/**
 * What an anonymous client that sends a fresh, well-formed random session ID with every
 * request costs, next to one that sends no cookie or a malformed one (see
 * docs/random-id-flood.md). For each store: the compiled server (`npm run build`) pinned to
 * core 0, autocannon in this process (run it pinned to core 1), req/s, latency, the server's
 * CPU time per request, and what the flood left behind in the stores.
 *
 *   npm run build && taskset -c 1 node --import tsx bench/random-id-flood.ts [seconds]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import net from 'node:net';
import {
  freePort,
  startDatastoreEmulator,
  startMemcached,
  type DatastoreEmulator,
  type Memcached,
} from '../test/support/services.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.argv[2] ?? 10);
const CONNECTIONS = 10;
const PROJECT = 'flood-bench';
const CLOCK_TICKS = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s

type Visitor = 'no cookie' | 'malformed cookie' | 'random well-formed ID' | 'logged in (100 sessions)';
const VISITORS: Visitor[] = ['no cookie', 'malformed cookie', 'random well-formed ID', 'logged in (100 sessions)'];
const SESSIONS = 100;

function cookieFor(visitor: Visitor, sessions: string[]): () => string | undefined {
  switch (visitor) {
    case 'no cookie':
      return () => undefined;
    case 'malformed cookie':
      return () => 'sessid=' + randomBytes(15).toString('base64url') + '!!!!';
    case 'random well-formed ID':
      return () => 'sessid=' + randomBytes(18).toString('base64url');
    case 'logged in (100 sessions)':
      // Each view adds 1 to the count: a read and a write of the session.
      return () => sessions[Math.floor(Math.random() * sessions.length)];
  }
}

interface Row {
  store: string;
  visitor: Visitor;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  cpuMicrosPerRequest: number;
  /** Share of one core the server used. */
  cpuShare: number;
  non2xx: number;
  memcachePerRequest: number;
  /** Datastore RPCs per request, by method. */
  datastorePerRequest: Record<string, number>;
}

/** memcached's `stats` counters. */
function memcachedStats(port: number | undefined): Promise<Record<string, number>> {
  if (port === undefined) return Promise.resolve({});
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('stats\r\n'));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (!reply.endsWith('END\r\n')) return;
      socket.destroy();
      const stats: Record<string, number> = {};
      for (const [, name, value] of reply.matchAll(/^STAT (\w+) (\d+)\r$/gm)) stats[name ?? ''] = Number(value);
      resolve(stats);
    });
    socket.once('error', reject);
  });
}

/** memcached commands that are one round trip each (get, gat, set/cas, touch, delete). */
function memcacheCommands(stats: Record<string, number>): number {
  const get = (name: string): number => stats[name] ?? 0;
  return get('cmd_get') + get('cmd_set') + get('cmd_touch') + get('delete_hits') + get('delete_misses');
}

function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) ".
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

interface Server {
  child: ChildProcess;
  port: number;
  /** Datastore RPCs so far, by method. */
  datastoreCalls(): Promise<Record<string, number>>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const args = ['-c', '0', process.execPath, '--import', './bench/flood-counter.mjs'];
  const child = spawn('taskset', [...args, 'dist/app/server.js'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      METADATA_SERVER_DETECTION: 'none',
      PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const waiting: ((calls: Record<string, number>) => void)[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
    for (let end = stderr.indexOf('\n'); end >= 0; end = stderr.indexOf('\n')) {
      const line = stderr.slice(0, end);
      stderr = stderr.slice(end + 1);
      if (line.startsWith('datastore-calls ')) waiting.shift()?.(JSON.parse(line.slice(16)) as Record<string, number>);
      else process.stderr.write(line + '\n');
    }
  });
  const server: Server = {
    child,
    port,
    datastoreCalls: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.kill('SIGUSR2');
      }),
  };
  for (const until = Date.now() + 20_000; ;) {
    try {
      await (await fetch(`http://127.0.0.1:${port}/demo`)).text();
      return server;
    } catch {
      if (Date.now() > until || child.exitCode !== null) throw new Error('server did not start');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function logIn(port: number, name: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/demo/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: name, password: 'a' }).toString(),
  });
  await response.text();
  const cookie = response.headers.getSetCookie()[0]?.split(';')[0];
  if (response.status !== 303 || !cookie) throw new Error(`login answered ${response.status}`);
  return cookie;
}

async function load(port: number, cookie: () => string | undefined, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        path: '/demo',
        setupRequest: (request) => {
          const value = cookie();
          return value ? { ...request, headers: { ...request.headers, cookie: value } } : request;
        },
      },
    ],
  });
}

async function measureStore(store: string, env: Record<string, string>, memcachedPort?: number): Promise<Row[]> {
  const server = await startServer(env);
  const { child, port } = server;
  // taskset execs node: the PID is the server's.
  const pid = child.pid ?? 0;
  const rows: Row[] = [];
  try {
    const sessions: string[] = [];
    for (let i = 0; i < SESSIONS; i++) sessions.push(await logIn(port, `user${i}`));
    for (const visitor of VISITORS) {
      const cookie = cookieFor(visitor, sessions);
      await load(port, cookie, 2); // warm-up
      const before = { cpu: cpuMicros(pid), memcache: await memcachedStats(memcachedPort) };
      const datastoreBefore = await server.datastoreCalls();
      const started = process.hrtime.bigint();
      const result = await load(port, cookie, SECONDS);
      const elapsedMicros = Number(process.hrtime.bigint() - started) / 1000;
      const cpu = cpuMicros(pid) - before.cpu;
      const memcache = memcacheCommands(await memcachedStats(memcachedPort)) - memcacheCommands(before.memcache);
      const datastoreAfter = await server.datastoreCalls();
      const datastorePerRequest: Record<string, number> = {};
      for (const [method, count] of Object.entries(datastoreAfter)) {
        const delta = count - (datastoreBefore[method] ?? 0);
        if (delta > 0) datastorePerRequest[method] = delta / result.requests.total;
      }
      rows.push({
        store,
        visitor,
        requestsPerSecond: result.requests.average,
        p50: result.latency.p50,
        p99: result.latency.p99,
        cpuMicrosPerRequest: cpu / result.requests.total,
        cpuShare: cpu / elapsedMicros,
        non2xx: result.non2xx,
        memcachePerRequest: memcache / result.requests.total,
        datastorePerRequest,
      });
      process.stderr.write(`${store} / ${visitor}: ${Math.round(result.requests.average)} req/s\n`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  return rows;
}

const services: { emulator?: DatastoreEmulator; memcached?: Memcached } = {};
try {
  services.emulator = await startDatastoreEmulator();
  services.memcached = await startMemcached();
  const datastoreEnv = { DATASTORE_EMULATOR_HOST: services.emulator.address, DATASTORE_PROJECT_ID: PROJECT };
  const rows = [
    ...(await measureStore('memory', { SESSION_STORE: 'memory' })),
    ...(await measureStore('datastore', { SESSION_STORE: 'datastore', ...datastoreEnv })),
    ...(await measureStore(
      'memcache + datastore sync',
      {
        SESSION_STORE: 'memcache',
        SESSION_DATASTORE: 'sync',
        MEMCACHE_SERVERS: services.memcached.address,
        ...datastoreEnv,
      },
      services.memcached.port,
    )),
  ];
  const entities = await (
    await fetch(`http://${services.emulator.address}/v1/projects/${PROJECT}:runQuery`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: { kind: [{ name: 'sess_' }], projection: [{ property: { name: '__key__' } }] } }),
    })
  ).json();

  console.log(`${SECONDS} s per run, ${CONNECTIONS} connections, GET /demo, ${new Date().toISOString()}\n`);
  console.log(
    '| store | visitor | req/s | p50 ms | p99 ms | server CPU µs/req | server CPU (cores) | memcache ops/req | Datastore RPCs/req | non-2xx |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  for (const row of rows) {
    const datastore = Object.entries(row.datastorePerRequest)
      .map(([method, perRequest]) => `${method} ${perRequest.toFixed(2)}`)
      .join(', ');
    console.log(
      `| ${row.store} | ${row.visitor} | ${Math.round(row.requestsPerSecond)} | ${row.p50} | ${row.p99} | ` +
        `${Math.round(row.cpuMicrosPerRequest)} | ${row.cpuShare.toFixed(2)} | ${row.memcachePerRequest.toFixed(2)} | ` +
        `${datastore || '0'} | ${row.non2xx} |`,
    );
  }
  const stored = (entities as { batch?: { entityResults?: unknown[] } }).batch?.entityResults?.length ?? 0;
  console.log(
    `\nDatastore sess_ entities afterwards: ${stored} (the ${SESSIONS * 2} logins of the two Datastore runs)`,
  );
} finally {
  await services.emulator?.stop();
  await services.memcached?.stop();
}
process.exit(0);
