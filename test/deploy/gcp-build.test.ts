/**
 * The bundle App Engine builds, built the same way here: the files `gcloud app deploy` would
 * upload (honouring .gcloudignore) are copied to a temporary directory, where the steps of
 * Google's Node.js buildpack run — `npm ci` with dev dependencies, `npm run gcp-build`,
 * `npm prune` of dev dependencies — and the result must start with only PORT set and serve
 * the demo. The slowest test of the suite (about half a minute, mostly `npm ci`).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/services.js';
import { findCloudSdk } from './cloud-sdk.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs a command; on failure the error shows the end of its output. */
function sh(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  return new Promise((resolve, reject) => {
    const limits = { maxBuffer: 64 * 1024 * 1024, timeout: 300_000, encoding: 'utf8' as const };
    execFile(command, args, { ...options, ...limits }, (error, stdout, stderr) => {
      if (!error) resolve(stdout);
      else
        reject(
          new Error(
            `${command} ${args.join(' ')} failed (${error.message.split('\n')[0]}):\n${(stdout + stderr).slice(-4000)}`,
          ),
        );
    });
  });
}

/**
 * Lists the files `gcloud app deploy` would upload from `dir`: gcloud's own answer when the
 * SDK is installed, else git's reading of .gcloudignore (same syntax) over the files git sees.
 */
async function filesForUpload(dir: string): Promise<string[]> {
  const sdk = findCloudSdk();
  if (sdk) {
    const env = { ...process.env, CLOUDSDK_CORE_DISABLE_PROMPTS: '1' };
    const out = await sh(sdk.gcloud, ['meta', 'list-files-for-upload', dir, '--quiet'], { cwd: dir, env });
    return lines(out).map((file) => file.split(path.sep).join('/'));
  }
  const ignore = ['--exclude-from=.gcloudignore'];
  const tracked = lines(await sh('git', ['ls-files', '-c'], { cwd: dir }));
  const trackedIgnored = new Set(lines(await sh('git', ['ls-files', '-c', '-i', ...ignore], { cwd: dir })));
  const untracked = lines(await sh('git', ['ls-files', '-o', ...ignore], { cwd: dir }));
  return [...tracked.filter((file) => !trackedIgnored.has(file)), ...untracked].filter((file) =>
    existsSync(path.join(dir, file)),
  );
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** Why the upload cannot be listed here (no Cloud SDK and not a git checkout), or undefined. */
function listerMissing(): string | undefined {
  if (findCloudSdk() || existsSync(path.join(root, '.git'))) return undefined;
  const message = 'neither the Google Cloud SDK nor a git checkout is here to list the files gcloud would upload';
  if (process.env['CI'] === 'true') throw new Error(`CI=true but ${message}`);
  return `skipped: ${message}`;
}

/** What the upload must leave out: dependencies, build output, repository, secrets, tests, docs, benchmarks. */
const MUST_NOT_UPLOAD: [string, RegExp][] = [
  ['node_modules', /^node_modules\//],
  ['dist (App Engine builds it)', /^dist\//],
  ['the git repository', /^\.git\//],
  ['.env files', /(^|\/)\.env(\..*)?$/],
  ['keys and credentials', /(\.pem|\.key|\.p12)$|(^|\/)(credentials|service-account)[^/]*\.json$/],
  ['tests', /^test\//],
  ['docs', /^docs\//],
  ['benchmarks', /^bench\//],
  ['profiles and logs', /\.(cpuprofile|heapprofile|log)$/],
];

function assertNothingForbidden(files: string[]): void {
  for (const [what, pattern] of MUST_NOT_UPLOAD) {
    const found = files.filter((file) => pattern.test(file));
    assert.deepEqual(found, [], `the upload must not contain ${what}`);
  }
}

/** An environment without the `npm test` run's npm_* settings, as on a build machine. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && name !== 'NODE_OPTIONS' && name !== 'INIT_CWD') env[name] = value;
  }
  return { ...env, ...extra };
}

describe('the App Engine build', { skip: listerMissing() }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'gcp-build-'));
  const app = path.join(work, 'app');
  after(() => rmSync(work, { recursive: true, force: true }));

  it('.gcloudignore keeps dependencies, builds, secrets, tests, docs and benchmarks out of an upload', async () => {
    const sample = path.join(work, 'sample');
    const kept = [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'app.yaml',
      'cron.yaml',
      'src/app/server.ts',
      'views/demo.ejs',
      'public/style.css',
      'certs/memorystore-ca.crt', // the Memorystore CA that app.yaml's NODE_EXTRA_CA_CERTS names
    ];
    const left = [
      'node_modules/express/index.js',
      'dist/app/server.js',
      '.env',
      '.env.production',
      'service-account.json',
      'credentials.json',
      'server.key',
      'test/unit/id.test.ts',
      'test/e2e/demo.test.ts',
      'docs/screenshot-logged-in.png',
      'bench/results.json',
      'scripts/test.mjs',
      'server.cpuprofile',
      'npm-debug.log',
    ];
    for (const file of [...kept, ...left]) {
      mkdirSync(path.dirname(path.join(sample, file)), { recursive: true });
      writeFileSync(path.join(sample, file), 'x');
    }
    copyFileSync(path.join(root, '.gcloudignore'), path.join(sample, '.gcloudignore'));
    if (!findCloudSdk()) await sh('git', ['init', '-q'], { cwd: sample });
    const uploaded = await filesForUpload(sample);
    assertNothingForbidden(uploaded);
    assert.deepEqual(uploaded.sort(), kept.sort());
  });

  let uploaded: string[] = [];
  before(async () => {
    uploaded = await filesForUpload(root);
    for (const file of uploaded) {
      mkdirSync(path.dirname(path.join(app, file)), { recursive: true });
      copyFileSync(path.join(root, file), path.join(app, file));
    }
  });

  it("uploads this checkout's sources and nothing it must not", () => {
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'app.yaml']) {
      assert.ok(uploaded.includes(needed), `the upload lacks ${needed}`);
    }
    for (const folder of ['src/', 'views/', 'public/']) {
      assert.ok(
        uploaded.some((file) => file.startsWith(folder)),
        `the upload lacks ${folder}`,
      );
    }
    assertNothingForbidden(uploaded);
  });

  let built = false;
  it('installs, builds with gcp-build and prunes dev dependencies, as the Node.js buildpack does', async () => {
    // The buildpack installs with NODE_ENV=development when there is a build script to run.
    const env = cleanEnv({ NODE_ENV: 'development' });
    await sh('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, env });
    await sh('npm', ['run', 'gcp-build'], { cwd: app, env });
    await sh('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund'], { cwd: app, env });
    assert.ok(existsSync(path.join(app, 'dist/app/server.js')), 'gcp-build made dist/app/server.js');
    assert.ok(existsSync(path.join(app, 'node_modules/express')), 'runtime dependencies stay');
    assert.ok(!existsSync(path.join(app, 'node_modules/typescript')), 'dev dependencies are pruned');
    built = true;
  });

  it('starts with only PORT set, serves /demo, and stops cleanly on SIGTERM', async (t) => {
    if (!built) {
      t.skip('the build failed');
      return;
    }
    const port = await freePort();
    const server = spawn('npm', ['start'], {
      cwd: app,
      env: { PATH: process.env['PATH'], PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so the cleanup below reaches node too
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    try {
      const page = await getWhenUp(`http://127.0.0.1:${port}/demo`, exited);
      assert.equal(page.status, 200, output);
      assert.match(await page.text(), /<form[^>]*action="\/demo\/login"/);
      const css = await fetch(`http://127.0.0.1:${port}/static/style.css`);
      assert.equal(css.status, 200);
      assert.match(css.headers.get('content-type') ?? '', /text\/css/);

      // App Engine signals the entrypoint; through `npm start` the signal must reach node too.
      server.kill('SIGTERM');
      assert.equal(await exited, 0, `npm start did not exit cleanly after SIGTERM:\n${output}`);
    } finally {
      if (server.pid && server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
    }
  });
});

/** GETs `url` once the server listens; fails if the server exits first or takes too long. */
async function getWhenUp(url: string, exited: Promise<number | null>): Promise<Response> {
  let gone = false;
  void exited.then(() => (gone = true));
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      return await fetch(url);
    } catch (error) {
      if (gone) throw new Error('the server exited before it answered', { cause: error });
      if (Date.now() > until) throw new Error(`no answer from ${url}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
