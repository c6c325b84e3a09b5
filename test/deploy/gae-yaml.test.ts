/**
 * app.yaml and cron.yaml, read by the Google Cloud SDK's own parsers (the ones `gcloud app
 * deploy` runs before it uploads) and checked against what this app needs from them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/app/config.js';
import { findCloudSdk, sdkMissing } from './cloud-sdk.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const checker = path.join(root, 'test/deploy/gae-yaml-check.py');

interface Parsed {
  errors: string[];
  app: {
    runtime: string;
    entrypoint: string | null;
    instance_class: string | null;
    env_variables: Record<string, string>;
    max_instances: number | null;
    handlers: { url: string; secure: string | null; script: string | null; static_dir: string | null }[];
  } | null;
  cron: { url: string; schedule: string }[] | null;
}

function parse(appYaml: string, cronYaml: string): Parsed {
  const sdk = findCloudSdk();
  assert.ok(sdk, 'the Cloud SDK disappeared during the run');
  const output = execFileSync(sdk.python, ['-S', checker, sdk.root, appYaml, cronYaml], { encoding: 'utf8' });
  return JSON.parse(output) as Parsed;
}

describe('App Engine configuration, parsed by the Cloud SDK', { skip: sdkMissing() }, () => {
  const parsed = (() => {
    let result: Parsed | undefined;
    return (): Parsed => (result ??= parse(path.join(root, 'app.yaml'), path.join(root, 'cron.yaml')));
  })();

  it('has no errors in app.yaml or cron.yaml', () => {
    assert.deepEqual(parsed().errors, []);
  });

  it('runs Node.js 22 with node itself as the entrypoint, so SIGTERM reaches the server', () => {
    const app = parsed().app;
    assert.ok(app);
    assert.equal(app.runtime, 'nodejs22');
    // The SDK prefixes `exec`; anything between it and node (npm, sh) would swallow the signal.
    assert.equal(app.entrypoint, 'exec node dist/app/server.js');
    const main = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { build: string } };
    assert.match(main.scripts.build, /tsc/, 'dist/ is built by `npm run build` (through gcp-build)');
  });

  it('serves every URL over HTTPS only, static files from public/ and the rest from the app', () => {
    const handlers = parsed().app?.handlers ?? [];
    assert.ok(handlers.length > 0);
    for (const handler of handlers) assert.equal(handler.secure, 'always', handler.url);
    assert.ok(handlers.some((h) => h.url === '/static' && h.static_dir === 'public'));
    const last = handlers.at(-1);
    assert.equal(last?.url, '/.*');
    assert.equal(last?.script, 'auto');
  });

  it('caps the number of instances, so a demo cannot run up a bill', () => {
    const max = parsed().app?.max_instances;
    assert.ok(typeof max === 'number' && max >= 1 && max <= 10, String(max));
  });

  it('sets env_variables the app accepts: Valkey over TLS (cluster mode) with a synchronous Datastore backup', () => {
    const env = parsed().app?.env_variables ?? {};
    const config = loadConfig({ ...env, PORT: '8080' });
    assert.equal(config.store, 'valkey');
    assert.equal(config.datastore, 'sync');
    assert.deepEqual(config.valkey, { url: env['VALKEY_URL'], cluster: true });
    // In-transit encryption, with the instance's CA given to Node from a file deployed with the app.
    assert.match(env['VALKEY_URL'] ?? '', /^rediss:\/\//);
    const ca = env['NODE_EXTRA_CA_CERTS'] ?? '';
    assert.ok(ca !== '' && !path.isAbsolute(ca), 'NODE_EXTRA_CA_CERTS names a file relative to the app root');
    assert.doesNotMatch(ca, /\.(pem|key)$/, '.gcloudignore leaves *.pem and *.key out of the upload');
    // A __Host- cookie is refused by browsers unless it is Secure.
    assert.equal(config.cookie.name, '__Host-sessid');
    assert.equal(config.cookie.secure, 'always');
  });

  it('schedules the purge every 30 minutes, at a URL the app handles', () => {
    const cron = parsed().cron;
    assert.deepEqual(cron, [{ url: '/demo/purge', schedule: 'every 30 minutes' }]);
    const handlers = parsed().app?.handlers ?? [];
    assert.ok(handlers.some((h) => h.script === 'auto' && new RegExp(`^(?:${h.url})$`).test('/demo/purge')));
  });

  describe('the check itself', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gae-yaml-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('rejects a misspelt app.yaml attribute and a cron schedule outside the grammar', () => {
      const appYaml = path.join(dir, 'app.yaml');
      const cronYaml = path.join(dir, 'cron.yaml');
      writeFileSync(appYaml, 'runtime: nodejs22\nhandlers:\n- url: /.*\n  scritp: auto\n');
      writeFileSync(cronYaml, 'cron:\n- url: /demo/purge\n  schedule: every 30 minutos\n');
      const { errors } = parse(appYaml, cronYaml);
      assert.equal(errors.length, 2, errors.join('\n'));
      assert.match(errors[0] ?? '', /scritp/);
      assert.match(errors[1] ?? '', /every 30 minutos/);
    });
  });
});
