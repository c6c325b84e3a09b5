/**
 * A session's life in the demo over HTTP: which cookies are looked up at all, rotation, "log
 * out everywhere" (racing a login too), the absolute lifetime, and the memory store's cap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clearsCookie,
  get,
  isValidId,
  login,
  LOGIN_FORM,
  manualClock,
  post,
  postWith,
  sessionCookieOf,
  startApp,
  testId,
  view,
  type TestApp,
} from './harness.js';

/** Asserts that this Cookie header gets the anonymous page, a cleared cookie and no store lookup. */
async function refusedUnseen(app: TestApp, cookie: string): Promise<void> {
  const lookups = app.store.lookups.length;
  const response = await get(app, '/demo', { Cookie: cookie });
  const html = await response.text();
  assert.equal(response.status, 200, cookie);
  assert.match(html, LOGIN_FORM, cookie);
  assert.ok(clearsCookie(sessionCookieOf(response)), `${cookie}: cookie not cleared`);
  assert.deepEqual(app.store.lookups.slice(lookups), [], `${cookie}: looked up`);
}

describe('session cookies the demo never looks up', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('two sessid cookies: anonymous and cleared, even when both name live sessions', async () => {
    const ann = await login(app, 'ann');
    const bob = await login(app, 'bob');
    for (const cookie of [
      `sessid=${ann}; sessid=${bob}`,
      `sessid=${ann}; sessid=${ann}`,
      `sessid=${ann}; sessid=garbage`,
      `sessid=garbage; sessid=${ann}`,
      `sessid=${ann}; other=1; sessid=`,
    ]) {
      await refusedUnseen(app, cookie);
    }
    assert.equal(testId((await view(app, ann)).html, 'visit-count'), '1', 'both sessions are untouched');
    assert.equal(testId((await view(app, bob)).html, 'visit-count'), '1');
  });

  it('a live ID quoted, percent-encoded or as j: JSON: anonymous and cleared, never looked up', async () => {
    const id = await login(app, 'ann');
    const percent = id.replace(/[A-Za-z]/, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    for (const cookie of [
      `sessid="${id}"`,
      `sessid=${percent}`,
      `sessid=${[...id].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join('')}`,
      `sessid=j:"${id}"`,
      `sessid=j:${JSON.stringify({ id })}`,
      `sessid=j:["${id}"]`,
    ]) {
      await refusedUnseen(app, cookie);
    }
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '1', 'the bare ID still works');
  });
});

describe('rotating the session ID', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('sets a new cookie, kills the old ID at once, and the count continues', async () => {
    const old = await login(app, 'ann');
    await view(app, old);
    const before = await view(app, old);
    assert.equal(testId(before.html, 'visit-count'), '2');

    const response = await postWith(app, '/demo/rotate', old);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/demo');
    const cookie = sessionCookieOf(response);
    assert.ok(isValidId(cookie.value));
    assert.notEqual(cookie.value, old);
    assert.equal(cookie.attributes.get('path'), '/');
    assert.equal(cookie.attributes.get('httponly'), '');

    assert.equal(await app.memory.load(old), undefined, 'the old ID is gone from the store');
    const stale = await view(app, old);
    assert.match(stale.html, LOGIN_FORM, 'the old cookie is anonymous');
    assert.ok(clearsCookie(sessionCookieOf(stale.response)));

    const after = await view(app, cookie.value);
    assert.equal(testId(after.html, 'user-name'), 'ann');
    assert.equal(testId(after.html, 'visit-count'), '3', 'the count continues');
    assert.equal(testId(after.html, 'session-count'), '1', 'still one session, not two');
    assert.equal(testId(after.html, 'session-deadline'), testId(before.html, 'session-deadline'));
  });

  it('does not bring back a session logged out elsewhere while the rotation ran', async () => {
    const id = await login(app, 'zed');
    await view(app, id);
    const sessions = app.memory.size;
    // Another instance logs the session out just after this request loaded it.
    app.store.beforeRemove = async (removing, token) => {
      app.store.beforeRemove = undefined;
      if (token !== undefined) await app.memory.remove(removing);
    };
    try {
      const response = await postWith(app, '/demo/rotate', id);
      assert.equal(response.status, 303);
      const cookies = response.headers.getSetCookie().map((header) => header.split(';')[0] ?? '');
      const revived = cookies.map((pair) => pair.slice('sessid='.length)).filter((value) => value !== '');
      for (const newId of revived) {
        assert.match((await view(app, newId)).html, LOGIN_FORM, 'the logged-out session came back under a new ID');
      }
      assert.equal(app.memory.size, sessions - 1, 'no session in its place');
      assert.equal(await app.memory.load(id), undefined);
    } finally {
      app.store.beforeRemove = undefined;
    }
  });

  it('does nothing for an anonymous visitor', async () => {
    const sessions = app.memory.size;
    for (const headers of [{}, { Cookie: 'sessid=garbage' }] as Record<string, string>[]) {
      const response = await post(app, '/demo/rotate', {}, headers);
      await response.arrayBuffer();
      assert.equal(response.status, 303);
      assert.equal(
        response.headers.getSetCookie().filter((c) => !c.startsWith('sessid=;')).length,
        0,
        'no session cookie',
      );
    }
    assert.equal(app.memory.size, sessions);
  });
});

describe('logging out everywhere', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('ends both logins of a user (two cookie jars), and no one else’s', async () => {
    const first = await login(app, 'grace');
    const second = await login(app, 'grace');
    const other = await login(app, 'alan');
    assert.equal(testId((await view(app, first)).html, 'session-count'), '2');
    assert.equal(testId((await view(app, second)).html, 'session-count'), '2');
    assert.equal(testId((await view(app, other)).html, 'session-count'), '1');

    const response = await postWith(app, '/demo/logout-all', first);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/demo');
    assert.ok(clearsCookie(sessionCookieOf(response)));

    for (const id of [first, second]) {
      const { html, response: page } = await view(app, id);
      assert.match(html, LOGIN_FORM);
      assert.ok(clearsCookie(sessionCookieOf(page)));
      assert.equal(await app.memory.load(id), undefined);
    }
    assert.equal(testId((await view(app, other)).html, 'visit-count'), '2', 'another user stays logged in');
  });

  it('does nothing for an anonymous visitor', async () => {
    const id = await login(app, 'ada');
    const response = await post(app, '/demo/logout-all', {});
    await response.arrayBuffer();
    assert.equal(response.status, 303);
    assert.deepEqual(response.headers.getSetCookie(), []);
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '1');
  });

  it('racing a login: sessions from before are gone, a login after it stays', async () => {
    app.store.latencyMs = 20;
    try {
      const before = await Promise.all([login(app, 'race'), login(app, 'race'), login(app, 'race')]);
      const [, racing] = await Promise.all([postWith(app, '/demo/logout-all', before[0] ?? ''), login(app, 'race')]);
      for (const id of before) assert.match((await view(app, id)).html, LOGIN_FORM, 'a session from before is gone');

      const later = await login(app, 'race');
      const racingAlive = (await app.memory.load(racing)) !== undefined;
      const { html } = await view(app, later);
      assert.equal(testId(html, 'visit-count'), '1', 'a login after logout-all finished stays');
      // The racing login may have landed before or after the sweep; the count says which.
      assert.equal(testId(html, 'session-count'), racingAlive ? '2' : '1');
    } finally {
      app.store.latencyMs = 0;
    }
  });
});

describe('SESSION_MAX_LIFETIME_SECONDS', () => {
  it('ends a session kept busy at creation + lifetime', async () => {
    const clock = manualClock();
    const app = await startApp({
      env: { SESSION_TIMEOUT_SECONDS: '60', SESSION_MAX_LIFETIME_SECONDS: '120' },
      now: clock.now,
    });
    try {
      const created = clock.now();
      const id = await login(app, 'ann');
      let count = 0;
      for (let elapsed = 0; elapsed < 120_000; elapsed += 30_000) {
        const { html } = await view(app, id);
        assert.equal(testId(html, 'visit-count'), String(++count), `alive ${elapsed / 1000} s after login`);
        assert.equal(
          testId(html, 'session-deadline'),
          new Date(created + 120_000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
        );
        clock.advance(30_000);
      }
      const { response, html } = await view(app, id);
      assert.match(html, LOGIN_FORM, 'gone at 120 s, busy as it was');
      assert.ok(clearsCookie(sessionCookieOf(response)));
    } finally {
      await app.close();
    }
  });

  it('is not extended by rotation: a rotated session dies at the same moment', async () => {
    const clock = manualClock();
    const app = await startApp({
      env: { SESSION_TIMEOUT_SECONDS: '60', SESSION_MAX_LIFETIME_SECONDS: '120' },
      now: clock.now,
    });
    try {
      const first = await login(app, 'ann');
      const deadline = testId((await view(app, first)).html, 'session-deadline');
      clock.advance(50_000);
      const rotated = await postWith(app, '/demo/rotate', first);
      const second = sessionCookieOf(rotated).value;
      clock.advance(50_000);
      const { html } = await view(app, second);
      assert.equal(testId(html, 'visit-count'), '2');
      assert.equal(testId(html, 'session-deadline'), deadline);
      clock.advance(19_999);
      assert.equal(testId((await view(app, second)).html, 'visit-count'), '3', 'alive 1 ms before the deadline');
      clock.advance(1);
      assert.match((await view(app, second)).html, LOGIN_FORM, 'gone at creation + lifetime');
    } finally {
      await app.close();
    }
  });

  it('idles out a session left alone for the timeout, before its lifetime', async () => {
    const clock = manualClock();
    const app = await startApp({
      env: { SESSION_TIMEOUT_SECONDS: '60', SESSION_MAX_LIFETIME_SECONDS: '120' },
      now: clock.now,
    });
    try {
      const id = await login(app, 'ann');
      clock.advance(60_000);
      assert.match((await view(app, id)).html, LOGIN_FORM);
    } finally {
      await app.close();
    }
  });
});

describe('MEMORY_STORE_MAX_SESSIONS', () => {
  it('drops the least recently used session when the store is full', async () => {
    const app = await startApp({ env: { MEMORY_STORE_MAX_SESSIONS: '2' } });
    try {
      const first = await login(app, 'ann');
      const second = await login(app, 'bob');
      assert.equal(testId((await view(app, first)).html, 'visit-count'), '1'); // first is now the most recent
      const third = await login(app, 'eve');
      assert.equal(app.memory.size, 2);
      assert.match((await view(app, second)).html, LOGIN_FORM, 'the idle one was dropped');
      assert.equal(testId((await view(app, first)).html, 'visit-count'), '2');
      assert.equal(testId((await view(app, third)).html, 'visit-count'), '1');
    } finally {
      await app.close();
    }
  });
});
