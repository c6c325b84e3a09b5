import { spawn } from 'node:child_process';
import path from 'node:path';
import { BUILD } from './build.js';
import type { LoadOptions, LoadResult } from './load.js';
import { memcacheCommands, memcachedStats, type MemcacheCommands } from './memcached-stats.js';
import { pinTo, type ServerProcess } from './server-process.js';
import type { Scenario } from './settings.js';
import { valkeyCommands, valkeyStats, type ValkeyCommands } from './valkey.js';
import { visitCount } from './visitors.js';

export type { Scenario } from './settings.js';

/** One load run of one variant: what the load generator saw and what the server spent. */
export interface RunResult {
  variant: string;
  scenario: Scenario;
  round: number;
  load: LoadResult;
  /** Server CPU time (user + system) during the run, microseconds. */
  cpuMicros: number;
  /** Commands the shared memcached served during the run (only this variant was loaded). */
  memcache: MemcacheCommands | undefined;
  /** Commands the shared Valkey ran during the run (INFO commandstats). */
  valkey: ValkeyCommands | undefined;
  /** Datastore RPCs the server made during the run, by method. */
  datastore: Record<string, number>;
  /** `contention` only: the shared session's count before and after, and what that says. */
  contention?: Contention;
}

export interface Contention {
  /** The count the page showed just before the run. */
  before: number;
  /** The count one more view showed after the run (that view counted too). */
  after: number;
  /**
   * before + the run's 2xx views + 1 − after: views answered 2xx that the final count does not
   * hold (lost updates) when positive; when negative, views counted though not answered 2xx
   * (answered with an error after all, or cut off in flight).
   */
  deficit: number;
  /** 2xx pages that showed a count another page had shown: each an update lost. */
  repeatedCounts: number;
}

export interface RunTarget {
  server: ServerProcess;
  scenario: Scenario;
  round: number;
  /** The sessions the requests carry in turn (none for `new`; one for `contention`). */
  cookies: string[];
  connections: number;
  seconds: number;
  /** Exactly this many requests (`contention`), stopped after `seconds` all the same. */
  amount?: number;
  memcachedPort: number | undefined;
  valkeyPort: number | undefined;
}

export async function measure(target: RunTarget): Promise<RunResult> {
  const { server, memcachedPort, valkeyPort } = target;
  const cookie = target.cookies[0];
  const contended = target.scenario === 'contention' && cookie !== undefined;
  const countBefore = contended ? await visitCount(`${server.url}/demo`, cookie) : undefined;
  if (contended && countBefore === undefined) throw new Error(`${server.variant.name}: the shared session is gone`);
  const memcacheBefore = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  const valkeyBefore = valkeyPort ? await valkeyStats(valkeyPort) : undefined;
  const before = await server.stats();
  const load = await runLoad({
    url: `${server.url}/demo`,
    connections: target.connections,
    durationSeconds: target.seconds,
    cookies: target.cookies,
    ...(target.amount ? { amount: target.amount } : {}),
    ...(contended ? { readCounts: true } : {}),
  });
  const after = await server.stats();
  const memcacheAfter = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  const valkeyAfter = valkeyPort ? await valkeyStats(valkeyPort) : undefined;
  let contention: Contention | undefined;
  if (contended && countBefore !== undefined) {
    const countAfter = await visitCount(`${server.url}/demo`, cookie);
    if (countAfter === undefined) throw new Error(`${server.variant.name}: the shared session was lost in the run`);
    contention = {
      before: countBefore,
      after: countAfter,
      deficit: countBefore + load.ok + 1 - countAfter,
      repeatedCounts: load.repeatedCounts ?? 0,
    };
  }
  return {
    variant: server.variant.name,
    scenario: target.scenario,
    round: target.round,
    load,
    cpuMicros: after.cpuMicros - before.cpuMicros,
    memcache: memcacheBefore && memcacheAfter ? memcacheCommands(memcacheBefore, memcacheAfter) : undefined,
    valkey: valkeyBefore && valkeyAfter ? valkeyCommands(valkeyBefore, valkeyAfter) : undefined,
    datastore: subtract(after.datastore, before.datastore),
    ...(contention ? { contention } : {}),
  };
}

/**
 * Runs the load generator in its own process, on core 1 (the server has core 0): the compiled
 * bench/load.ts (see build.ts), which starts in a fraction of the time tsx takes.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const command = [...pinTo(1), process.execPath, path.join(BUILD, 'bench/load.js'), JSON.stringify(options)];
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}: ${stderr.trim()}`));
      try {
        resolve(JSON.parse(stdout) as LoadResult);
      } catch {
        reject(new Error(`load generator printed no result: ${stdout}${stderr}`));
      }
    });
  });
}

export function subtract(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const difference = value - (before[key] ?? 0);
    if (difference !== 0) delta[key] = difference;
  }
  return delta;
}
