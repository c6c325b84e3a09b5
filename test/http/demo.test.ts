import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newSessionId } from '../../src/session/id.js';
import { StoreUnavailableError } from '../../src/session/store.js';
import {
  clearsCookie,
  get,
  isValidId,
  login,
  LOGIN_FORM,
  LOGOUT_FORM,
  manualClock,
  post,
  sessionCookieOf,
  setCookies,
  startApp,
  testId,
  view,
  type TestApp,
} from './harness.js';

describe('demo over HTTP (in-memory store)', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('redirects / to /demo with 302', async () => {
    const response = await get(app, '/');
    assert.equal(response.status, 302);
    assert.equal(response.headers.get('location'), '/demo');
  });

  it('shows an anonymous visitor the login form, sets no cookie and asks no store', async () => {
    const lookups = app.store.lookups.length;
    const sessions = app.memory.size;
    const response = await get(app, '/demo');
    const html = await response.text();
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(html, LOGIN_FORM);
    assert.doesNotMatch(html, LOGOUT_FORM);
    assert.equal(testId(html, 'user-name'), undefined);
    assert.equal(testId(html, 'login-error'), undefined);
    assert.deepEqual(response.headers.getSetCookie(), []);
    assert.equal(app.store.lookups.length, lookups);
    assert.equal(app.memory.size, sessions);
  });

  it('refuses a wrong password or an empty user name with 401, an error and no session', async () => {
    const sessions = app.memory.size;
    const attempts: Record<string, string>[] = [
      { username: 'ann', password: 'wrong' },
      { username: 'ann', password: '' },
      { username: 'ann', password: 'a ' },
      { username: '', password: 'a' },
      { username: '   ', password: 'a' },
      { password: 'a' },
      {},
    ];
    for (const fields of attempts) {
      const response = await post(app, '/demo/login', fields);
      const html = await response.text();
      assert.equal(response.status, 401, JSON.stringify(fields));
      assert.ok(testId(html, 'login-error'), JSON.stringify(fields));
      assert.match(html, LOGIN_FORM);
      assert.deepEqual(response.headers.getSetCookie(), [], JSON.stringify(fields));
    }
    assert.equal(app.memory.size, sessions);
  });

  it('logs in with 303 to /demo and a session cookie with every SPEC attribute', async () => {
    const response = await post(app, '/demo/login', { username: 'ann', password: 'a' });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/demo');
    assert.equal(response.headers.getSetCookie().length, 1);
    const cookie = sessionCookieOf(response);
    assert.match(cookie.value, /^[A-Za-z0-9_-]{24}$/);
    assert.ok(isValidId(cookie.value));
    assert.equal(cookie.attributes.get('max-age'), '2592000');
    assert.equal(cookie.attributes.get('path'), '/');
    assert.equal(cookie.attributes.get('httponly'), '');
    assert.equal(cookie.attributes.get('samesite')?.toLowerCase(), 'lax');
    assert.equal(cookie.attributes.has('secure'), false, 'plain HTTP: no Secure');
    assert.equal(cookie.attributes.has('domain'), false);
  });

  it('counts views 1, 2, 3 after login and greets the user by name', async () => {
    const id = await login(app, 'ann');
    for (const expected of ['1', '2', '3']) {
      const { response, html } = await view(app, id);
      assert.equal(response.status, 200);
      assert.equal(testId(html, 'user-name'), 'ann');
      assert.equal(testId(html, 'visit-count'), expected);
      assert.match(html, LOGOUT_FORM);
      assert.doesNotMatch(html, LOGIN_FORM);
      assert.deepEqual(response.headers.getSetCookie(), [], 'a known session needs no new cookie');
    }
  });

  it('trims the user name and shows it exactly', async () => {
    const id = await login(app, '  Zoë Ünïcode 漢字  ');
    assert.equal(testId((await view(app, id)).html, 'user-name'), 'Zoë Ünïcode 漢字');
  });

  it('escapes a hostile user name', async () => {
    const hostile = `<script>alert(1)</script>"'&`;
    const id = await login(app, hostile);
    const { html } = await view(app, id);
    assert.equal(testId(html, 'user-name'), hostile);
    assert.equal(html.includes('<script>'), false);
    assert.equal(html.includes(hostile), false);

    // A failed login echoes the name into the form: escaped there too.
    const failed = await (
      await post(app, '/demo/login', { username: `"><img src=x onerror=alert(1)>`, password: 'no' })
    ).text();
    assert.equal(failed.includes('<img'), false);
    assert.equal(failed.includes('"><'), false);
  });

  it('logs out with 303, clears the cookie, and the old cookie is anonymous afterwards', async () => {
    const id = await login(app, 'ann');
    await view(app, id);
    const response = await post(app, '/demo/logout', {}, { Cookie: `sessid=${id}` });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/demo');
    assert.ok(clearsCookie(sessionCookieOf(response)));
    assert.equal(await app.memory.load(id), undefined, 'the session is gone from the store');

    const replay = await view(app, id);
    assert.equal(replay.response.status, 200);
    assert.match(replay.html, LOGIN_FORM);
    assert.equal(testId(replay.html, 'user-name'), undefined);
    assert.ok(clearsCookie(sessionCookieOf(replay.response)));

    const replayedLogout = await post(app, '/demo/logout', {}, { Cookie: `sessid=${id}` });
    assert.equal(replayedLogout.status, 303);
    assert.ok(clearsCookie(sessionCookieOf(replayedLogout)));
  });

  it('logs out an anonymous visitor without any cookie', async () => {
    const response = await post(app, '/demo/logout', {});
    assert.equal(response.status, 303);
    assert.deepEqual(response.headers.getSetCookie(), []);
  });

  it('gives a new ID at every login; the old one stays dead', async () => {
    const first = await login(app, 'ann');
    await post(app, '/demo/logout', {}, { Cookie: `sessid=${first}` });
    const second = await login(app, 'ann');
    assert.notEqual(second, first);
    assert.match((await view(app, first)).html, LOGIN_FORM);
    assert.equal(testId((await view(app, second)).html, 'visit-count'), '1');
  });

  it('replaces the session on a login while logged in: the old ID is dead, the count starts again', async () => {
    const first = await login(app, 'ann');
    await view(app, first);
    await view(app, first);
    const response = await post(app, '/demo/login', { username: 'bob', password: 'a' }, { Cookie: `sessid=${first}` });
    assert.equal(response.status, 303);
    const cookies = setCookies(response).filter((cookie) => cookie.name === 'sessid');
    assert.equal(cookies.length, 1, 'one sessid cookie: the new one');
    const second = cookies[0]?.value ?? '';
    assert.ok(isValidId(second));
    assert.notEqual(second, first);
    assert.equal(await app.memory.load(first), undefined);
    const { html } = await view(app, second);
    assert.equal(testId(html, 'user-name'), 'bob');
    assert.equal(testId(html, 'visit-count'), '1');
    assert.match((await view(app, first)).html, LOGIN_FORM);
  });

  it('serves garbage cookies as anonymous, clears them, and never fails', async () => {
    const valid = newSessionId();
    const garbage = [
      'x',
      '',
      valid + 'A',
      valid.slice(0, 23),
      valid.slice(0, 23) + '=',
      '%00%01%02' + valid.slice(9),
      'A'.repeat(4000),
      'j:{"a":1}',
      'j:1',
      's:forged.signature',
      '"' + valid + '"',
      '%E0%A4%A',
      '../../../../etc/passwd',
      valid, // well-formed but unknown
    ];
    const lookups = app.store.lookups.length;
    for (const value of garbage) {
      const response = await get(app, '/demo', { Cookie: `sessid=${value}` });
      const html = await response.text();
      assert.equal(response.status, 200, value);
      assert.match(html, LOGIN_FORM, value);
      const cookie = sessionCookieOf(response);
      assert.ok(clearsCookie(cookie), `${value}: cookie not cleared`);
    }
    // Only the well-formed bare value reached the store. Flipped: the quoted form (which RFC
    // 6265 allows and cookie-parser unquotes) was looked up too; now only the exact canonical
    // ID, appearing once, is a session ID, so the quoted one is rejected unseen.
    assert.deepEqual(app.store.lookups.slice(lookups), [valid]);
  });

  it('serves an expired session as anonymous and clears its cookie', async () => {
    const clock = manualClock();
    const short = await startApp({ env: { SESSION_TIMEOUT_SECONDS: '60' }, now: clock.now });
    try {
      const id = await login(short, 'ann');
      clock.advance(59_000);
      assert.equal(testId((await view(short, id)).html, 'visit-count'), '1', 'alive just before the timeout');
      clock.advance(59_000);
      assert.equal(testId((await view(short, id)).html, 'visit-count'), '2', 'a view restarts the idle time');
      clock.advance(60_000);
      const expired = await view(short, id);
      assert.equal(expired.response.status, 200);
      assert.match(expired.html, LOGIN_FORM);
      assert.ok(clearsCookie(sessionCookieOf(expired.response)));
      assert.equal(short.memory.size, 0);
    } finally {
      await short.close();
    }
  });

  it('expires sessions after SESSION_TIMEOUT_SECONDS of real time', async () => {
    const short = await startApp({ env: { SESSION_TIMEOUT_SECONDS: '1' } });
    try {
      const id = await login(short, 'ann');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const expired = await view(short, id);
      assert.match(expired.html, LOGIN_FORM);
      assert.ok(clearsCookie(sessionCookieOf(expired.response)));
    } finally {
      await short.close();
    }
  });

  it('uses the configured cookie name and Max-Age', async () => {
    const custom = await startApp({ env: { SESSION_COOKIE_NAME: 'sid', SESSION_COOKIE_MAX_AGE_SECONDS: '120' } });
    try {
      const response = await post(custom, '/demo/login', { username: 'ann', password: 'a' });
      const cookie = sessionCookieOf(response, 'sid');
      assert.equal(cookie.attributes.get('max-age'), '120');
      const page = await (await get(custom, '/demo', { Cookie: `sid=${cookie.value}` })).text();
      assert.equal(testId(page, 'visit-count'), '1');
      // The default name means nothing to this app.
      const other = await (await get(custom, '/demo', { Cookie: `sessid=${cookie.value}` })).text();
      assert.match(other, LOGIN_FORM);
    } finally {
      await custom.close();
    }
  });

  it('takes its password from DEMO_PASSWORD and no longer shows the tip', async () => {
    const custom = await startApp({ env: { DEMO_PASSWORD: 'hunter2' } });
    try {
      const page = await (await get(custom, '/demo')).text();
      assert.equal(page.includes('hunter2'), false, 'a chosen password is never shown');
      assert.equal((await post(custom, '/demo/login', { username: 'ann', password: 'a' })).status, 401);
      assert.equal((await post(custom, '/demo/login', { username: 'ann', password: 'hunter2' })).status, 303);
    } finally {
      await custom.close();
    }
    const page = await (await get(app, '/demo')).text();
    assert.match(page, /<kbd>a<\/kbd>/, 'the default password is shown as a tip');
  });

  it('answers 404 for an unknown path', async () => {
    const response = await get(app, '/nope');
    assert.equal(response.status, 404);
    assert.deepEqual(response.headers.getSetCookie(), []);
  });

  it('serves the stylesheet', async () => {
    const response = await get(app, '/static/style.css');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/css/);
  });
});

describe('the demo while the session store is unreachable', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('renders a logged-in user as anonymous with a notice, and keeps the cookie for later', async () => {
    const id = await login(app, 'ann');
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      const response = await get(app, '/demo', { Cookie: `sessid=${id}` });
      const html = await response.text();
      assert.equal(response.status, 200);
      assert.match(html, LOGIN_FORM);
      assert.notEqual(testId(html, 'store-unavailable'), undefined);
      assert.deepEqual(response.headers.getSetCookie(), [], 'the cookie is not cleared: the session may be fine');
    } finally {
      app.store.failLoad = undefined;
    }
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '1', 'back when the store is');
  });

  it('answers a logout it cannot carry out with 503, and the session can be logged out afterwards', async () => {
    const id = await login(app, 'bob');
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      const response = await post(app, '/demo/logout', {}, { Cookie: `sessid=${id}` });
      assert.equal(response.status, 503);
      assert.deepEqual(response.headers.getSetCookie(), [], 'the cookie stays, so the logout can be retried');
    } finally {
      app.store.failLoad = undefined;
    }
    const retried = await post(app, '/demo/logout', {}, { Cookie: `sessid=${id}` });
    assert.equal(retried.status, 303);
    assert.ok(clearsCookie(sessionCookieOf(retried)));
    assert.match((await view(app, id)).html, LOGIN_FORM, 'the session is gone');
  });
});

describe('purge route (no Datastore)', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('answers 403 without X-Appengine-Cron: true', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { 'X-Appengine-Cron': 'false' },
      { 'X-Appengine-Cron': 'TRUE' },
      { 'X-Appengine-Cron': 'True' },
      { 'X-Appengine-Cron': '1' },
      { 'X-Appengine-Cron': ' true ,' },
      { 'X-Appengine-Cron': 'true, true' },
      { 'X-AppEngine-Cron-Fake': 'true' },
    ];
    for (const headers of attempts) {
      const response = await get(app, '/demo/purge', headers);
      assert.equal(response.status, 403, JSON.stringify(headers));
      assert.equal(JSON.stringify(await response.json()).includes('completed'), false);
    }
  });

  it('answers 200 {"completed":true,"deleted":0} to cron', async () => {
    const response = await get(app, '/demo/purge', { 'X-Appengine-Cron': 'true' });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), { completed: true, deleted: 0 });
  });
});
