/**
 * `npm run bench`: compares the session stores with the bare framework and the usual
 * alternatives, each server in its own process (pinned to core 0, the load generator to
 * core 1), over interleaved rounds; then counts store traffic per view and times the purge.
 * Prints a Markdown report and keeps it in bench/results/ (see docs/benchmarks.md).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Datastore } from '@google-cloud/datastore';
import { Redis } from 'iovalkey';
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
import { measure, type Contention, type RunResult, type Scenario } from './measure.js';
import { profileHotPath } from './profile.js';
import { purgeThroughput } from './purge.js';
import { renderReport, type Results } from './report.js';
import { pinning, ROOT, ServerProcess } from './server-process.js';
import { readSettings, type Settings } from './settings.js';
import { ValkeyServer, valkeyMissing } from './valkey.js';
import { VARIANTS, variantNamed, type Variant } from './variants.js';
import { logIn, visitCount } from './visitors.js';

const RESULTS = path.join(ROOT, 'bench/results');
const PROJECT = 'bench-project';

const settings = readSettings(process.argv.slice(2), process.env);
mkdirSync(path.join(RESULTS, 'logs'), { recursive: true });
const log = (message: string): void => void process.stderr.write(message + '\n');

const services: { memcached?: Memcached; emulator?: DatastoreEmulator; valkey?: ValkeyServer } = {};
const servers: ServerProcess[] = [];
let clients: Backends = { memcache: undefined, datastore: undefined, valkey: undefined };
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
    (v) =>
      (!v.needs.memcached || services.memcached) &&
      (!v.needs.datastore || services.emulator) &&
      (!v.needs.valkey || services.valkey),
  );
  log(pinningNote());
  log(`variants: ${variants.map((v) => v.name).join(', ')}; scenarios: ${settings.scenarios.join(', ')}`);

  // Every variant gets its own visitors: `returning` cycles through the first `sessions`,
  // `spread` through `spreadConnections`, and `contention` shares one more among all connections.
  const visitors = Math.max(settings.sessions, settings.spreadConnections);
  const cookies = new Map<string, { returning: string[]; spread: string[]; shared: string }>();
  const bytes: Results['bytes'] = {};
  for (const variant of variants) {
    let server: ServerProcess | undefined;
    try {
      server = await startServer(variant, env);
      const mine: string[] = [];
      // One user per session, as most are: variants share the cache servers, and the demo
      // lists a user's other sessions on every view.
      for (let i = 0; i < visitors; i++) mine.push(await logIn(server.url, `${variant.name}-visitor-${i}`));
      const shared = await logIn(server.url, `${variant.name}-shared-visitor`);
      for (const cookie of [...mine, shared]) {
        if ((await visitCount(`${server.url}/demo`, cookie)) === undefined) throw new Error('not logged in');
      }
      if ((await visitCount(`${server.url}/demo`)) !== undefined) throw new Error('anonymous page shows a count');
      cookies.set(variant.name, {
        returning: mine.slice(0, settings.sessions),
        spread: mine.slice(0, settings.spreadConnections),
        shared,
      });
      bytes[variant.name] = await storedBytes(variant.name, mine[0] as string, clients);
      servers.push(server);
    } catch (error) {
      const reason = oneLine(error);
      log(`skipping ${variant.name}: ${reason}`);
      skipped.push(`${variant.name} (${reason})`);
      await server?.stop().catch(() => undefined);
    }
  }
  if (servers.length === 0) throw new Error('no variant could be started');

  const ports = { memcached: services.memcached?.port, valkey: services.valkey?.port };
  const run = (server: ServerProcess, scenario: Scenario, round: number, seconds: number, amount?: number) => {
    const mine = cookies.get(server.variant.name);
    const connections =
      scenario === 'returning' || scenario === 'new' ? settings.connections : settings.spreadConnections;
    const sessions: Record<Scenario, string[]> = {
      returning: mine?.returning ?? [],
      new: [],
      spread: mine?.spread ?? [],
      contention: mine ? [mine.shared] : [],
    };
    return measure({
      server,
      scenario,
      round,
      seconds,
      cookies: sessions[scenario],
      connections,
      ...(amount ? { amount } : {}),
      memcachedPort: server.variant.needs.memcached ? ports.memcached : undefined,
      valkeyPort: server.variant.needs.valkey ? ports.valkey : undefined,
    });
  };
  const failed = new Set<ServerProcess>();
  const fail = (server: ServerProcess, error: unknown): void => {
    const reason = oneLine(error);
    log(`dropping ${server.variant.name} from the rest of the run: ${reason}`);
    skipped.push(`${server.variant.name}, partly (${reason})`);
    failed.add(server);
  };

  const runs: RunResult[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    // Interleaved: every variant once per round, every other round in reverse order (and each
    // pair of rounds starting one variant later), so a slow spell of the machine, or a drift,
    // falls on different variants.
    const shift = Math.floor((round - 1) / 2) % servers.length;
    const order = [...servers.slice(shift), ...servers.slice(0, shift)];
    if (round % 2 === 0) order.reverse();
    for (const server of order) {
      if (failed.has(server)) continue;
      try {
        // A warm-up right before the measured runs, unmeasured: in the first round long enough
        // for the JIT (and the new visitor's page too), later ones because a server idle for
        // minutes (while the others ran) starts with a heap V8 has shrunk back.
        const first = settings.scenarios.find((s) => s !== 'contention') ?? 'spread';
        await run(server, first, 0, round === 1 ? settings.warmupSeconds * 2 : settings.warmupSeconds);
        if (round === 1 && first !== 'new' && settings.scenarios.includes('new'))
          await run(server, 'new', 0, settings.warmupSeconds);
        let spreadRps: number | undefined;
        for (const scenario of settings.scenarios) {
          // Contention sends as many requests as spread served in the same time (an exact
          // number, so none is cut off in flight and every 2xx view must be in the count);
          // it is cut off after ten times that time all the same.
          const amount =
            scenario === 'contention'
              ? Math.max(settings.spreadConnections * 4, Math.round((spreadRps ?? 100) * settings.seconds))
              : undefined;
          const seconds = scenario === 'contention' ? Math.max(15, settings.seconds * 10) : settings.seconds;
          const result = await run(server, scenario, round, seconds, amount);
          if (scenario === 'spread') spreadRps = result.load.requestsPerSecond;
          runs.push(result);
          const c = result.contention;
          log(
            `round ${round}/${settings.rounds} ${server.variant.name.padEnd(14)} ${scenario.padEnd(10)} ` +
              `${(result.cpuMicros / Math.max(1, result.load.requests)).toFixed(0).padStart(5)} µs CPU/req ` +
              `${result.load.requestsPerSecond.toFixed(0).padStart(6)} req/s` +
              (result.load.failures > 0 ? `  ${result.load.failures} FAILED` : '') +
              (c ? `  count ${c.before} → ${c.after}: ${lostNote(c)}` : '') +
              (result.load.stoppedEarly ? '  (cut off)' : ''),
          );
        }
      } catch (error) {
        fail(server, error);
      }
    }
  }
  for (const server of servers) {
    const cookie = cookies.get(server.variant.name)?.returning[0];
    if (failed.has(server) || !settings.scenarios.includes('returning')) continue;
    if ((await visitCount(`${server.url}/demo`, cookie)) === undefined) {
      log(`${server.variant.name}: the returning visitor was logged out during the run`);
      skipped.push(`${server.variant.name}'s results (its returning visitor was logged out during the run)`);
    }
  }
  await Promise.all(servers.splice(0).map((server) => server.stop()));

  log('store traffic of views one after another');
  const readOnly: Results['readOnly'] = {};
  const stored = (v: Variant): boolean => v.needs.memcached || v.needs.datastore || v.needs.valkey;
  for (const variant of variants.filter((v) => v.kind === 'app' && stored(v) && bytes[v.name])) {
    try {
      const server = await startServer(variant, { ...env, BENCH_READ_ROUTE: '1' }, '-counts');
      servers.push(server);
      readOnly[variant.name] = await readOnlyCounts(server, ports);
      servers.splice(servers.indexOf(server), 1);
    } catch (error) {
      log(`no sequential counts for ${variant.name}: ${oneLine(error)}`);
    }
  }

  let purge: Results['purge'];
  if (services.emulator && clients.datastore) {
    log(`purge: inserting ${settings.purgeEntities} expired sessions`);
    try {
      const server = await startServer(variantNamed('datastore'), env, '-purge');
      servers.push(server);
      purge = await purgeThroughput(server, clients.datastore, settings.purgeEntities);
    } catch (error) {
      log(`purge failed: ${oneLine(error)}`);
      skipped.push(`purge (failed: ${oneLine(error)})`);
    }
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

/** Starts the memcached, Valkey and emulator the variants need (as the tests do); returns the servers' environment. */
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
  if (variants.some((v) => v.needs.valkey)) {
    const reason = valkeyMissing();
    if (reason) skipped.push(`Valkey variants (${reason})`);
    else {
      services.valkey = await ValkeyServer.start();
      log(`started ${services.valkey.version} on ${services.valkey.url}`);
      env['VALKEY_URL'] = services.valkey.url;
      clients.valkey = new Redis(services.valkey.url, { maxRetriesPerRequest: 1 });
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

async function startServer(variant: Variant, env: Record<string, string>, phase = ''): Promise<ServerProcess> {
  const logFile = path.join(RESULTS, 'logs', `${variant.name}${phase}.log`);
  rmSync(logFile, { force: true });
  try {
    return await new ServerProcess(variant, { ...env, PORT: String(await freePort()) }, { logFile }).ready();
  } catch (error) {
    // What the server said as it died: its first error line (the stack follows it).
    const said = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n') : [];
    const first = said.find((line) => /^\w*Error\b/.test(line)) ?? said.filter(Boolean).at(-1);
    const where = path.relative(ROOT, logFile);
    throw new Error(`server did not start: ${first ? first.trim() : oneLine(error)} (${where})`, { cause: error });
  }
}

async function cleanUp(): Promise<void> {
  await Promise.all(servers.splice(0).map((server) => server.stop().catch(() => undefined)));
  clients.memcache?.close();
  clients.valkey?.disconnect();
  clients = { memcache: undefined, datastore: undefined, valkey: undefined };
  await services.memcached?.stop();
  await services.valkey?.stop();
  await services.emulator?.stop();
  delete services.memcached;
  delete services.valkey;
  delete services.emulator;
}

function machine(): Results['machine'] {
  return {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    pinning: pinningNote(),
    valkey: services.valkey?.version,
  };
}

function pinningNote(): string {
  switch (pinning()) {
    case 'pinned':
      return 'servers pinned to core 0, load generator to core 1 (taskset)';
    case 'no taskset':
      return 'NOT pinned: taskset (util-linux) is not installed, so servers and load generator share the cores';
    case 'one core':
      return 'NOT pinned: one core only, servers and load generator share it';
  }
}

function lostNote(c: Contention): string {
  const lost = Math.max(c.deficit, c.repeatedCounts);
  return (
    `${lost} lost` +
    (c.deficit < 0 ? `, ${-c.deficit} counted beyond the 2xx views` : '') +
    (c.repeatedCounts > 0 ? `, ${c.repeatedCounts} counts shown twice` : '')
  );
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function header(results: Results): string {
  const m = results.machine;
  const s = results.settings;
  return (
    `## Run of ${results.date.slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `Machine: ${m.cpus} CPUs (${m.model}), Node.js ${m.node}${m.valkey ? `, ${m.valkey} as Valkey` : ''}; ` +
    `${m.pinning}. ${s.rounds} interleaved round${s.rounds === 1 ? '' : 's'} × ${s.seconds} s per variant and ` +
    `scenario (contention: as many requests as spread served), each variant warmed up right before its runs ` +
    `(${s.warmupSeconds * 2} s in the first round, ${s.warmupSeconds} s after); ` +
    `NODE_ENV=production, LOG_LEVEL=warn. Took ${s.minutes} min.\n\n`
  );
}
