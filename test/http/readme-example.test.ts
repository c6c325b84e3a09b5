/**
 * Keeps README's "own Express app" example true: takes the code block from README.md, points
 * its import at src/session, type-checks it with the project's compiler settings, runs it,
 * and walks login → two views → logout against it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/services.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Inside the project, so that `express` resolves from its node_modules.
const folder = path.join(root, 'node_modules', '.cache', `readme-example-${process.pid}`);
const file = path.join(folder, 'example.ts');

function readmeExample(): string {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.split('## Using the session module in your own Express app')[1] ?? '';
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'README has a ts code block in its "own Express app" section');
  const sessionIndex = path.join(root, 'src', 'session', 'index.js');
  const middleware = path.join(root, 'src', 'express', 'middleware.js');
  return code
    .replace("'./session/index.js'", JSON.stringify(sessionIndex))
    .replace("'./express/middleware.js'", JSON.stringify(middleware));
}

describe("README's Express example", () => {
  before(() => {
    mkdirSync(folder, { recursive: true });
    writeFileSync(file, readmeExample());
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  it('type-checks', { timeout: 120_000 }, () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = [tsc, '--noEmit', '--strict', '--noUncheckedIndexedAccess', '--target', 'ES2022'];
    args.push('--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node', '--skipLibCheck', file);
    const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  it('runs: login, two counted views, logout', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    let exited = false;
    child.once('exit', () => (exited = true));
    try {
      const base = `http://127.0.0.1:${port}`;
      // Until it listens; not past its exit (a crash), nor past the test's own timeout (the
      // loop would outlive the cancelled test and keep the runner from ever finishing).
      const giveUp = Date.now() + 50_000;
      for (let ready = false; !ready;) {
        assert.equal(exited, false, 'the example exited before it listened');
        assert.ok(Date.now() < giveUp, 'the example did not listen within 50 s');
        ready = await fetch(base + '/').then(
          () => true,
          () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 100)),
        );
      }
      assert.deepEqual(await (await fetch(base + '/')).json(), { loggedIn: false });

      const login = await fetch(base + '/login', {
        method: 'POST',
        redirect: 'manual',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'user=ann',
      });
      assert.equal(login.status, 303);
      const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      assert.match(cookie, /^sessid=[A-Za-z0-9_-]{24}$/);

      assert.deepEqual(await (await fetch(base + '/', { headers: { cookie } })).json(), { user: 'ann', count: 1 });
      assert.deepEqual(await (await fetch(base + '/', { headers: { cookie } })).json(), { user: 'ann', count: 2 });

      const logout = await fetch(base + '/logout', { method: 'POST', redirect: 'manual', headers: { cookie } });
      assert.equal(logout.status, 303);
      assert.deepEqual(await (await fetch(base + '/', { headers: { cookie } })).json(), { loggedIn: false });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
