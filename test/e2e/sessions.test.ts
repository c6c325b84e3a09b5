/**
 * One user in two browsers (two Chromium contexts, each its own cookie jar): both pages count
 * the two sessions, a new session ID in one keeps its count going under a new cookie, and
 * "Log out everywhere" in one logs the other out too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserMissing, launchBrowser } from './browser.js';
import { startDemo, submit, type Demo } from './demo-server.js';

const USER = 'Grace Hopper';

interface Tab {
  context: BrowserContext;
  page: Page;
  errors: string[];
  sessionCookie(): Promise<string | undefined>;
}

async function openTab(browser: Browser): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width: 640, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  return {
    context,
    page,
    errors,
    sessionCookie: async () => (await context.cookies()).find((cookie) => cookie.name === 'sessid')?.value,
  };
}

async function logIn(tab: Tab, url: string): Promise<void> {
  await tab.page.goto(`${url}/demo`);
  await tab.page.getByLabel('User name').fill(USER);
  await tab.page.getByLabel('Password').fill('a');
  assert.equal(await submit(tab.page, 'Log in', '/demo/login'), 303);
  await tab.page.getByTestId('visit-count').waitFor();
}

const text = (page: Page, testId: string): Promise<string | null> => page.getByTestId(testId).textContent();

describe('one user in two browsers', { skip: browserMissing() }, () => {
  let browser: Browser;
  let demo: Demo;
  let a: Tab;
  let b: Tab;
  before(async () => {
    browser = await launchBrowser();
    demo = await startDemo({ SESSION_STORE: 'memory' });
    a = await openTab(browser);
    b = await openTab(browser);
  });
  after(async () => {
    await a?.context.close();
    await b?.context.close();
    await browser?.close();
    await demo?.stop();
  });

  it('both pages show two sessions once the user has logged in in both', async () => {
    await logIn(a, demo.url);
    assert.equal(await text(a.page, 'session-count'), '1');
    await logIn(b, demo.url);
    assert.equal(await text(b.page, 'user-name'), USER);
    assert.equal(await text(b.page, 'visit-count'), '1');
    assert.equal(await text(b.page, 'session-count'), '2');
    await a.page.reload();
    assert.equal(await text(a.page, 'visit-count'), '2');
    assert.equal(await text(a.page, 'session-count'), '2');
    assert.notEqual(await a.sessionCookie(), await b.sessionCookie());
  });

  it('a new session ID in one browser sets a new cookie, and its count continues', async () => {
    const before = await a.sessionCookie();
    const deadline = await text(a.page, 'session-deadline');
    assert.ok(before);
    assert.equal(await submit(a.page, 'New session ID', '/demo/rotate'), 303);
    await a.page.getByTestId('visit-count').waitFor();
    const after = await a.sessionCookie();
    assert.ok(after);
    assert.notEqual(after, before);
    assert.match(after, /^[A-Za-z0-9_-]{24}$/);
    assert.equal(await text(a.page, 'visit-count'), '3');
    assert.equal(await text(a.page, 'session-count'), '2', 'a new ID, not another session');
    assert.equal(await text(a.page, 'session-deadline'), deadline, 'the lifetime is not extended');

    // The old ID is dead: a browser still holding it is logged out.
    const stale = await browser.newContext();
    try {
      await stale.addCookies([{ name: 'sessid', value: before, url: demo.url }]);
      const page = await stale.newPage();
      await page.goto(`${demo.url}/demo`);
      assert.equal(await page.locator('form[action="/demo/login"]').count(), 1);
    } finally {
      await stale.close();
    }
    await b.page.reload();
    assert.equal(await text(b.page, 'visit-count'), '2', 'the other browser is untouched');
  });

  it('logging out everywhere in one browser logs the other out too', async () => {
    assert.equal(await submit(a.page, 'Log out everywhere', '/demo/logout-all'), 303);
    await a.page.locator('form[action="/demo/login"]').waitFor();
    assert.equal(await a.sessionCookie(), undefined);

    await b.page.reload();
    assert.equal(await b.page.locator('form[action="/demo/login"]').count(), 1, 'B sees the login form');
    assert.equal(await b.page.getByTestId('user-name').count(), 0);
    assert.equal(await b.sessionCookie(), undefined, "B's cookie was cleared");
  });

  it('raised no console errors, and the server logged no warnings or errors', () => {
    assert.deepEqual([...a.errors, ...b.errors], []);
    assert.deepEqual(demo.problems, []);
  });
});
