import { spawn } from 'node:child_process';
import path from 'node:path';
import type { LoadOptions, LoadResult } from './load.js';
import { memcacheCommands, memcachedStats, type MemcacheCommands } from './memcached-stats.js';
import { pinTo, ROOT, type ServerProcess } from './server-process.js';

export type Scenario = 'returning' | 'new';

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
  /** Datastore RPCs the server made during the run, by method. */
  datastore: Record<string, number>;
}

export interface RunTarget {
  server: ServerProcess;
  scenario: Scenario;
  round: number;
  cookies: string[];
  connections: number;
  seconds: number;
  memcachedPort: number | undefined;
}

export async function measure(target: RunTarget): Promise<RunResult> {
  const { server, memcachedPort } = target;
  const statsBefore = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  const before = await server.stats();
  const load = await runLoad({
    url: `${server.url}/demo`,
    connections: target.connections,
    durationSeconds: target.seconds,
    cookies: target.scenario === 'returning' ? target.cookies : [],
  });
  const after = await server.stats();
  const statsAfter = memcachedPort ? await memcachedStats(memcachedPort) : undefined;
  return {
    variant: server.variant.name,
    scenario: target.scenario,
    round: target.round,
    load,
    cpuMicros: after.cpuMicros - before.cpuMicros,
    memcache: statsBefore && statsAfter ? memcacheCommands(statsBefore, statsAfter) : undefined,
    datastore: subtract(after.datastore, before.datastore),
  };
}

/** Runs bench/load.ts in its own process, on core 1 (the server has core 0). */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const command = [
    ...pinTo(1),
    process.execPath,
    '--import',
    'tsx',
    path.join(ROOT, 'bench/load.ts'),
    JSON.stringify(options),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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
