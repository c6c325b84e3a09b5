import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clearsCookie,
  get,
  getOnNewConnection,
  login,
  LOGIN_FORM,
  post,
  rawRequest,
  sessionCookieOf,
  setCookies,
  startApp,
  testId,
  view,
  type TestApp,
} from './harness.js';

const HTTPS = { 'X-Forwarded-Proto': 'https' };

describe('Secure cookie policy', () => {
  it('auto: Secure behind X-Forwarded-Proto: https, not over plain HTTP', async () => {
    const app = await startApp();
    try {
      const overHttps = await post(app, '/demo/login', { username: 'ann', password: 'a' }, HTTPS);
      const secure = sessionCookieOf(overHttps);
      assert.equal(secure.attributes.has('secure'), true);
      const overHttp = await post(app, '/demo/login', { username: 'ann', password: 'a' });
      assert.equal(sessionCookieOf(overHttp).attributes.has('secure'), false);
      const logout = await post(app, '/demo/logout', {}, { ...HTTPS, Cookie: `sessid=${secure.value}` });
      const cleared = sessionCookieOf(logout);
      assert.ok(clearsCookie(cleared));
      assert.equal(cleared.attributes.has('secure'), true, 'the clearing cookie matches the Secure one');
    } finally {
      await app.close();
    }
  });

  it('always: Secure even over plain HTTP', async () => {
    const app = await startApp({ env: { SESSION_COOKIE_SECURE: 'always' } });
    try {
      const response = await post(app, '/demo/login', { username: 'ann', password: 'a' });
      assert.equal(sessionCookieOf(response).attributes.has('secure'), true);
    } finally {
      await app.close();
    }
  });

  it('never: not Secure even over HTTPS', async () => {
    const app = await startApp({ env: { SESSION_COOKIE_SECURE: 'never' } });
    try {
      const response = await post(app, '/demo/login', { username: 'ann', password: 'a' }, HTTPS);
      assert.equal(sessionCookieOf(response).attributes.has('secure'), false);
    } finally {
      await app.close();
    }
  });
});

describe('response headers', () => {
  let app: TestApp;
  let id: string;
  before(async () => {
    app = await startApp();
    id = await login(app, 'ann');
  });
  after(() => app.close());

  it('sends /demo with Cache-Control: no-store and Vary: Cookie, logged in or not', async () => {
    const requests: Record<string, string>[] = [{}, { Cookie: `sessid=${id}` }, { Cookie: 'sessid=garbage' }];
    for (const headers of requests) {
      const response = await get(app, '/demo', headers);
      assert.equal(response.headers.get('cache-control'), 'no-store', JSON.stringify(headers));
      assert.match(response.headers.get('vary') ?? '', /\bCookie\b/i, JSON.stringify(headers));
    }
  });

  it('sends security headers with every response', async () => {
    const responses: [string, Response][] = [
      ['GET /', await get(app, '/')],
      ['GET /demo', await get(app, '/demo')],
      ['GET /demo logged in', await get(app, '/demo', { Cookie: `sessid=${id}` })],
      ['POST /demo/login 401', await post(app, '/demo/login', { username: '', password: '' })],
      ['POST /demo/login 303', await post(app, '/demo/login', { username: 'x', password: 'a' })],
      [
        'POST /demo/login 403',
        await post(app, '/demo/login', { username: 'x', password: 'a' }, { Origin: 'https://evil.example' }),
      ],
      ['POST /demo/login 413', await post(app, '/demo/login', 'username=' + 'x'.repeat(10_000))],
      ['POST /demo/logout', await post(app, '/demo/logout', {})],
      ['GET /demo/purge 403', await get(app, '/demo/purge')],
      ['GET /demo/purge 200', await get(app, '/demo/purge', { 'X-Appengine-Cron': 'true' })],
      ['GET /static/style.css', await get(app, '/static/style.css')],
      ['GET /nope 404', await get(app, '/nope')],
    ];
    for (const [what, response] of responses) {
      await response.arrayBuffer();
      const headers = response.headers;
      assert.equal(headers.get('x-content-type-options'), 'nosniff', what);
      assert.equal(headers.get('x-frame-options'), 'DENY', what);
      assert.ok(headers.get('referrer-policy'), what);
      const csp = headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/, what);
      assert.match(csp, /frame-ancestors 'none'/, what);
      assert.equal(headers.get('x-powered-by'), null, what);
      assert.equal(headers.get('strict-transport-security'), null, `${what}: no HSTS over plain HTTP`);
    }
    const overHttps = await get(app, '/demo', HTTPS);
    assert.match(overHttps.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
  });
});

describe('cross-site form posts', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  const crossSite: [string, Record<string, string>][] = [
    ['Origin of another site', { Origin: 'https://evil.example' }],
    ['Origin of another port', { Origin: 'http://127.0.0.1:1' }],
    ['Origin: null', { Origin: 'null' }],
    ['a malformed Origin', { Origin: 'not a url' }],
    ['Sec-Fetch-Site: cross-site', { 'Sec-Fetch-Site': 'cross-site' }],
  ];

  for (const [what, headers] of crossSite) {
    it(`refuses a login or logout with ${what}: 403, nothing changes`, async () => {
      const id = await login(app, 'ann');
      assert.equal(testId((await view(app, id)).html, 'visit-count'), '1');
      const sessions = app.memory.size;

      const loginResponse = await post(
        app,
        '/demo/login',
        { username: 'mallory', password: 'a' },
        { ...headers, Cookie: `sessid=${id}` },
      );
      assert.equal(loginResponse.status, 403);
      assert.deepEqual(loginResponse.headers.getSetCookie(), []);
      const logoutResponse = await post(app, '/demo/logout', {}, { ...headers, Cookie: `sessid=${id}` });
      assert.equal(logoutResponse.status, 403);
      assert.deepEqual(logoutResponse.headers.getSetCookie(), []);

      assert.equal(app.memory.size, sessions, 'no session created or removed');
      const { html } = await view(app, id);
      assert.equal(testId(html, 'user-name'), 'ann', 'still logged in as before');
      assert.equal(testId(html, 'visit-count'), '2');
    });
  }

  it('accepts a same-origin post, and one with neither Origin nor Sec-Fetch-Site', async () => {
    const sameOrigin = { Origin: app.base, 'Sec-Fetch-Site': 'same-origin' };
    const first = await post(app, '/demo/login', { username: 'ann', password: 'a' }, sameOrigin);
    assert.equal(first.status, 303);
    const id = sessionCookieOf(first).value;
    const logout = await post(app, '/demo/logout', {}, { ...sameOrigin, Cookie: `sessid=${id}` });
    assert.equal(logout.status, 303);
    assert.ok(clearsCookie(sessionCookieOf(logout)));

    assert.equal(
      (await post(app, '/demo/login', { username: 'ann', password: 'a' }, { 'Sec-Fetch-Site': 'same-origin' })).status,
      303,
    );
    assert.equal(
      (await post(app, '/demo/login', { username: 'ann', password: 'a' }, { 'Sec-Fetch-Site': 'none' })).status,
      303,
    );
    // No header at all: curl, scripts, these tests.
    const body = 'username=ann&password=a';
    const raw = await rawRequest(
      app,
      `POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    assert.equal(raw.status, 303);
  });
});

describe('cross-site check compares the whole origin', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  /** Status of a login POSTed with these headers (Host included: fetch cannot set it). */
  async function loginStatus(headers: Record<string, string>): Promise<number> {
    const body = 'username=ann&password=a';
    const head = Object.entries({ Host: `127.0.0.1:${app.port}`, ...headers })
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    const { status } = await rawRequest(
      app,
      `POST /demo/login HTTP/1.1\r\n${head}Content-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    return status;
  }

  it('refuses an Origin with the right host but another scheme', async () => {
    const sessions = app.memory.size;
    for (const origin of [
      `https://127.0.0.1:${app.port}`,
      `ftp://127.0.0.1:${app.port}`,
      `ws://127.0.0.1:${app.port}`,
    ]) {
      assert.equal(await loginStatus({ Origin: origin }), 403, `${origin} for a plain-HTTP request`);
    }
    // Over HTTPS (the front end says so), the plain-HTTP origin of the same host is another origin.
    assert.equal(await loginStatus({ Origin: `http://127.0.0.1:${app.port}`, ...HTTPS }), 403);
    assert.equal(app.memory.size, sessions, 'no session created');
  });

  it('refuses an Origin with another port, including a default port the request did not use', async () => {
    assert.equal(await loginStatus({ Origin: 'http://127.0.0.1' }), 403);
    assert.equal(await loginStatus({ Host: 'example.com', Origin: 'http://example.com:8080' }), 403);
    assert.equal(await loginStatus({ Host: 'example.com:8443', Origin: 'https://example.com', ...HTTPS }), 403);
  });

  it('refuses Origin: null and origins that are not scheme://host[:port]', async () => {
    for (const origin of [
      'null',
      `http://127.0.0.1:${app.port}/`,
      `http://127.0.0.1:${app.port}/demo`,
      `http://user@127.0.0.1:${app.port}`,
      `http://127.0.0.1:${app.port}, http://127.0.0.1:${app.port}`,
    ]) {
      assert.equal(await loginStatus({ Origin: origin }), 403, origin);
    }
  });

  it('accepts the same origin written with or without its default port, in any letter case', async () => {
    const cases: [string, Record<string, string>][] = [
      ['https, Host with :443', { Host: 'example.com:443', Origin: 'https://example.com', ...HTTPS }],
      ['https, Origin with :443', { Host: 'example.com', Origin: 'https://example.com:443', ...HTTPS }],
      ['http, Host with :80', { Host: 'example.com:80', Origin: 'http://example.com' }],
      ['http, other port', { Host: `127.0.0.1:${app.port}`, Origin: `http://127.0.0.1:${app.port}` }],
      ['letter case', { Host: 'Example.COM', Origin: 'https://example.com', ...HTTPS }],
      ['IPv6', { Host: '[::1]:8443', Origin: 'https://[::1]:8443', ...HTTPS }],
    ];
    for (const [what, headers] of cases) assert.equal(await loginStatus(headers), 303, what);
  });

  it('still falls back to Sec-Fetch-Site when there is no Origin', async () => {
    assert.equal(await loginStatus({ 'Sec-Fetch-Site': 'same-site' }), 403);
    assert.equal(await loginStatus({ 'Sec-Fetch-Site': 'same-origin' }), 303);
  });
});

describe('a __Host- session cookie', () => {
  it('is set with Secure, Path=/ and no Domain, and carries the session', async () => {
    const name = '__Host-sessid';
    const app = await startApp({ env: { SESSION_COOKIE_NAME: name, SESSION_COOKIE_SECURE: 'always' } });
    try {
      const response = await post(app, '/demo/login', { username: 'ann', password: 'a' }, HTTPS);
      assert.equal(response.status, 303);
      const cookie = sessionCookieOf(response, name);
      assert.equal(cookie.attributes.has('secure'), true);
      assert.equal(cookie.attributes.get('path'), '/');
      assert.equal(cookie.attributes.has('domain'), false);
      const page = await get(app, '/demo', { ...HTTPS, Cookie: `${name}=${cookie.value}` });
      assert.equal(testId(await page.text(), 'user-name'), 'ann');
    } finally {
      await app.close();
    }
  });
});

describe('hostile input', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('answers 413 to an oversized form body and creates no session', async () => {
    const sessions = app.memory.size;
    const response = await post(app, '/demo/login', `username=ann&password=a&pad=${'x'.repeat(100_000)}`);
    assert.equal(response.status, 413);
    assert.deepEqual(response.headers.getSetCookie(), []);
    assert.equal(app.memory.size, sessions);
  });

  it('answers 400 to a user name longer than 100 characters, and accepts 100', async () => {
    const sessions = app.memory.size;
    const response = await post(app, '/demo/login', { username: 'n'.repeat(101), password: 'a' });
    const html = await response.text();
    assert.equal(response.status, 400);
    assert.ok(testId(html, 'login-error'));
    assert.deepEqual(response.headers.getSetCookie(), []);
    assert.equal(app.memory.size, sessions);
    const id = await login(app, 'n'.repeat(100));
    assert.equal(testId((await view(app, id)).html, 'user-name'), 'n'.repeat(100));
  });

  it('ignores repeated form fields and odd bodies without failing', async () => {
    const cases = [
      'username=a&username=b&password=a',
      'username[x]=a&password=a',
      'username=%E0%A4%A&password=a',
      '%%%%&&&===',
      'username=ann&password=a&' + Array.from({ length: 50 }, (_, i) => `f${i}=1`).join('&'),
    ];
    for (const body of cases) {
      const response = await post(app, '/demo/login', body);
      await response.arrayBuffer();
      assert.ok(response.status < 500, `${body.slice(0, 40)} → ${response.status}`);
    }
  });

  it('does not let header tricks through the purge route', async () => {
    const ask = (headerLines: string): Promise<{ status: number }> =>
      rawRequest(app, `GET /demo/purge HTTP/1.1\r\nHost: 127.0.0.1\r\n${headerLines}Connection: close\r\n\r\n`);
    assert.equal((await ask('X-Appengine-Cron: true\r\n')).status, 200, 'the real header works over a raw socket');
    assert.equal((await ask('x-appengine-cron: true\r\n')).status, 200, 'header names are case-insensitive');
    for (const lines of [
      'X-Appengine-Cron: true\r\nX-Appengine-Cron: true\r\n',
      'X-Appengine-Cron: true\r\nx-appengine-cron: false\r\n',
      'X-Appengine-Cron: false\r\nX-Appengine-Cron: true\r\n',
      'X-Appengine-Cron: TRUE\r\n',
      'X-Appengine-Cron: True\r\n',
      'X-Appengine-Cron: false\r\n',
      'X-Appengine-Cron:\r\n',
      'X-Appengine-Cron: true\u0000\r\n',
      'X_Appengine_Cron: true\r\n',
      'X-Appengine-Cron : true\r\n',
    ]) {
      const { status } = await ask(lines);
      assert.ok(status === 403 || status === 400, `${JSON.stringify(lines)} → ${status}`);
    }
  });
});

describe('concurrent views of one session (in-memory store)', () => {
  // Without latency the in-memory store answers within one tick and requests never overlap
  // (a last-write-wins store would pass too); with a few ms, views read the same count and
  // save over each other, as with a networked store.
  it('counts 50 views sent 10 at a time over separate connections exactly once each (store latency ≤ 5 ms)', async () => {
    const app = await startApp();
    app.store.latencyMs = 5;
    try {
      const id = await login(app, 'ann');
      const shown: number[] = [];
      for (let batch = 0; batch < 5; batch++) {
        const pages = await Promise.all(
          Array.from({ length: 10 }, () => getOnNewConnection(app, '/demo', { Cookie: `sessid=${id}` })),
        );
        for (const page of pages) {
          assert.equal(page.status, 200);
          shown.push(Number(testId(page.body, 'visit-count')));
        }
      }
      const { html } = await view(app, id);
      assert.equal(testId(html, 'visit-count'), '51', 'the 50 views and this one');
      // Each view shows the count it stored: 1..50, each once.
      assert.deepEqual(
        shown.sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
    } finally {
      await app.close();
    }
  });
});

describe('logging in', () => {
  it('after a rejected cookie sets exactly one sessid cookie: the new session', async () => {
    const app = await startApp();
    try {
      const response = await post(app, '/demo/login', { username: 'ann', password: 'a' }, { Cookie: 'sessid=garbage' });
      assert.equal(response.status, 303);
      const cookies = setCookies(response);
      assert.equal(cookies.length, 1);
      const [cookie] = cookies;
      assert.ok(cookie && !clearsCookie(cookie));
      const { html } = await view(app, cookie.value);
      assert.doesNotMatch(html, LOGIN_FORM);
    } finally {
      await app.close();
    }
  });
});
