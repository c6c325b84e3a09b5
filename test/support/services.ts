/**
 * The real servers the integration tests run against: memcached, Valkey (standalone and a
 * 3-node cluster) and the Cloud Datastore emulator, started on free loopback ports by the
 * process that needs them and stopped by it.
 *
 * `npm test` (scripts/test.mjs) starts one of each for the whole run and passes their
 * addresses in TEST_MEMCACHED, TEST_VALKEY, TEST_VALKEY_CLUSTER and TEST_DATASTORE_EMULATOR;
 * a test file run on its own starts its own. Where a binary is missing, `missing()` says what to install, and the tests skip —
 * except under CI=true, where a missing service is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export type ServiceName = 'memcached' | 'valkey' | 'datastore-emulator';

const INSTALL_HINT: Record<ServiceName, string> = {
  memcached: 'memcached is not installed (Debian: apt-get install -y memcached)',
  valkey:
    'neither valkey-server nor redis-server (with its CLI) is installed (Debian: apt-get install -y redis-server)',
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
  if (name === 'memcached') return which('memcached') !== undefined;
  if (name === 'valkey') return valkeyBinaries() !== undefined;
  return emulatorBinary() !== undefined;
}

/**
 * valkey-server and valkey-cli, or else Debian's redis-server and redis-cli (Debian 12 has no
 * Valkey package; Valkey forked from Redis 7.2 and speaks the same protocol).
 */
function valkeyBinaries(): { server: string; cli: string } | undefined {
  for (const name of ['valkey', 'redis']) {
    const server = which(`${name}-server`);
    const cli = which(`${name}-cli`);
    if (server && cli) return { server, cli };
  }
  return undefined;
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

/**
 * A free port for a cluster node: the node also listens on port + 10000 (its cluster bus), so
 * that one must exist (≤ 65535) and be free too.
 */
async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
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

export interface ValkeyOptions {
  /** Requires AUTH with this password (`requirepass`). */
  password?: string | undefined;
  /** Serves TLS only, on the service's port, with this certificate (clients need not present one). */
  tls?: { certFile: string; keyFile: string } | undefined;
  /** Runs as a cluster node, keeping its cluster state in this file. */
  clusterConfigFile?: string | undefined;
}

/** A valkey-server (or redis-server) that keeps nothing on disk. */
export class Valkey extends Service {
  constructor(
    port: number,
    readonly options: ValkeyOptions = {},
  ) {
    super(port);
  }

  /** The VALKEY_URL of this server. */
  get url(): string {
    const auth = this.options.password ? `:${encodeURIComponent(this.options.password)}@` : '';
    return `${this.options.tls ? 'rediss' : 'redis'}://${auth}${this.address}`;
  }

  protected command(): [string, string[]] {
    const binaries = valkeyBinaries();
    if (!binaries) throw new Error(INSTALL_HINT.valkey);
    const { password, tls, clusterConfigFile } = this.options;
    const port = tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile]
      : ['--port', String(this.port)];
    return [
      binaries.server,
      [
        ...port,
        ...(tls ? ['--tls-auth-clients', 'no'] : []),
        ...['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...(password ? ['--requirepass', password, '--masterauth', password] : []),
        ...(clusterConfigFile ? ['--cluster-enabled', 'yes', '--cluster-config-file', clusterConfigFile] : []),
      ],
    ];
  }

  protected async ready(): Promise<boolean> {
    if (this.options.tls) return canConnect(this.port);
    try {
      return (await this.send('PING')) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Empties every database (FLUSHALL). */
  async flush(): Promise<void> {
    await this.send('FLUSHALL');
  }

  /** Sends one command (plain TCP only) and resolves with its reply as text (see `valkeyCommand`). */
  send(...args: string[]): Promise<string> {
    return valkeyCommand(this.port, args, this.options.password);
  }
}

/**
 * A Valkey cluster of three primaries (no replicas) on loopback, each node with a third of the
 * slots: the smallest cluster that spreads sessions over several nodes. Its URL is the first
 * node's, which, as a cluster's discovery endpoint does, tells the client about the others.
 */
export class ValkeyCluster {
  readonly nodes: Valkey[];
  readonly #dir: string;

  constructor(
    ports: number[],
    readonly options: { password?: string | undefined } = {},
    dir?: string,
  ) {
    // Created by start(): a cluster that only names running nodes (TEST_VALKEY_CLUSTER) needs none.
    this.#dir = dir ?? path.join(os.tmpdir(), `gaesession-valkey-cluster-${process.pid}-${ports.join('-')}`);
    this.nodes = ports.map(
      (port) => new Valkey(port, { ...options, clusterConfigFile: path.join(this.#dir, `nodes-${port}.conf`) }),
    );
  }

  /** The nodes' addresses, comma-separated (how TEST_VALKEY_CLUSTER passes a cluster on). */
  get address(): string {
    return this.nodes.map((node) => node.address).join(',');
  }

  get url(): string {
    return this.nodes[0]!.url;
  }

  /** The nodes' process IDs while they run (to pause them with SIGSTOP in a test). */
  get pids(): number[] {
    return this.nodes.map((node) => node.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** Starts the nodes and, the first time, joins them into a cluster. */
  async start(): Promise<this> {
    const created = this.nodes.every((node) => existsSync(node.options.clusterConfigFile!));
    mkdirSync(this.#dir, { recursive: true });
    await Promise.all(this.nodes.map((node) => node.start()));
    if (!created) await this.#create();
    await this.#untilOk();
    return this;
  }

  /** Stops every node; their cluster state stays for `start()`. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the nodes and deletes their cluster state. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Empties every node (FLUSHALL is per node in a cluster). */
  async flush(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.flush()));
  }

  async #create(): Promise<void> {
    const { cli } = valkeyBinaries()!;
    const auth = this.options.password ? ['-a', this.options.password, '--no-auth-warning'] : [];
    const args = ['--cluster', 'create', ...this.nodes.map((n) => n.address), '--cluster-replicas', '0'];
    const created = await run(cli, [...auth, ...args, '--cluster-yes']);
    if (created.code !== 0) throw new Error(`${cli} --cluster create failed: ${created.output}`);
  }

  /** Waits until every node sees all slots served (cluster_state:ok). */
  async #untilOk(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    const ok = async (node: Valkey) => (await node.send('CLUSTER', 'INFO')).includes('cluster_state:ok');
    while (!(await Promise.all(this.nodes.map(ok))).every(Boolean)) {
      if (Date.now() > until) throw new Error(`Valkey cluster on ${this.address} did not reach cluster_state:ok`);
      await sleep(50);
    }
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

/** A Valkey of its own for this caller (for tests that stop, pause or restart it). */
export async function startValkey(options: ValkeyOptions = {}): Promise<Valkey> {
  return new Valkey(await freePort(), options).start();
}

/** A Valkey cluster of its own for this caller (three nodes; about a second and a half to start). */
export async function startValkeyCluster(options: { password?: string } = {}): Promise<ValkeyCluster> {
  const ports = [await freeClusterPort(), await freeClusterPort(), await freeClusterPort()];
  return new ValkeyCluster(ports, options).start();
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

/** The run's shared standalone Valkey (see `sharedMemcached`). */
export async function sharedValkey(): Promise<Valkey> {
  const given = process.env['TEST_VALKEY'];
  if (given) return new Valkey(Number(given.split(':')[1]));
  sharedValkeyInstance ??= startValkey();
  return sharedValkeyInstance;
}
let sharedValkeyInstance: Promise<Valkey> | undefined;

/** The run's shared Valkey cluster (see `sharedMemcached`); TEST_VALKEY_CLUSTER lists its nodes. */
export async function sharedValkeyCluster(): Promise<ValkeyCluster> {
  const given = process.env['TEST_VALKEY_CLUSTER'];
  if (given) return new ValkeyCluster(given.split(',').map((address) => Number(address.split(':')[1])));
  sharedClusterInstance ??= startValkeyCluster();
  return sharedClusterInstance;
}
let sharedClusterInstance: Promise<ValkeyCluster> | undefined;

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

/**
 * Sends one command to a Valkey (RESP, plain TCP, after AUTH when a password is given) and
 * resolves with its reply: a status, integer or bulk string as text; an error reply rejects.
 */
export function valkeyCommand(port: number, args: string[], password?: string): Promise<string> {
  const encode = (parts: string[]) =>
    `*${parts.length}\r\n` + parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('');
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write((password ? encode(['AUTH', password]) : '') + encode(args));
    });
    let replies = password ? 2 : 1;
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const reply = parseReply(buffered);
        if (!reply) return;
        buffered = buffered.subarray(reply.length);
        if (--replies > 0 && !reply.error) continue;
        socket.destroy();
        if (reply.error) reject(new Error(reply.text));
        else resolve(reply.text);
        return;
      }
    });
    socket.once('error', reject);
  });
}

/** One RESP reply at the start of `data` (not arrays: the commands above send none back). */
function parseReply(data: Buffer): { text: string; error: boolean; length: number } | undefined {
  const end = data.indexOf('\r\n');
  if (end < 0) return undefined;
  const line = data.subarray(1, end).toString();
  const type = String.fromCharCode(data[0]!);
  if (type !== '$') return { text: line, error: type === '-', length: end + 2 };
  const size = Number(line);
  if (size < 0) return { text: '', error: false, length: end + 2 };
  if (data.length < end + 2 + size + 2) return undefined;
  return { text: data.subarray(end + 2, end + 2 + size).toString(), error: false, length: end + 2 + size + 2 };
}

/** Runs a command to its end; resolves with its exit code and output. */
function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => resolve({ code: null, output: String(error) }));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
