/**
 * `npm run bench`: compares the session stores with the bare framework and the usual
 * alternatives, each server in its own process (pinned to core 0, the load generator to
 * core 1), over interleaved rounds; then counts store traffic per view and times the purge.
 * Prints a Markdown report and keeps it in bench/results/ (see docs/benchmarks.md).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Datastore } from '@google-cloud/datastore';
import memjs from 'memjs';
import {
  freePort,
  missing,
  startDatastoreEmulator,
  startMemcached,
  type DatastoreEmulator,
  type Memcached,
} from '../test/support/services.js';
import { buildServers } from './build.js';
import { readOnlyCounts, storedBytes, type Backends } from './counts.js';
import { measure, type RunResult, type Scenario } from './measure.js';
import { profileHotPath } from './profile.js';
import { purgeThroughput } from './purge.js';
import { renderReport, type Results } from './report.js';
import { pinTo, ROOT, ServerProcess } from './server-process.js';
import { readSettings, type Settings } from './settings.js';
import { VARIANTS, variantNamed, type Variant } from './variants.js';
import { logIn, visitCount } from './visitors.js';

const RESULTS = path.join(ROOT, 'bench/results');
const PROJECT = 'bench-project';

const settings = readSettings(process.argv.slice(2), process.env);
mkdirSync(path.join(RESULTS, 'logs'), { recursive: true });
const log = (message: string): void => void process.stderr.write(message + '\n');

const services: { memcached?: Memcached; emulator?: DatastoreEmulator } = {};
const servers: ServerProcess[] = [];
let clients: Backends = { memcache: undefined, datastore: undefined };
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));

try {
  log('compiling the servers (tsc -p bench/tsconfig.json)');
  buildServers();
  if (settings.profile) await profile(settings);
  else await compare(settings);
} catch (error) {
  log(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
  // The Datastore client's gRPC channel would keep the process alive.
  process.exit();
}

async function compare(settings: Settings): Promise<void> {
  const started = Date.now();
  const skipped: string[] = [];
  const wanted = settings.only.length > 0 ? settings.only.map(variantNamed) : [...VARIANTS];
  const env = await startServices(wanted, skipped);
  const variants = wanted.filter(
    (v) => (!v.needs.memcached || services.memcached) && (!v.needs.datastore || services.emulator),
  );
  log(`variants: ${variants.map((v) => v.name).join(', ')}`);

  const cookies = new Map<string, string[]>();
  const bytes: Results['bytes'] = {};
  for (const variant of variants) {
    const server = await startServer(variant, env);
    servers.push(server);
    const mine: string[] = [];
    for (let i = 0; i < settings.sessions; i++) mine.push(await logIn(server.url, `visitor-${i}`));
    for (const cookie of mine) {
      if ((await visitCount(`${server.url}/demo`, cookie)) === undefined)
        throw new Error(`${variant.name}: not logged in`);
    }
    if ((await visitCount(`${server.url}/demo`)) !== undefined) throw new Error(`${variant.name}: anonymous page`);
    cookies.set(variant.name, mine);
    bytes[variant.name] = await storedBytes(variant.name, mine[0] as string, clients);
  }

  const memcachedPort = services.memcached?.port;
  const run = (server: ServerProcess, scenario: Scenario, round: number, seconds: number): Promise<RunResult> =>
    measure({
      server,
      scenario,
      round,
      seconds,
      cookies: cookies.get(server.variant.name) ?? [],
      connections: settings.connections,
      memcachedPort,
    });
  log(`warm-up: ${settings.warmupSeconds} s per variant and visitor`);
  for (const server of servers)
    for (const scenario of ['returning', 'new'] as const) await run(server, scenario, 0, settings.warmupSeconds);

  const runs: RunResult[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    // Each round starts one variant later, so a slow spell of the machine hits different ones.
    const order = servers.map((_, i) => servers[(i + round - 1) % servers.length] as ServerProcess);
    for (const server of order) {
      for (const scenario of ['returning', 'new'] as const) {
        const result = await run(server, scenario, round, settings.seconds);
        runs.push(result);
        log(
          `round ${round}/${settings.rounds} ${server.variant.name.padEnd(14)} ${scenario.padEnd(9)} ` +
            `${result.load.requestsPerSecond.toFixed(0).padStart(6)} req/s ` +
            `${(result.cpuMicros / Math.max(1, result.load.requests)).toFixed(0).padStart(5)} µs CPU/req` +
            (result.load.failures > 0 ? `  ${result.load.failures} FAILED` : ''),
        );
      }
    }
  }
  for (const server of servers) {
    const cookie = cookies.get(server.variant.name)?.[0];
    if ((await visitCount(`${server.url}/demo`, cookie)) === undefined) {
      throw new Error(`${server.variant.name}: the returning visitor was logged out during the run`);
    }
  }
  await Promise.all(servers.splice(0).map((server) => server.stop()));

  log('store traffic of read-only views');
  const readOnly: Results['readOnly'] = {};
  for (const variant of variants.filter((v) => v.kind === 'app' && (v.needs.memcached || v.needs.datastore))) {
    const server = await startServer(variant, { ...env, BENCH_READ_ROUTE: '1' });
    servers.push(server);
    readOnly[variant.name] = await readOnlyCounts(server, memcachedPort);
    servers.splice(servers.indexOf(server), 1);
  }

  let purge: Results['purge'];
  if (services.emulator && clients.datastore) {
    log(`purge: inserting ${settings.purgeEntities} expired sessions`);
    const server = await startServer(variantNamed('datastore'), env);
    servers.push(server);
    purge = await purgeThroughput(server, clients.datastore, settings.purgeEntities);
  } else skipped.push('purge (no Datastore emulator)');

  const results: Results = {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { ...settings, minutes: Number(((Date.now() - started) / 60_000).toFixed(1)) },
    runs,
    bytes,
    readOnly,
    purge,
    skipped,
  };
  const report = header(results) + renderReport(results);
  writeFileSync(path.join(RESULTS, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(path.join(RESULTS, 'latest.md'), report);
  process.stdout.write('\n' + report);
  log(`\nkept in bench/results/latest.md and latest.json; server logs in bench/results/logs/`);
}

async function profile(settings: Settings): Promise<void> {
  const names = settings.only.length > 0 ? settings.only : ['bare', 'memory', 'memcache'];
  const variants = names.map(variantNamed);
  const env = await startServices(variants, []);
  const report = await profileHotPath(variants, {
    env,
    seconds: Math.max(settings.seconds * 2, 8),
    connections: settings.connections,
    sessions: settings.sessions,
    directory: path.join(RESULTS, 'profiles'),
    logFile: (name) => path.join(RESULTS, 'logs', `${name}-profile.log`),
  });
  writeFileSync(path.join(RESULTS, 'profile.md'), report);
  process.stdout.write('\n' + report);
  log('\nkept in bench/results/profile.md; .cpuprofile files in bench/results/profiles/ (open in Chrome DevTools)');
}

/** Starts the memcached and emulator the variants need (as the tests do); returns the servers' environment. */
async function startServices(variants: Variant[], skipped: string[]): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    // As on App Engine: Express caches compiled views only in production.
    NODE_ENV: 'production',
    // The app logs one line per request at info; the references log nothing. Measure neither.
    LOG_LEVEL: 'warn',
  };
  if (variants.some((v) => v.needs.memcached)) {
    const reason = missing('memcached');
    if (reason) skipped.push(`memcache variants (${reason})`);
    else {
      services.memcached = await startMemcached();
      env['MEMCACHE_SERVERS'] = services.memcached.address;
      clients.memcache = memjs.Client.create(services.memcached.address, { retries: 0, timeout: 2 });
    }
  }
  if (variants.some((v) => v.needs.datastore)) {
    const reason = missing('datastore-emulator');
    if (reason) skipped.push(`Datastore variants (${reason})`);
    else {
      log('starting the Datastore emulator');
      services.emulator = await startDatastoreEmulator();
      Object.assign(env, {
        DATASTORE_EMULATOR_HOST: services.emulator.address,
        DATASTORE_PROJECT_ID: PROJECT,
        GOOGLE_CLOUD_PROJECT: PROJECT,
      });
      // The Google client finds the emulator through the environment, as the app's does.
      process.env['DATASTORE_EMULATOR_HOST'] = services.emulator.address;
      clients.datastore = new Datastore({ projectId: PROJECT });
    }
  }
  return env;
}

async function startServer(variant: Variant, env: Record<string, string>): Promise<ServerProcess> {
  const logFile = path.join(RESULTS, 'logs', `${variant.name}.log`);
  rmSync(logFile, { force: true });
  return new ServerProcess(variant, { ...env, PORT: String(await freePort()) }, { logFile }).ready();
}

async function cleanUp(): Promise<void> {
  await Promise.all(servers.splice(0).map((server) => server.stop().catch(() => undefined)));
  clients.memcache?.close();
  clients = { memcache: undefined, datastore: undefined };
  await services.memcached?.stop();
  await services.emulator?.stop();
  delete services.memcached;
  delete services.emulator;
}

function machine(): Results['machine'] {
  return {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    taskset: pinTo(0).length > 0,
  };
}

function header(results: Results): string {
  const m = results.machine;
  const s = settings;
  return (
    `## Run of ${results.date.slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `Machine: ${m.cpus} CPUs (${m.model}), Node.js ${m.node}; ` +
    (m.taskset ? 'servers pinned to core 0, load generator to core 1 (taskset). ' : 'no taskset: nothing pinned. ') +
    `${s.rounds} rounds × ${s.seconds} s per variant and visitor, ${s.connections} connections, ` +
    `${s.sessions} returning-visitor sessions; NODE_ENV=production, LOG_LEVEL=warn. ` +
    `Took ${String(results.settings['minutes'])} min.\n\n`
  );
}
