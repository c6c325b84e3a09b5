import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../../src/app/config.js';
import { TOMBSTONE_SUFFIX } from '../../src/gaesession/cache.js';
import { MAX_KEY_BYTES } from '../../src/gaesession/memcache-client.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Asserts that `env` is refused with a ConfigError whose message names `variable`. */
function refuses(variable: string, value: string, extra: Record<string, string> = {}): void {
  assert.throws(
    () => loadConfig({ ...extra, [variable]: value }),
    (error: unknown) => error instanceof ConfigError && error.message.includes(variable),
    `${variable}=${JSON.stringify(value)} should be refused`,
  );
}

describe('configuration', () => {
  it('has SPEC defaults for an empty environment', () => {
    const config = loadConfig({});
    // Field by field: other settings (not in SPEC's table) may be added next to these.
    assert.equal(config.port, 8080);
    assert.equal(config.store, 'memory');
    assert.deepEqual(config.memcache.servers, ['127.0.0.1:11211']);
    assert.equal(config.memcache.username, '');
    assert.equal(config.memcache.password, '');
    assert.deepEqual(config.valkey, { url: 'redis://127.0.0.1:6379', cluster: false });
    assert.equal(config.datastore, 'sync');
    assert.equal(config.datastoreKind, 'sess_');
    assert.equal(config.keyPrefix, '');
    assert.equal(config.timeoutSeconds, 1800);
    assert.equal(config.lifetimeSeconds, 86_400);
    assert.equal(config.memoryMaxSessions, 10_000);
    assert.deepEqual(config.cookie, { name: 'sessid', maxAgeSeconds: 2_592_000, secure: 'auto' });
    assert.equal(config.purgeDeadlineSeconds, 480);
    assert.equal(config.shutdownGraceSeconds, 5);
    assert.equal(config.demoPassword, 'a');
    assert.equal(config.logLevel, 'info');
  });

  it('treats an empty or blank value as unset', () => {
    const config = loadConfig({
      PORT: '',
      SESSION_STORE: '  ',
      SESSION_TIMEOUT_SECONDS: '',
      SESSION_COOKIE_SECURE: '',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.store, 'memory');
    assert.equal(config.timeoutSeconds, 1800);
    assert.equal(config.cookie.secure, 'auto');
  });

  describe('PORT', () => {
    it('takes a port number', () => {
      assert.equal(loadConfig({ PORT: '3000' }).port, 3000);
      assert.equal(loadConfig({ PORT: '0' }).port, 0); // any free port: handy for tests
      assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
    });
    it('refuses anything else', () => {
      for (const bad of ['http', '-1', '65536', '80.5', '8080abc', '0x50', '1e3']) refuses('PORT', bad);
    });
  });

  describe('SESSION_STORE', () => {
    it('takes memory, memcache, valkey or datastore', () => {
      for (const store of ['memory', 'memcache', 'valkey', 'datastore'] as const) {
        assert.equal(loadConfig({ SESSION_STORE: store }).store, store);
      }
    });
    it('refuses an unknown store', () => {
      for (const bad of ['redis', 'Memory', 'memcached', 'Valkey']) refuses('SESSION_STORE', bad);
    });
  });

  describe('MEMCACHE_SERVERS', () => {
    it('takes a comma-separated host:port list', () => {
      assert.deepEqual(loadConfig({ MEMCACHE_SERVERS: 'cache-1:11211, 10.0.0.2:11212' }).memcache.servers, [
        'cache-1:11211',
        '10.0.0.2:11212',
      ]);
    });
    it('refuses an entry without a port, with a bad port, or empty', () => {
      for (const bad of ['localhost', 'host:', 'host:99999', 'host:port', 'a:1,,b:2', 'a b:1', 'a:1;b:2']) {
        refuses('MEMCACHE_SERVERS', bad);
      }
    });
  });

  it('MEMCACHE_USERNAME and MEMCACHE_PASSWORD are the SASL credentials, empty by default', () => {
    const config = loadConfig({ MEMCACHE_USERNAME: 'user', MEMCACHE_PASSWORD: 'p@ss word' });
    assert.equal(config.memcache.username, 'user');
    assert.equal(config.memcache.password, 'p@ss word');
  });

  describe('VALKEY_URL', () => {
    it('takes a redis:// or rediss:// URL, with AUTH credentials and a port or not', () => {
      for (const url of [
        'redis://10.0.0.3:6379',
        'rediss://10.0.0.3:6378',
        'redis://valkey.internal',
        'rediss://default:p%40ss@valkey.internal:6379',
        'redis://:only-a-password@127.0.0.1:65535/',
        'redis://[::1]:6379',
      ]) {
        assert.equal(loadConfig({ VALKEY_URL: url }).valkey.url, url);
      }
    });
    it('refuses another scheme, no host, a bad port, a path, or no URL at all', () => {
      for (const bad of [
        '10.0.0.3:6379',
        'localhost',
        'http://10.0.0.3:6379',
        'valkey://10.0.0.3',
        'redis:10.0.0.3',
        'redis://:6379',
        'redis:///path',
        'redis://host:0',
        'redis://host:65536',
        'redis://host:port',
        'redis://host/0',
        'redis://host?tls=true',
        'redis://a b:6379',
      ]) {
        refuses('VALKEY_URL', bad);
      }
    });
    it('never repeats the password in its message', () => {
      assert.throws(
        () => loadConfig({ VALKEY_URL: 'redis://user:hunter2@host/1' }),
        (error: unknown) => error instanceof ConfigError && !error.message.includes('hunter2'),
      );
    });
  });

  describe('VALKEY_CLUSTER', () => {
    it('takes true or false (default false)', () => {
      assert.equal(loadConfig({ VALKEY_CLUSTER: 'true' }).valkey.cluster, true);
      assert.equal(loadConfig({ VALKEY_CLUSTER: 'false' }).valkey.cluster, false);
      assert.equal(loadConfig({ VALKEY_CLUSTER: '' }).valkey.cluster, false);
    });
    it('refuses anything else', () => {
      for (const bad of ['yes', '1', 'TRUE', 'cluster']) refuses('VALKEY_CLUSTER', bad);
    });
  });

  describe('SESSION_DATASTORE', () => {
    it('takes off, sync or async for the memcache store', () => {
      for (const mode of ['off', 'sync', 'async'] as const) {
        assert.equal(loadConfig({ SESSION_STORE: 'memcache', SESSION_DATASTORE: mode }).datastore, mode);
      }
    });
    it('is always sync for the Datastore-only store', () => {
      assert.equal(loadConfig({ SESSION_STORE: 'datastore', SESSION_DATASTORE: 'async' }).datastore, 'sync');
    });
    it('refuses anything else', () => {
      for (const bad of ['on', 'true', 'SYNC']) refuses('SESSION_DATASTORE', bad);
    });
  });

  describe('DATASTORE_KIND', () => {
    it('takes a kind name', () => {
      assert.equal(loadConfig({ DATASTORE_KIND: 'Session' }).datastoreKind, 'Session');
    });
    it('refuses a reserved or oversized kind', () => {
      refuses('DATASTORE_KIND', '__kind__');
      refuses('DATASTORE_KIND', 'k'.repeat(1501));
    });
  });

  describe('SESSION_KEY_PREFIX', () => {
    // The longest key made from an ID is the tombstone: prefix + 24-character ID + ':ended'.
    const room = MAX_KEY_BYTES - 24 - TOMBSTONE_SUFFIX.length;
    it('takes a prefix that leaves room for the ID and the tombstone suffix in a memcache key', () => {
      assert.equal(room, 220);
      assert.equal(loadConfig({ SESSION_KEY_PREFIX: 'myapp:sess:' }).keyPrefix, 'myapp:sess:');
      const longest = 'p'.repeat(room);
      assert.equal(loadConfig({ SESSION_KEY_PREFIX: longest }).keyPrefix, longest);
    });
    it('refuses one that leaves no room, or holds spaces or control characters', () => {
      refuses('SESSION_KEY_PREFIX', 'p'.repeat(room + 1));
      refuses('SESSION_KEY_PREFIX', 'é'.repeat(111)); // 222 bytes in UTF-8
      refuses('SESSION_KEY_PREFIX', 'my app:');
      refuses('SESSION_KEY_PREFIX', 'tab\t');
      refuses('SESSION_KEY_PREFIX', 'nul\u0000');
    });
  });

  for (const [variable, read, fallback, max] of [
    ['SESSION_TIMEOUT_SECONDS', (c) => c.timeoutSeconds, 1800, 365 * 86400],
    ['SESSION_COOKIE_MAX_AGE_SECONDS', (c) => c.cookie.maxAgeSeconds, 2_592_000, 400 * 86400],
    ['PURGE_DEADLINE_SECONDS', (c) => c.purgeDeadlineSeconds, 480, 600],
    ['HTTP_REQUEST_TIMEOUT_SECONDS', (c) => c.http.requestTimeoutSeconds, 30, 3600],
    ['HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', (c) => c.http.keepAliveTimeoutSeconds, 620, 3600],
  ] as const satisfies readonly (readonly [string, (c: ReturnType<typeof loadConfig>) => number, number, number])[]) {
    describe(variable, () => {
      it(`takes a whole number from 1 to ${max} (default ${fallback})`, () => {
        assert.equal(read(loadConfig({})), fallback);
        assert.equal(read(loadConfig({ [variable]: '1' })), 1);
        assert.equal(read(loadConfig({ [variable]: '600' })), 600);
        assert.equal(read(loadConfig({ [variable]: String(max) })), max);
      });
      it('refuses zero, negatives, fractions, text and values past its limit', () => {
        for (const bad of ['0', '-5', '1.5', 'ten', '30s', '1e3', String(max + 1), '5000000000'])
          refuses(variable, bad);
      });
    });
  }

  describe('SESSION_MAX_LIFETIME_SECONDS', () => {
    it('defaults to a day, or the idle timeout if that is longer', () => {
      assert.equal(loadConfig({}).lifetimeSeconds, 86_400);
      assert.equal(loadConfig({ SESSION_TIMEOUT_SECONDS: '60' }).lifetimeSeconds, 86_400);
      assert.equal(loadConfig({ SESSION_TIMEOUT_SECONDS: String(3 * 86_400) }).lifetimeSeconds, 3 * 86_400);
    });
    it('takes a whole number of seconds no lower than the idle timeout, up to 400 days', () => {
      assert.equal(loadConfig({ SESSION_MAX_LIFETIME_SECONDS: '3600' }).lifetimeSeconds, 3600);
      assert.equal(loadConfig({ SESSION_MAX_LIFETIME_SECONDS: '1800' }).lifetimeSeconds, 1800, 'equal to the timeout');
      assert.equal(
        loadConfig({ SESSION_TIMEOUT_SECONDS: '10', SESSION_MAX_LIFETIME_SECONDS: '10' }).lifetimeSeconds,
        10,
      );
      assert.equal(loadConfig({ SESSION_MAX_LIFETIME_SECONDS: String(400 * 86_400) }).lifetimeSeconds, 400 * 86_400);
    });
    it('refuses a value below the idle timeout, naming both variables', () => {
      assert.throws(
        () => loadConfig({ SESSION_MAX_LIFETIME_SECONDS: '1799' }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes('SESSION_MAX_LIFETIME_SECONDS') &&
          error.message.includes('SESSION_TIMEOUT_SECONDS'),
      );
      refuses('SESSION_MAX_LIFETIME_SECONDS', '59', { SESSION_TIMEOUT_SECONDS: '60' });
    });
    it('refuses zero, negatives, fractions, text and values past 400 days', () => {
      for (const bad of ['0', '-5', '1.5', 'day', '1e5', String(400 * 86_400 + 1)])
        refuses('SESSION_MAX_LIFETIME_SECONDS', bad, { SESSION_TIMEOUT_SECONDS: '1' });
    });
  });

  describe('MEMORY_STORE_MAX_SESSIONS', () => {
    it('takes a whole number from 1 to 10,000,000 (default 10,000)', () => {
      assert.equal(loadConfig({ MEMORY_STORE_MAX_SESSIONS: '1' }).memoryMaxSessions, 1);
      assert.equal(loadConfig({ MEMORY_STORE_MAX_SESSIONS: '250000' }).memoryMaxSessions, 250_000);
      assert.equal(loadConfig({ MEMORY_STORE_MAX_SESSIONS: '10000000' }).memoryMaxSessions, 10_000_000);
    });
    it('refuses anything else', () => {
      for (const bad of ['0', '-1', '1.5', 'many', '10000001']) refuses('MEMORY_STORE_MAX_SESSIONS', bad);
    });
  });

  describe('SHUTDOWN_GRACE_SECONDS', () => {
    it('takes a whole number of seconds, zero included (default 5)', () => {
      assert.equal(loadConfig({ SHUTDOWN_GRACE_SECONDS: '0' }).shutdownGraceSeconds, 0);
      assert.equal(loadConfig({ SHUTDOWN_GRACE_SECONDS: '9' }).shutdownGraceSeconds, 9);
    });
    it('refuses anything else', () => {
      for (const bad of ['-1', 'soon', '2.5']) refuses('SHUTDOWN_GRACE_SECONDS', bad);
    });
  });

  describe('SESSION_COOKIE_NAME', () => {
    it('takes a cookie token', () => {
      assert.equal(loadConfig({ SESSION_COOKIE_NAME: 'my-app.sid' }).cookie.name, 'my-app.sid');
    });
    it('refuses characters a cookie name cannot hold', () => {
      for (const bad of ['my session', 'a=b', 'a;b', 'a,b', 'sess"id', 'sessión']) refuses('SESSION_COOKIE_NAME', bad);
    });
    it('takes a __Host- or __Secure- name with SESSION_COOKIE_SECURE=always', () => {
      for (const name of ['__Host-sessid', '__Secure-sessid', '__host-sessid']) {
        const config = loadConfig({ SESSION_COOKIE_NAME: name, SESSION_COOKIE_SECURE: 'always' });
        assert.deepEqual([config.cookie.name, config.cookie.secure], [name, 'always']);
      }
    });
    it('refuses a __Host- or __Secure- name without SESSION_COOKIE_SECURE=always: browsers would drop the cookie', () => {
      // Browsers match the prefixes case-insensitively.
      for (const name of ['__Host-sessid', '__Secure-sessid', '__HOST-sessid', '__secure-x']) {
        for (const secure of [{}, { SESSION_COOKIE_SECURE: 'auto' }, { SESSION_COOKIE_SECURE: 'never' }]) {
          assert.throws(
            () => loadConfig({ SESSION_COOKIE_NAME: name, ...secure }),
            (error: unknown) =>
              error instanceof ConfigError &&
              error.message.includes('SESSION_COOKIE_NAME') &&
              error.message.includes('SESSION_COOKIE_SECURE=always'),
            `${name} with ${JSON.stringify(secure)}`,
          );
        }
      }
    });
  });

  describe('SESSION_COOKIE_SECURE', () => {
    it('takes auto, always or never', () => {
      for (const policy of ['auto', 'always', 'never'] as const) {
        assert.equal(loadConfig({ SESSION_COOKIE_SECURE: policy }).cookie.secure, policy);
      }
    });
    it('refuses anything else', () => {
      for (const bad of ['true', 'yes', 'https']) refuses('SESSION_COOKIE_SECURE', bad);
    });
  });

  it('DEMO_PASSWORD sets the demo password', () => {
    assert.equal(loadConfig({ DEMO_PASSWORD: 's3cret' }).demoPassword, 's3cret');
    assert.equal(loadConfig({ DEMO_PASSWORD: ' spaced ' }).demoPassword, ' spaced ');
  });

  it('an empty DEMO_PASSWORD means the default, not "no password"', () => {
    assert.equal(loadConfig({ DEMO_PASSWORD: '' }).demoPassword, 'a');
  });

  describe('LOG_LEVEL', () => {
    it('takes debug, info, warn or error', () => {
      for (const level of ['debug', 'info', 'warn', 'error'] as const) {
        assert.equal(loadConfig({ LOG_LEVEL: level }).logLevel, level);
      }
    });
    it('refuses anything else', () => {
      for (const bad of ['verbose', 'WARNING']) refuses('LOG_LEVEL', bad);
    });
  });

  it('stops the server with one line naming the variable and a non-zero exit', async () => {
    const cases: Record<string, string>[] = [
      { SESSION_STORE: 'redis' },
      { PORT: 'eighty' },
      { VALKEY_URL: 'http://10.0.0.3' },
      { VALKEY_CLUSTER: 'maybe' },
      { SESSION_TIMEOUT_SECONDS: '-1' },
      { SESSION_KEY_PREFIX: 'x'.repeat(300) },
      { SESSION_COOKIE_SECURE: 'yes' },
      { SESSION_MAX_LIFETIME_SECONDS: '10' },
      { SESSION_COOKIE_NAME: '__Host-sessid' },
      { HTTP_REQUEST_TIMEOUT_SECONDS: '0' },
    ];
    await Promise.all(
      cases.map(async (bad) => {
        const [variable] = Object.keys(bad);
        const { code, stdout, stderr } = await runServer(bad);
        assert.notEqual(code, 0, `${variable}: exit code`);
        const lines = stderr.trim().split('\n');
        assert.equal(lines.length, 1, `${variable}: one line, got ${JSON.stringify(stderr)}`);
        assert.match(lines[0] ?? '', new RegExp(`\\b${variable}\\b`));
        assert.doesNotMatch(stdout, /listening/);
      }),
    );
  });
});

/** Runs the server with the given environment on top of a clean one; it must exit by itself. */
async function runServer(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/server.ts'], {
    cwd: root,
    env: { PATH: process.env['PATH'], PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  return { code, stdout, stderr };
}
