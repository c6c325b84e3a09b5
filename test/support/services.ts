/**
 * The real servers the integration tests run against: memcached and the Cloud Datastore
 * emulator, started on free loopback ports by the process that needs them and stopped by it.
 *
 * `npm test` (scripts/test.mjs) starts one of each for the whole run and passes their
 * addresses in TEST_MEMCACHED and TEST_DATASTORE_EMULATOR; a test file run on its own starts
 * its own. Where a binary is missing, `missing()` says what to install, and the tests skip —
 * except under CI=true, where a missing service is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export type ServiceName = 'memcached' | 'datastore-emulator';

const INSTALL_HINT: Record<ServiceName, string> = {
  memcached: 'memcached is not installed (Debian: apt-get install -y memcached)',
  'datastore-emulator':
    'the Cloud Datastore emulator is not installed (it comes with the Google Cloud SDK: gcloud components install cloud-datastore-emulator, and needs Java)',
};

/** Why the named services cannot run here, or undefined when they all can. */
export function missing(...names: ServiceName[]): string | undefined {
  const reasons = names.filter((name) => !installed(name)).map((name) => INSTALL_HINT[name]);
  if (reasons.length === 0) return undefined;
  const message = reasons.join('; ');
  if (process.env['CI'] === 'true') throw new Error(`CI=true but ${message}`);
  return `skipped: ${message}`;
}

function installed(name: ServiceName): boolean {
  return name === 'memcached' ? which('memcached') !== undefined : emulatorBinary() !== undefined;
}

function which(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** The emulator launcher inside the Google Cloud SDK that `gcloud` on PATH belongs to. */
function emulatorBinary(): string | undefined {
  const roots = [process.env['CLOUDSDK_ROOT_DIR'], '/usr/lib/google-cloud-sdk'];
  const gcloud = which('gcloud');
  if (gcloud) roots.unshift(path.resolve(path.dirname(realpathSync(gcloud)), '..'));
  for (const root of roots) {
    if (!root) continue;
    const binary = path.join(root, 'platform/cloud-datastore-emulator/cloud_datastore_emulator');
    if (existsSync(binary) && which('java')) return binary;
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A server process this test run started. */
abstract class Service {
  #process: ChildProcess | undefined;
  #workDir: string | undefined;
  constructor(readonly port: number) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The server's process ID while it runs (to pause it with SIGSTOP in a test). */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  protected abstract command(): [string, string[]];
  protected abstract ready(): Promise<boolean>;

  async start(timeoutMs = 30_000): Promise<this> {
    const [command, args] = this.command();
    // Its own process group, so stop() ends the launcher and the server it forks alike; its
    // own working directory, because the emulator leaves a WEB-INF/ folder in it.
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'gaesession-service-'));
    this.#workDir = cwd;
    const child = spawn(command, args, { detached: true, stdio: 'ignore', cwd });
    this.#process = child;
    killAtExit(child);
    child.unref();
    const until = Date.now() + timeoutMs;
    while (!(await this.ready())) {
      if (child.exitCode !== null) throw new Error(`${command} exited with code ${child.exitCode}`);
      if (Date.now() > until) throw new Error(`${command} did not become ready on ${this.address}`);
      await sleep(100);
    }
    return this;
  }

  /** Stops the server and waits until its port is closed. */
  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child?.pid || child.exitCode !== null) return;
    // The child was unref'd so that it never keeps a test process alive; waiting for its exit
    // must, or node may end the test with the promise still pending.
    child.ref();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      return;
    }
    await exited;
    if (this.#workDir) rmSync(this.#workDir, { recursive: true, force: true });
    while (await canConnect(this.port)) await sleep(20);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

export class Memcached extends Service {
  protected command(): [string, string[]] {
    // -I 1m: memcached's default item limit, stated so the 1 MB check is tested against it.
    // memcached refuses to run as root unless told which user to be.
    const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
    return ['memcached', [...user, '-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-m', '64', '-I', '1m']];
  }
  protected ready(): Promise<boolean> {
    return canConnect(this.port);
  }
  /** Empties the cache (memcached `flush_all`). */
  async flush(): Promise<void> {
    await memcachedCommand(this.port, 'flush_all');
  }
}

export class DatastoreEmulator extends Service {
  protected command(): [string, string[]] {
    const binary = emulatorBinary();
    if (!binary) throw new Error(INSTALL_HINT['datastore-emulator']);
    return [binary, ['start', '--host=127.0.0.1', `--port=${this.port}`, '--store_on_disk=false', '--consistency=1.0']];
  }
  protected async ready(): Promise<boolean> {
    try {
      const response = await fetch(`http://${this.address}/`);
      return (await response.text()).trim() === 'Ok';
    } catch {
      return false;
    }
  }
  /** Deletes every entity. */
  async reset(): Promise<void> {
    const response = await fetch(`http://${this.address}/reset`, { method: 'POST' });
    if (!response.ok) throw new Error(`emulator reset answered ${response.status}`);
  }
}

/** A memcached of its own for this caller (for tests that stop or restart it). */
export async function startMemcached(): Promise<Memcached> {
  return new Memcached(await freePort()).start();
}

export async function startDatastoreEmulator(): Promise<DatastoreEmulator> {
  return new DatastoreEmulator(await freePort()).start(60_000);
}

/**
 * The run's shared memcached: the one scripts/test.mjs started, or one started for this test
 * process (and stopped when it exits).
 */
export async function sharedMemcached(): Promise<Memcached> {
  const given = process.env['TEST_MEMCACHED'];
  if (given) return new Memcached(Number(given.split(':')[1]));
  sharedMemcachedInstance ??= startMemcached();
  return sharedMemcachedInstance;
}
let sharedMemcachedInstance: Promise<Memcached> | undefined;

/** The run's shared Datastore emulator (see `sharedMemcached`). */
export async function sharedDatastoreEmulator(): Promise<DatastoreEmulator> {
  const given = process.env['TEST_DATASTORE_EMULATOR'];
  if (given) return new DatastoreEmulator(Number(given.split(':')[1]));
  sharedEmulatorInstance ??= startDatastoreEmulator();
  return sharedEmulatorInstance;
}
let sharedEmulatorInstance: Promise<DatastoreEmulator> | undefined;

/**
 * The servers started by this process and not yet stopped. They run in process groups of
 * their own (so that stop() ends the launcher and the JVM alike), which also means nothing
 * ends them when this process ends: these handlers do, at exit and on Ctrl-C or SIGTERM.
 */
const running = new Set<ChildProcess>();
let killersInstalled = false;

function killAtExit(child: ChildProcess): void {
  if (!killersInstalled) {
    killersInstalled = true;
    process.once('exit', killAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        killAll();
        process.exit(130);
      });
    }
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function killAll(): void {
  for (const child of running) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * A server that accepts TCP connections and never answers: a hung memcached or Datastore, the
 * failure a stopped server cannot show (a client waits instead of being refused).
 */
export async function startHangingServer(): Promise<{ address: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends one text-protocol command to memcached and resolves with its first reply line. */
export function memcachedCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(command + '\r\n'));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.split('\r\n')[0] ?? '');
      }
    });
    socket.once('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
