/**
 * The whole demo in a real browser (Chromium, headless): a failed login shows its error, a
 * login counts the views 1, 2, 3, the cookie is invisible to scripts, logout shows the login
 * form again, and the page raises no console error (a CSP violation would be one). The same
 * walk runs with the in-memory store, with memcache + a synchronous Datastore backup, and with
 * Datastore alone.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { missing, sharedDatastoreEmulator, sharedMemcached } from '../support/services.js';
import { browserMissing, launchBrowser } from './browser.js';
import { startDemo, submit, type Demo } from './demo-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = 'screenshot-logged-in.png';

/** Walks through the demo as a user would, one step per subtest. */
async function walkThroughDemo(t: TestContext, browser: Browser, demo: Demo, screenshot?: string): Promise<void> {
  const context = await browser.newContext({ viewport: { width: 640, height: 560 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location().url;
    // The failed login answers 401 on purpose; Chromium reports every 4xx document as an error.
    if (/status of 401/.test(message.text()) && new URL(where).pathname === '/demo/login') return;
    consoleErrors.push(`${message.text()} (${where})`);
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  const sessionCookie = async () => (await context.cookies()).find((cookie) => cookie.name === 'sessid');

  try {
    await t.test('an anonymous visit shows the login form and sets no cookie', async () => {
      const response = await page.goto(`${demo.url}/demo`);
      assert.equal(response?.status(), 200);
      assert.equal(await page.locator('form[action="/demo/login"]').count(), 1);
      assert.deepEqual(await context.cookies(), []);
    });

    await t.test('a wrong password shows the error and creates no session', async () => {
      await page.getByLabel('User name').fill('Ada Lovelace');
      await page.getByLabel('Password').fill('not the password');
      const response = await submit(page, 'Log in', '/demo/login');
      assert.equal(response, 401);
      assert.equal(await page.getByTestId('login-error').textContent(), 'Wrong user name or password.');
      assert.equal(await page.getByLabel('User name').inputValue(), 'Ada Lovelace');
      assert.equal(await sessionCookie(), undefined);
    });

    await t.test('logging in greets the user and counts the first view', async () => {
      await page.getByLabel('Password').fill('a');
      assert.equal(await submit(page, 'Log in', '/demo/login'), 303);
      await page.getByTestId('visit-count').waitFor();
      assert.equal(new URL(page.url()).pathname, '/demo');
      assert.equal(await page.getByTestId('user-name').textContent(), 'Ada Lovelace');
      assert.equal(await page.getByTestId('visit-count').textContent(), '1');
    });

    await t.test('each reload counts one more view', async () => {
      for (const expected of ['2', '3']) {
        await page.reload();
        assert.equal(await page.getByTestId('visit-count').textContent(), expected);
      }
      if (screenshot) await page.screenshot({ path: screenshot });
    });

    await t.test('the session cookie is HttpOnly, SameSite=Lax and holds only an ID', async () => {
      const cookie = await sessionCookie();
      assert.ok(cookie, 'the browser keeps a sessid cookie');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Lax');
      assert.equal(cookie.path, '/');
      assert.match(cookie.value, /^[A-Za-z0-9_-]{24}$/);
      const visibleToScripts = await page.evaluate('document.cookie');
      assert.equal(typeof visibleToScripts, 'string');
      assert.ok(!String(visibleToScripts).includes('sessid'), `document.cookie shows ${String(visibleToScripts)}`);
    });

    await t.test('logging out shows the login form and drops the cookie', async () => {
      assert.equal(await submit(page, 'Log out', '/demo/logout'), 303);
      await page.locator('form[action="/demo/login"]').waitFor();
      assert.equal(await page.getByTestId('user-name').count(), 0);
      assert.equal(await sessionCookie(), undefined);
      await page.reload();
      assert.equal(await page.locator('form[action="/demo/login"]').count(), 1, 'still logged out after a reload');
    });

    await t.test('the pages raised no console errors (CSP violations included)', () => {
      assert.deepEqual(consoleErrors, []);
    });

    await t.test('the server logged no warnings or errors', () => {
      assert.deepEqual(demo.problems, []);
    });
  } finally {
    await context.close();
  }
}

/** Sets process environment variables; the returned function puts the old values back. */
function setEnv(values: Record<string, string>): () => void {
  const saved = Object.entries(values).map(([name]) => [name, process.env[name]] as const);
  Object.assign(process.env, values);
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

const noBrowser = browserMissing();

describe('the demo in a real browser', { skip: noBrowser }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  it('works with the in-memory store', async (t) => {
    const demo = await startDemo({ SESSION_STORE: 'memory' });
    // Always written to test-results/; docs/ gets it when missing or when asked to update it.
    const shot = path.join(root, 'test-results', SCREENSHOT);
    mkdirSync(path.dirname(shot), { recursive: true });
    try {
      await walkThroughDemo(t, browser, demo, shot);
    } finally {
      await demo.stop();
    }
    const docs = path.join(root, 'docs', SCREENSHOT);
    if (!existsSync(docs) || process.env['UPDATE_SCREENSHOTS'] === '1') copyFileSync(shot, docs);
  });

  /** The App Engine store's modes, on the run's memcached and Datastore emulator. */
  const appEngineStores: [string, (memcached: string) => Record<string, string>][] = [
    [
      'memcache and a synchronous Datastore backup',
      (memcached) => ({
        SESSION_STORE: 'memcache',
        SESSION_DATASTORE: 'sync',
        MEMCACHE_SERVERS: memcached,
      }),
    ],
    ['Datastore only', () => ({ SESSION_STORE: 'datastore' })],
  ];
  for (const [name, storeEnv] of appEngineStores) {
    it(`works with ${name}`, { skip: missing('memcached', 'datastore-emulator') }, async (t) => {
      const memcached = await sharedMemcached();
      const emulator = await sharedDatastoreEmulator();
      await memcached.flush();
      await emulator.reset();
      // The Google client reads these from the process environment.
      const restoreEnv = setEnv({
        DATASTORE_EMULATOR_HOST: emulator.address,
        DATASTORE_PROJECT_ID: 'e2e-test',
        GOOGLE_CLOUD_PROJECT: 'e2e-test',
      });
      try {
        const demo = await startDemo(storeEnv(memcached.address));
        try {
          await walkThroughDemo(t, browser, demo);
        } finally {
          await demo.stop();
        }
      } finally {
        restoreEnv();
      }
    });
  }
});
