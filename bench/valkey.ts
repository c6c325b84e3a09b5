/**
 * The benchmark's own Valkey: `valkey-server` if one is on the PATH, else Debian's
 * `redis-server` (the same protocol), on a free loopback port, no persistence; started and
 * stopped by bench/run.ts the way it starts memcached. Also what the server counts:
 * `INFO commandstats` (as bench/memcached-stats.ts reads memcached's `stats`) and, for the
 * sequential counts, MONITOR, which tells a client's round trips from the commands a script
 * runs inside the server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { canConnect, freePort } from '../test/support/services.js';

/** Why no Valkey can run here, or undefined when one can. */
export function valkeyMissing(): string | undefined {
  return valkeyBinary()
    ? undefined
    : 'neither valkey-server nor redis-server is installed (Debian: apt-get install -y redis-server)';
}

function valkeyBinary(): string | undefined {
  for (const name of ['valkey-server', 'redis-server']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0) return found.stdout.trim();
  }
  return undefined;
}

export class ValkeyServer {
  #child: ChildProcess | undefined;
  #dir: string | undefined;
  readonly #killAtExit = (): void => this.#kill();
  private constructor(
    readonly port: number,
    readonly binary: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `redis-server 7.0.15` or `valkey-server 8.0.1`, for the report. */
  get version(): string {
    const text = spawnSync(this.binary, ['--version'], { encoding: 'utf8' }).stdout;
    const version = /v=(\S+)/.exec(text)?.[1] ?? '?';
    return `${path.basename(this.binary)} ${version}`;
  }

  static async start(): Promise<ValkeyServer> {
    const binary = valkeyBinary();
    if (!binary) throw new Error(valkeyMissing());
    const server = new ValkeyServer(await freePort(), binary);
    server.#dir = mkdtempSync(path.join(os.tmpdir(), 'gaesession-bench-valkey-'));
    // No configuration file: Debian's /etc/redis/redis.conf is for the system's own server.
    const args = ['--port', String(server.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--dir', server.#dir, '--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru');
    const child = spawn(binary, args, { detached: true, stdio: 'ignore' });
    child.unref();
    server.#child = child;
    process.once('exit', server.#killAtExit);
    const until = Date.now() + 15_000;
    while (!(await canConnect(server.port))) {
      if (child.exitCode !== null) throw new Error(`${binary} exited with code ${child.exitCode}`);
      if (Date.now() > until) throw new Error(`${binary} did not start on port ${server.port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return server;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    // Unref'd so that it never keeps the bench alive; waiting for its exit must.
    child.ref();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.#kill();
    await exited;
    process.removeListener('exit', this.#killAtExit);
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }

  #kill(): void {
    try {
      if (this.#child?.pid) process.kill(-this.#child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Calls per command since the server started (`INFO commandstats`), by lower-case name. */
export type ValkeyStats = Record<string, number>;

/** The commands the bench itself sends to read the counts; left out of every difference. */
const OURS = new Set(['info', 'monitor', 'echo', 'ping', 'hello', 'client|setinfo', 'client|setname']);

export async function valkeyStats(port: number): Promise<ValkeyStats> {
  const reply = await command(port, 'INFO commandstats');
  const stats: ValkeyStats = {};
  for (const match of reply.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] && match[2]) stats[match[1]] = Number(match[2]);
  }
  return stats;
}

/**
 * Commands the server ran between two readings, by name, and their total. Unlike memcached,
 * a Valkey command can be a script (EVALSHA, FCALL), and commandstats counts the commands a
 * script calls as well as the script itself: `total` is then more than the round trips (the
 * sequential counts, with MONITOR, have those).
 */
export interface ValkeyCommands {
  total: number;
  byCommand: Record<string, number>;
}

export function valkeyCommands(before: ValkeyStats, after: ValkeyStats): ValkeyCommands {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of Object.entries(after)) {
    const delta = calls - (before[name] ?? 0);
    if (delta <= 0 || OURS.has(name)) continue;
    byCommand[name] = delta;
    total += delta;
  }
  return { total, byCommand };
}

/** What MONITOR saw: client round trips (commands a client sent) and commands scripts ran, by name. */
export interface ValkeyTrips {
  roundTrips: number;
  byCommand: Record<string, number>;
  inScripts: Record<string, number>;
}

/**
 * Watches every command the server runs (MONITOR) while `work` runs, then tells a client's
 * commands (`[0 127.0.0.1:port]`) from those a script ran (`[0 lua]`). For the sequential
 * counts only: MONITOR costs the server too much to leave on during a load run.
 */
export async function watchRoundTrips(port: number, work: () => Promise<void>): Promise<ValkeyTrips> {
  const marker = `bench-marker-${process.pid}-${Date.now()}`;
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let buffer = '';
  const lines: string[] = [];
  let done: (() => void) | undefined;
  let started: (() => void) | undefined;
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (line === '+OK') started?.();
      else if (line.includes(marker)) done?.();
      else lines.push(line);
    }
  });
  const failed = new Promise<never>((_, reject) => socket.once('error', reject));
  await Promise.race([new Promise<void>((resolve) => ((started = resolve), socket.write('MONITOR\r\n'))), failed]);
  const finished = new Promise<void>((resolve) => (done = resolve));
  try {
    await work();
    // Everything the server ran before the marker has been written to the monitor by then.
    await command(port, `ECHO ${marker}`);
    await Promise.race([finished, failed, timeout(5_000, 'MONITOR did not show the marker')]);
  } finally {
    socket.destroy();
  }
  const trips: ValkeyTrips = { roundTrips: 0, byCommand: {}, inScripts: {} };
  for (const line of lines) {
    const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const name = match[2].toLowerCase();
    if (OURS.has(name)) continue;
    if (match[1] === 'lua') trips.inScripts[name] = (trips.inScripts[name] ?? 0) + 1;
    else {
      trips.roundTrips++;
      trips.byCommand[name] = (trips.byCommand[name] ?? 0) + 1;
    }
  }
  return trips;
}

/** Sends one inline command and resolves with its whole reply (a status, error or bulk string). */
function command(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text + '\r\n'));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const complete = reply.startsWith('$') ? bulkComplete(reply) : reply.includes('\r\n');
      if (!complete) return;
      socket.destroy();
      if (reply.startsWith('-')) reject(new Error(`${text}: ${reply.trim()}`));
      else resolve(reply);
    });
    socket.once('error', reject);
  });
}

function bulkComplete(reply: string): boolean {
  const end = reply.indexOf('\r\n');
  if (end < 0) return false;
  const length = Number(reply.slice(1, end));
  return length < 0 || Buffer.byteLength(reply) >= end + 2 + length + 2;
}

function timeout(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}
