import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParentMessage, ServerMessage } from './server.js';
import type { Variant } from './variants.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..');

/** `taskset -c <cpu>` where taskset exists and the machine has a second core; else nothing. */
export function pinTo(cpu: number): string[] {
  return pinning() === 'pinned' ? ['taskset', '-c', String(cpu)] : [];
}

let pinned: 'pinned' | 'no taskset' | 'one core' | undefined;

/** Whether processes can be pinned to a core here, and if not, why. */
export function pinning(): 'pinned' | 'no taskset' | 'one core' {
  if (pinned) return pinned;
  const cores = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) || 1;
  if (cores < 2) pinned = 'one core';
  else pinned = spawnSync('sh', ['-c', 'command -v taskset']).status === 0 ? 'pinned' : 'no taskset';
  return pinned;
}

export interface CpuAndCalls {
  /** User + system CPU time of the server process, microseconds. */
  cpuMicros: number;
  datastore: Record<string, number>;
  /** The server's monotonic clock (what V8's CPU profiles count in), microseconds. */
  clockMicros: number;
}

/** A benchmark server (bench/server.ts, compiled by `buildServers`) running one variant, pinned to core 0. */
export class ServerProcess {
  readonly #child: ChildProcess;
  readonly #ready: Promise<number>;
  #waiting: ((message: ServerMessage) => void)[] = [];
  port = 0;

  constructor(
    readonly variant: Variant,
    env: Record<string, string>,
    options: { logFile: string; nodeArgs?: string[] },
  ) {
    const log = openSync(options.logFile, 'a');
    const command = [
      ...pinTo(0),
      process.execPath,
      ...(options.nodeArgs ?? []),
      path.join(ROOT, 'bench/results/build/bench/server.js'),
      variant.name,
    ];
    this.#child = spawn(command[0] as string, command.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env, ...variant.env },
      stdio: ['ignore', log, log, 'ipc'],
    });
    this.#child.on('message', (message: ServerMessage) => this.#waiting.shift()?.(message));
    this.#ready = new Promise((resolve, reject) => {
      this.#waiting.push((message) =>
        message.type === 'ready' ? resolve(message.port) : reject(new Error('bad hello')),
      );
      this.#child.once('exit', (code) =>
        reject(new Error(`${variant.name} server exited with code ${code}; see ${options.logFile}`)),
      );
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async ready(): Promise<this> {
    this.port = await this.#ready;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The server's CPU time so far and its Datastore calls. */
  stats(): Promise<CpuAndCalls> {
    return this.#ask({ type: 'stats' });
  }

  /** Stops the server cleanly (pending writes flushed); resolves with its final stats. */
  async stop(): Promise<CpuAndCalls | undefined> {
    if (this.#child.exitCode !== null) return undefined;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    const final = this.#ask({ type: 'stop' });
    const timeout = setTimeout(() => this.#child.kill('SIGKILL'), 20_000);
    const [stats] = await Promise.all([final.catch(() => undefined), exited]);
    clearTimeout(timeout);
    return stats;
  }

  #ask(message: ParentMessage): Promise<CpuAndCalls> {
    return new Promise((resolve, reject) => {
      this.#waiting.push((reply) => {
        if (reply.type !== 'stats') return reject(new Error(`unexpected ${reply.type}`));
        resolve({
          cpuMicros: reply.cpu.user + reply.cpu.system,
          datastore: reply.datastore,
          clockMicros: reply.clockMicros,
        });
      });
      this.#child.send(message);
    });
  }
}
