import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ITEM_OVERHEAD_BYTES, MAX_ITEM_BYTES } from '../../src/gaesession/memcache-client.js';
import { createValkeyClient, type ValkeyClient } from '../../src/gaesession/valkey-client.js';
import { ValkeyCache } from '../../src/gaesession/valkey.js';
import type { LogFields, Logger } from '../../src/session/logger.js';
import { SessionTooLargeError, StoreUnavailableError } from '../../src/session/store.js';
import {
  missing,
  sharedValkey,
  sharedValkeyCluster,
  startHangingServer,
  startValkey,
  startValkeyCluster,
  type Valkey,
  type ValkeyCluster,
} from '../support/services.js';

const skip = missing('valkey');
const root = fileURLToPath(new URL('../..', import.meta.url));

/** What the cases need of a server, standalone or cluster alike. */
interface Server {
  url: string;
  flush(): Promise<void>;
  /** Runs a command on every node (one for a standalone server). */
  everyNode(...args: string[]): Promise<string[]>;
  stop(): Promise<void>;
  start(): Promise<unknown>;
  pids: number[];
}

function standalone(server: Valkey): Server {
  return {
    url: server.url,
    flush: () => server.flush(),
    everyNode: async (...args) => [await server.send(...args)],
    stop: () => server.stop(),
    start: () => server.start(),
    get pids() {
      return server.pid === undefined ? [] : [server.pid];
    },
  };
}

function cluster(server: ValkeyCluster): Server {
  return {
    url: server.url,
    flush: () => server.flush(),
    everyNode: (...args) => Promise.all(server.nodes.map((node) => node.send(...args))),
    stop: () => server.stop(),
    start: () => server.start(),
    get pids() {
      return server.pids;
    },
  };
}

const topologies = [
  { name: 'a standalone Valkey', isCluster: false, shared: async () => standalone(await sharedValkey()) },
  { name: 'a 3-node Valkey cluster', isCluster: true, shared: async () => cluster(await sharedValkeyCluster()) },
] as const;

/** A session ID as the cookie manager makes them: 24 characters of base64url. */
let serial = 0;
function newId(): string {
  return `id-${process.pid}-${++serial}`.padEnd(24, 'x');
}

/** Waits until the client has a connection (calls made before fail at once: no offline queue). */
async function connected(client: ValkeyClient): Promise<void> {
  if (client.status === 'ready') return;
  await Promise.race([
    once(client, 'ready'),
    new Promise((_, reject) => setTimeout(() => reject(new Error('client not ready after 10 s')), 10_000)),
  ]);
}

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: LogFields }[] } {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const log =
    (level: string) =>
    (message: string, fields?: LogFields): void => {
      lines.push({ level, message, ...(fields ? { fields } : {}) });
    };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** Resolves with how long `promise` took to settle, and the error it rejected with, if any. */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await promise;
    return { ms: performance.now() - start, error: undefined };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

/** Retries `attempt` until it resolves (every 100 ms, for up to 15 s). */
async function eventually<T>(attempt: () => Promise<T>): Promise<T> {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A call that failed because the backend did: StoreUnavailableError, within `limitMs`. */
function assertBoundedFailure(result: { ms: number; error: unknown }, limitMs: number, what: string): void {
  assert.ok(result.error instanceof StoreUnavailableError, `${what}: ${String(result.error)}`);
  assert.ok(result.ms < limitMs, `${what} took ${Math.round(result.ms)} ms`);
}

for (const topology of topologies) {
  describe(`ValkeyCache on ${topology.name}`, { skip }, () => {
    let server: Server;
    let cache: ValkeyCache;
    let probe: ValkeyClient; // a second client, to look at what the cache stored

    before(async () => {
      server = await topology.shared();
      const client = createValkeyClient({ url: server.url, cluster: topology.isCluster });
      probe = createValkeyClient({ url: server.url, cluster: topology.isCluster });
      cache = new ValkeyCache({ client, keyPrefix: 'test:' });
      await Promise.all([connected(client), connected(probe)]);
    });
    beforeEach(() => server.flush());
    after(async () => {
      await cache.close();
      probe.disconnect();
    });

    it('adds only an absent key, and reads back its bytes as value and token', async () => {
      const id = newId();
      assert.equal(await cache.read(id, 60), undefined);
      const value = Buffer.from('first');
      const token = await cache.add(id, value, 60);
      assert.deepEqual(token, value);
      assert.equal(await cache.add(id, Buffer.from('second'), 60), undefined, 'present: not added');
      const item = await cache.read(id, 60);
      assert.deepEqual(item, { value, token: value });
      assert.deepEqual(await probe.getBuffer('test:' + id), value, 'key = prefix + id');
    });

    it('keeps binary values byte for byte', async () => {
      const id = newId();
      const value = Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0xc3, 0x28, 0x80, 0x00]);
      await cache.add(id, value, 60);
      assert.deepEqual((await cache.read(id, 60))?.value, value);
    });

    it('replaces only the value the token came from: stored, conflict, gone', async () => {
      const id = newId();
      const first = (await cache.add(id, Buffer.from('v1'), 60))!;
      const stored = await cache.replace(id, Buffer.from('v2'), 60, first);
      assert.deepEqual(stored, { status: 'stored', token: Buffer.from('v2') });

      assert.deepEqual(await cache.replace(id, Buffer.from('v3'), 60, first), { status: 'conflict' }, 'stale token');
      // Bytes are compared exactly: a token one byte off (or a prefix of the value) is another item.
      assert.deepEqual(await cache.replace(id, Buffer.from('v3'), 60, Buffer.from('v')), { status: 'conflict' });
      assert.deepEqual(await cache.replace(id, Buffer.from('v3'), 60, Buffer.from('v2\0')), { status: 'conflict' });
      assert.deepEqual((await cache.read(id, 60))?.value, Buffer.from('v2'), 'a conflict writes nothing');

      await cache.delete(id);
      const token = Buffer.from('v2');
      assert.deepEqual(await cache.replace(id, Buffer.from('v4'), 60, token), { status: 'gone' });
      assert.equal(await cache.read(id, 60), undefined, 'a replace never creates the key');
    });

    it('deletes unconditionally, or only the item a token came from', async () => {
      const id = newId();
      await cache.add(id, Buffer.from('a'), 60);
      assert.equal(await cache.delete(id), 'deleted');
      assert.equal(await cache.delete(id), 'absent');

      const token = (await cache.add(id, Buffer.from('b'), 60))!;
      await cache.replace(id, Buffer.from('c'), 60, token);
      assert.equal(await cache.delete(id, token), 'conflict', 'changed since the token was read');
      assert.deepEqual((await cache.read(id, 60))?.value, Buffer.from('c'));
      assert.equal(await cache.delete(id, Buffer.from('c')), 'deleted');
      assert.equal(await cache.delete(id, Buffer.from('c')), 'absent');
    });

    it('sets the TTL on every write, restarts it on read, and changes it with expire', async () => {
      const id = newId();
      const key = 'test:' + id;
      await cache.add(id, Buffer.from('x'), 100);
      assertTtl(await probe.ttl(key), 100, 'add');
      const token = (await cache.read(id, 500))!.token;
      assertTtl(await probe.ttl(key), 500, 'read restarts it');
      await cache.replace(id, Buffer.from('y'), 200, token);
      assertTtl(await probe.ttl(key), 200, 'replace');
      await cache.expire(id, 30);
      assertTtl(await probe.ttl(key), 30, 'expire shortens it');
      await cache.read(id, 0.2);
      assertTtl(await probe.ttl(key), 1, 'a fraction of a second is rounded up to one');
      await cache.expire(id, 0);
      assert.equal(await cache.read(id, 60), undefined, 'expire(0): past its deadline, gone');
      await cache.expire(newId(), 60); // an absent key: nothing to do, no error
    });

    it('buries an ID under a key of its own, for a while', async () => {
      const id = newId();
      await cache.add(id, Buffer.from('alive'), 60);
      assert.equal(await cache.isBuried(id), false);
      await cache.bury(id, 45);
      assert.equal(await cache.isBuried(id), true);
      assert.equal(await cache.isBuried(newId()), false);
      assertTtl(await probe.ttl(`test:${id}:ended`), 45, 'tombstone');
      assert.deepEqual((await cache.read(id, 60))?.value, Buffer.from('alive'), 'the session key is its own');
    });

    it("keeps an owner's session IDs in a set whose TTL only grows", async () => {
      const [a, b, c] = [newId(), newId(), newId()];
      const key = 'test:owner:alice';
      assert.deepEqual(await cache.listOwned('alice'), []);
      await cache.addOwned('alice', a, 300);
      assertTtl(await probe.ttl(key), 300, 'a new index');
      await cache.addOwned('alice', b, 100);
      assertTtl(await probe.ttl(key), 300, 'a shorter TTL leaves it: the first session may live on');
      await cache.addOwned('alice', c, 900);
      assertTtl(await probe.ttl(key), 900, 'a longer one extends it');
      await cache.addOwned('alice', a, 900); // twice: still once in the set
      await cache.addOwned('bob', newId(), 60);
      assert.deepEqual((await cache.listOwned('alice')).sort(), [a, b, c].sort());

      await cache.removeOwned('alice', [a, c, newId()]);
      assert.deepEqual(await cache.listOwned('alice'), [b]);
      const trips = cache.roundTrips;
      await cache.removeOwned('alice', []);
      assert.equal(cache.roundTrips, trips, 'nothing to remove: no round trip');
      await cache.removeOwned('alice', [b]);
      assert.deepEqual(await cache.listOwned('alice'), []);
      assert.equal(await probe.exists(key), 0, 'an emptied set is gone');
      assert.equal((await cache.listOwned('bob')).length, 1);
    });

    it('counts one round trip per call', async () => {
      const id = newId();
      const before = cache.roundTrips;
      const token = (await cache.add(id, Buffer.from('x'), 60))!;
      await cache.read(id, 60);
      await cache.replace(id, Buffer.from('y'), 60, token);
      await cache.expire(id, 60);
      await cache.bury(id, 60);
      await cache.isBuried(id);
      await cache.addOwned('carol', id, 60);
      await cache.listOwned('carol');
      await cache.removeOwned('carol', [id]);
      await cache.delete(id, Buffer.from('y'));
      assert.equal(cache.roundTrips - before, 10);
    });

    it('refuses a value over the 1 MB item limit before sending it', async () => {
      const id = newId();
      const limit = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES - Buffer.byteLength('test:' + id);
      const before = cache.roundTrips;
      await assert.rejects(cache.add(id, Buffer.alloc(limit + 1), 60), SessionTooLargeError);
      await assert.rejects(cache.replace(id, Buffer.alloc(MAX_ITEM_BYTES), 60, Buffer.from('t')), SessionTooLargeError);
      assert.equal(cache.roundTrips, before, 'nothing sent');
      assert.equal(await probe.exists('test:' + id), 0);
      const largest = Buffer.alloc(limit, 7);
      assert.deepEqual(await cache.add(id, largest, 60), largest, 'the largest allowed value is stored');
      assert.deepEqual((await cache.read(id, 60))?.value, largest);
    });

    it('runs its scripts again after the server forgot them (NOSCRIPT: EVALSHA falls back to EVAL)', async () => {
      const id = newId();
      const token = (await cache.add(id, Buffer.from('x'), 60))!;
      await cache.addOwned('dave', id, 60);
      await server.everyNode('SCRIPT', 'FLUSH');
      assert.equal((await cache.replace(id, Buffer.from('y'), 60, token)).status, 'stored');
      assert.equal(await cache.delete(id, Buffer.from('y')), 'deleted');
      await server.everyNode('SCRIPT', 'FLUSH');
      await cache.addOwned('dave', newId(), 60);
      assert.equal((await cache.listOwned('dave')).length, 2);
    });

    it(
      'spreads keys over the nodes, a session, its tombstone and its owner index in slots of their own',
      {
        skip: !topology.isCluster && 'a cluster only',
      },
      async () => {
        const ids = Array.from({ length: 30 }, newId);
        for (const id of ids) {
          const token = (await cache.add(id, Buffer.from(id), 60))!;
          assert.equal((await cache.replace(id, Buffer.from(id + '!'), 60, token)).status, 'stored');
          await cache.bury(id, 60);
          await cache.addOwned('erin', id, 60);
        }
        const perNode = (await server.everyNode('DBSIZE')).map(Number);
        assert.equal(perNode.length, 3);
        assert.ok(
          perNode.every((keys) => keys > 0),
          `every node holds keys: ${perNode.join(', ')}`,
        );
        const id = ids[0]!;
        const slots = await Promise.all(
          [`test:${id}`, `test:${id}:ended`, 'test:owner:erin'].map((key) => probe.cluster('KEYSLOT', key)),
        );
        assert.equal(new Set(slots).size, 3, `three slots: ${slots.join(', ')}`);
        for (const id of ids) {
          assert.deepEqual((await cache.read(id, 60))?.value, Buffer.from(id + '!'));
          assert.equal(await cache.isBuried(id), true);
          assert.equal(await cache.delete(id, Buffer.from(id + '!')), 'deleted');
        }
        assert.deepEqual((await cache.listOwned('erin')).sort(), [...ids].sort());
      },
    );
  });

  describe(`ValkeyCache when ${topology.name} fails`, { skip }, () => {
    let server: Server;
    let cache: ValkeyCache;
    let logger: ReturnType<typeof recordingLogger>;
    let skew = 0; // added to the breaker's clock, to end its window without waiting
    const stopped = new Set<number>();

    before(async () => {
      // Its own server: these tests stop and pause it.
      server = topology.isCluster ? cluster(await startValkeyCluster()) : standalone(await startValkey());
      logger = recordingLogger();
      const client = createValkeyClient({ url: server.url, cluster: topology.isCluster });
      cache = new ValkeyCache({ client, logger, now: () => Date.now() + skew });
      await connected(client);
    });
    afterEach(() => {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      stopped.clear();
    });
    after(async () => {
      await cache.close();
      await server.stop();
    });

    /** Ends the breaker's window (3 s by default) at once. */
    const skipWindow = () => (skew += 3_001);

    it('fails bounded while the server is killed, and works again after a restart with the same client', async () => {
      const id = newId();
      await cache.add(id, Buffer.from('before'), 60);
      await server.stop();
      assertBoundedFailure(await timed(cache.read(id, 60)), 1_500, 'a call to a killed server');
      assertBoundedFailure(await timed(cache.read(id, 60)), 200, 'the next call, within the window');
      skipWindow();
      assertBoundedFailure(await timed(cache.add(id, Buffer.from('x'), 60)), 1_500, 'after the window');

      await server.start();
      const id2 = newId();
      await eventually(async () => {
        skipWindow();
        await cache.add(id2, Buffer.from('after'), 60);
      });
      assert.deepEqual((await cache.read(id2, 60))?.value, Buffer.from('after'));
      const warnings = logger.lines.filter((line) => line.message === 'Valkey unavailable');
      assert.equal(warnings.length, 1, 'the outage is logged once');
      assert.ok(logger.lines.some((line) => line.message === 'Valkey reachable again'));
    });

    it('fails bounded while the server is paused (SIGSTOP), and recovers after SIGCONT', async () => {
      const id = newId();
      await cache.add(id, Buffer.from('x'), 60);
      const pids = server.pids;
      assert.ok(pids.length > 0);
      for (const pid of pids) {
        process.kill(pid, 'SIGSTOP');
        stopped.add(pid);
      }
      const paused = Date.now();
      assertBoundedFailure(await timed(cache.read(id, 60)), 1_500, 'a call to a paused server');
      assertBoundedFailure(await timed(cache.read(id, 60)), 200, 'the next call, within the window');
      skipWindow();
      assertBoundedFailure(await timed(cache.isBuried(id)), 1_500, 'after the window, still paused');
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 2_000 - (Date.now() - paused))));
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      stopped.clear();
      const item = await eventually(async () => {
        skipWindow();
        return cache.read(id, 60);
      });
      assert.deepEqual(item?.value, Buffer.from('x'), 'nothing lost');
    });

    it('close() does not hang with the server down', async () => {
      const logger = recordingLogger();
      const client = createValkeyClient({ url: server.url, cluster: topology.isCluster });
      const other = new ValkeyCache({ client, logger });
      await connected(client);
      await server.stop();
      const closing = await timed(other.close());
      assert.equal(closing.error, undefined);
      assert.ok(closing.ms < 1_500, `close took ${Math.round(closing.ms)} ms`);
      await server.start();
    });
  });
}

describe('ValkeyCache against a server that accepts connections and never answers', { skip }, () => {
  let hang: { address: string; close(): void };
  before(async () => {
    hang = await startHangingServer();
  });
  after(() => hang.close());

  for (const isCluster of [false, true]) {
    it(`fails each call within a second or so, then fails fast (${isCluster ? 'cluster' : 'standalone'})`, async () => {
      const logger = recordingLogger();
      let skew = 0;
      const client = createValkeyClient({ url: `redis://${hang.address}`, cluster: isCluster });
      const cache = new ValkeyCache({ client, logger, now: () => Date.now() + skew });
      await new Promise((resolve) => setTimeout(resolve, 100)); // connected, as far as TCP goes
      assertBoundedFailure(await timed(cache.read(newId(), 60)), 1_500, 'the first call');
      assertBoundedFailure(await timed(cache.add(newId(), Buffer.from('x'), 60)), 200, 'within the window');
      skew += 3_001;
      assertBoundedFailure(await timed(cache.listOwned('x')), 1_500, 'after the window');
      assert.equal(logger.lines.filter((line) => line.level === 'warn').length, 1, 'logged once');
      const closing = await timed(cache.close());
      assert.ok(closing.ms < 1_500, `close took ${Math.round(closing.ms)} ms`);
    });
  }
});

describe('ValkeyCache with a password', { skip }, () => {
  it('authenticates on every node of a cluster, from user:password@ in the URL', async () => {
    const server = await startValkeyCluster({ password: 's3cret/pw' });
    try {
      const client = createValkeyClient({ url: server.url, cluster: true });
      const cache = new ValkeyCache({ client });
      await connected(client);
      const ids = Array.from({ length: 20 }, newId);
      for (const id of ids) await cache.add(id, Buffer.from(id), 60);
      for (const id of ids) assert.deepEqual((await cache.read(id, 60))?.value, Buffer.from(id));
      assert.ok((await Promise.all(server.nodes.map((node) => node.send('DBSIZE')))).every((n) => Number(n) > 0));
      await cache.close();

      const wrong = new ValkeyCache({
        client: createValkeyClient({ url: server.url.replace('s3cret', 'wrong'), cluster: true }),
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await assert.rejects(wrong.read(ids[0]!, 60), StoreUnavailableError);
      await wrong.close();
    } finally {
      await server.destroy();
    }
  });
});

const noOpenssl =
  spawnSync('sh', ['-c', 'command -v openssl']).status === 0
    ? undefined
    : 'skipped: openssl is not installed (to make a test certificate)';

describe('ValkeyCache over TLS (rediss://)', { skip: skip ?? noOpenssl }, () => {
  let dir: string;
  let server: Valkey;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'gaesession-valkey-tls-'));
    const [certFile, keyFile] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
    const made = spawnSync('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    ]);
    assert.equal(made.status, 0, String(made.stderr));
    server = await startValkey({ tls: { certFile, keyFile }, password: 'tls-pw' });
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Adds and reads a session in a new node process (NODE_EXTRA_CA_CERTS is read at start-up). */
  async function roundTrip(url: string, ca: string | undefined): Promise<string> {
    const script = `
      import { createValkeyClient } from ${JSON.stringify(path.join(root, 'src/gaesession/valkey-client.ts'))};
      import { ValkeyCache } from ${JSON.stringify(path.join(root, 'src/gaesession/valkey.ts'))};
      const cache = new ValkeyCache({ client: createValkeyClient({ url: ${JSON.stringify(url)}, cluster: false }) });
      await new Promise((resolve) => setTimeout(resolve, 500));
      try {
        await cache.add('tls', Buffer.from('secret'), 60);
        console.log((await cache.read('tls', 60)).value.toString());
      } catch (error) {
        console.log(error.name);
      }
      await cache.close();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      env: ca ? { ...process.env, NODE_EXTRA_CA_CERTS: ca } : process.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await once(child, 'exit');
    return output.trim();
  }

  it('connects with the CA from NODE_EXTRA_CA_CERTS and the password from the URL', async () => {
    assert.equal(await roundTrip(server.url, path.join(dir, 'cert.pem')), 'secret');
  });

  it('refuses a server whose certificate it cannot verify, or a wrong password', async () => {
    assert.equal(await roundTrip(server.url, undefined), 'StoreUnavailableError');
    const wrong = server.url.replace('tls-pw', 'nope');
    assert.equal(await roundTrip(wrong, path.join(dir, 'cert.pem')), 'StoreUnavailableError');
  });
});

/** A TTL as the server reports it: set, and at most `seconds` (a second or two may have passed). */
function assertTtl(ttl: number, seconds: number, what: string): void {
  assert.ok(ttl <= seconds && ttl >= seconds - 2, `${what}: TTL ${ttl}, expected about ${seconds}`);
}
