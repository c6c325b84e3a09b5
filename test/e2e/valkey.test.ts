/**
 * The demo in a real browser (Chromium, headless) with SESSION_STORE=valkey and a synchronous
 * Datastore backup, on the run's standalone Valkey and on its 3-node cluster: a login counts
 * 1, 2; a new session ID keeps the count (3) under a new cookie, and the old ID is dead; a
 * logout shows the login form again. No console error, no warning or error in the server log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Browser } from 'playwright-core';
import { missing, sharedValkey, sharedValkeyCluster } from '../support/services.js';
import { startGaeApp, useEmulator, type CacheServer } from '../integration/helpers.js';
import { browserMissing, launchBrowser } from './browser.js';
import { submit } from './demo-server.js';

const USER = 'Katherine Johnson';

/** The walk, one step per subtest, in a fresh browser context. */
async function walk(t: TestContext, browser: Browser, url: string): Promise<void> {
  const context = await browser.newContext({ viewport: { width: 640, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  const sessionCookie = async () => (await context.cookies()).find((cookie) => cookie.name === 'sessid')?.value;
  const count = () => page.getByTestId('visit-count').textContent();

  try {
    await t.test('logging in shows the user and counts the first view', async () => {
      const response = await page.goto(`${url}/demo`);
      assert.equal(response?.status(), 200);
      assert.equal(await sessionCookie(), undefined, 'an anonymous visit sets no cookie');
      await page.getByLabel('User name').fill(USER);
      await page.getByLabel('Password').fill('a');
      assert.equal(await submit(page, 'Log in', '/demo/login'), 303);
      await page.getByTestId('visit-count').waitFor();
      assert.equal(await page.getByTestId('user-name').textContent(), USER);
      assert.equal(await count(), '1');
      assert.match((await sessionCookie()) ?? '', /^[A-Za-z0-9_-]{24}$/);
    });

    await t.test('a reload counts the second view', async () => {
      await page.reload();
      assert.equal(await count(), '2');
    });

    let oldId: string | undefined;
    await t.test('a new session ID sets a new cookie and the count goes on', async () => {
      oldId = await sessionCookie();
      assert.ok(oldId);
      assert.equal(await submit(page, 'New session ID', '/demo/rotate'), 303);
      await page.getByTestId('visit-count').waitFor();
      const newId = await sessionCookie();
      assert.ok(newId);
      assert.notEqual(newId, oldId);
      assert.equal(await page.getByTestId('user-name').textContent(), USER);
      assert.equal(await count(), '3');
    });

    await t.test('a browser still holding the old ID is logged out', async () => {
      const stale = await browser.newContext();
      try {
        await stale.addCookies([{ name: 'sessid', value: oldId!, url }]);
        const other = await stale.newPage();
        await other.goto(`${url}/demo`);
        assert.equal(await other.locator('form[action="/demo/login"]').count(), 1);
        assert.equal(await other.getByTestId('visit-count').count(), 0);
        const kept = (await stale.cookies()).find((cookie) => cookie.name === 'sessid');
        assert.equal(kept, undefined, 'the old cookie was cleared');
      } finally {
        await stale.close();
      }
    });

    await t.test('logging out shows the login form and drops the cookie', async () => {
      assert.equal(await submit(page, 'Log out', '/demo/logout'), 303);
      await page.locator('form[action="/demo/login"]').waitFor();
      assert.equal(await page.getByTestId('user-name').count(), 0);
      assert.equal(await sessionCookie(), undefined);
      await page.reload();
      assert.equal(await page.locator('form[action="/demo/login"]').count(), 1, 'still logged out after a reload');
    });

    await t.test('the pages raised no console errors', () => {
      assert.deepEqual(consoleErrors, []);
    });
  } finally {
    await context.close();
  }
}

describe('the demo in a real browser on the Valkey store', { skip: browserMissing() }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  const topologies: [string, () => Promise<CacheServer>][] = [
    ['a standalone Valkey', async () => ({ valkeyUrl: (await sharedValkey()).url, cluster: false })],
    ['a 3-node Valkey cluster', async () => ({ valkeyUrl: (await sharedValkeyCluster()).url, cluster: true })],
  ];
  for (const [name, server] of topologies) {
    it(
      `works on ${name} with a synchronous Datastore backup`,
      { skip: missing('valkey', 'datastore-emulator') },
      async (t) => {
        await useEmulator();
        const app = await startGaeApp('sync', await server());
        try {
          await walk(t, browser, app.base);
          await t.test('the server logged no warnings or errors', () => {
            const problems = app.logger.lines.filter((line) => line.level === 'warn' || line.level === 'error');
            assert.deepEqual(problems, []);
          });
        } finally {
          await app.close();
        }
      },
    );
  }
});
