/**
 * What the session middleware promises any route, checked over HTTP with routes of the
 * test's own (and the demo's where it shows): a route that reads or adds a session gets a
 * private page and its changes saved before the response; a store outage is a 503, never
 * "logged out"; a save that fails is reported, not retried; a session that ended meanwhile
 * is a 409.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import express, { type Express } from 'express';
import type { AddressInfo } from 'node:net';
import { newSessionId } from '../../src/session/id.js';
import { SessionContentionError, SessionTooLargeError, StoreUnavailableError } from '../../src/session/store.js';
import {
  get,
  login,
  LOGIN_FORM,
  post,
  postWith,
  sessionCookieOf,
  startApp,
  startSessionApp,
  testId,
  view,
  type TestApp,
} from './harness.js';

type Variables = { step: number; note: string };

/** Routes that use the session the ways a handler can; `endElsewhere` logs a session out behind the request's back. */
function routes(app: Express, endElsewhere: (id: string) => Promise<unknown>): void {
  // Creates and adds a session without reading the request's first, then changes it.
  app.post('/make', async (req, res) => {
    const session = req.sessions.create<{ user: string }, Variables>({ user: 'ann' }, { step: 1 }, { owner: 'ann' });
    await req.sessions.add(session);
    session.set('step', 2);
    res.json({ id: session.id });
  });
  // Reads the session and changes it; the middleware saves at the end.
  app.post('/step', async (req, res) => {
    const session = await req.sessions.get<{ user: string }, Variables>();
    if (!session) {
      res.status(401).json({});
      return;
    }
    session.update('step', (step) => (step ?? 0) + 1);
    res.json({ step: session.get('step') });
  });
  // Saves explicitly, then changes again (or not).
  app.post('/save-then', async (req, res) => {
    const session = await req.sessions.get<{ user: string }, Variables>();
    if (!session) {
      res.status(401).json({});
      return;
    }
    session.update('step', (step) => (step ?? 0) + 1);
    const outcome = await req.sessions.save();
    if (req.query['again'] === '1') session.set('note', 'after save');
    res.json({ outcome });
  });
  // Starts a save and does not wait for it.
  app.post('/save-unawaited', async (req, res) => {
    const session = await req.sessions.get<{ user: string }, Variables>();
    session?.update('step', (step) => (step ?? 0) + 1);
    void req.sessions.save();
    res.json({ ok: true });
  });
  // Reads only.
  app.get('/peek', async (req, res) => {
    const session = await req.sessions.get<{ user: string }, Variables>();
    res.json({ step: session?.get('step') ?? null });
  });
  // Changes the session, and another instance logs it out before the response.
  app.post('/lose', async (req, res) => {
    const session = await req.sessions.get<{ user: string }, Variables>();
    if (!session) {
      res.status(401).json({});
      return;
    }
    session.set('note', 'lost');
    await endElsewhere(session.id);
    res.json({ ok: true });
  });
  // Never touches sessions.
  app.get('/plain', (_req, res) => {
    res.type('text/plain').send('plain\n');
  });
}

describe('the session middleware on routes of your own', () => {
  let app: TestApp;
  before(async () => {
    app = await startSessionApp((express) => routes(express, (id) => app.memory.remove(id)));
  });
  after(() => app.close());

  /** A stored session, and its cookie header. */
  async function make(): Promise<{ id: string; cookie: string }> {
    const response = await post(app, '/make', {});
    assert.equal(response.status, 200);
    const { id } = (await response.json()) as { id: string };
    assert.equal(sessionCookieOf(response).value, id);
    return { id, cookie: `sessid=${id}` };
  }

  const stored = async (id: string): Promise<Record<string, unknown> | undefined> =>
    (await app.memory.load(id))?.record.variables;

  it('gives a route that adds a session without get() a private page, and saves its later changes', async () => {
    const response = await post(app, '/make', {});
    const { id } = (await response.json()) as { id: string };
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.match(response.headers.get('vary') ?? '', /\bCookie\b/i);
    // The change made after add() is stored before the response arrived.
    assert.deepEqual(await stored(id), { step: 2 });
  });

  it('gives a route that reads a session a private page, whether or not there is one', async () => {
    const { cookie } = await make();
    for (const headers of [{}, { Cookie: cookie }, { Cookie: 'sessid=garbage' }] as Record<string, string>[]) {
      const response = await get(app, '/peek', headers);
      await response.arrayBuffer();
      assert.equal(response.headers.get('cache-control'), 'no-store', JSON.stringify(headers));
      assert.match(response.headers.get('vary') ?? '', /\bCookie\b/i, JSON.stringify(headers));
    }
  });

  it("holds the response until a save's durable write has landed, even when the route did not await the save", async () => {
    const { id, cookie } = await make();
    let landed = false;
    // The store's durable tier (a sync Datastore backup) lands 100 ms after the request.
    app.store.durableAfter = new Promise<void>((resolve) =>
      setTimeout(() => {
        landed = true;
        resolve();
      }, 100),
    );
    try {
      const response = await post(app, '/save-unawaited', {}, { Cookie: cookie });
      assert.equal(response.status, 200);
      assert.equal(landed, true, 'the response came after the durable write');
      assert.deepEqual(await stored(id), { step: 3 });
    } finally {
      app.store.durableAfter = undefined;
    }
  });

  it('leaves a route that never asks for its session alone: no store access, no private headers', async () => {
    const { cookie } = await make();
    const lookups = app.store.lookups.length;
    const response = await get(app, '/plain', { Cookie: cookie });
    await response.text();
    assert.equal(response.headers.get('cache-control'), null);
    assert.deepEqual(response.headers.getSetCookie(), []);
    assert.equal(app.store.lookups.length, lookups);
  });

  it("leaves the responses of an app without the middleware alone, though the hook is on Express's shared prototype", async () => {
    const plain = express();
    plain.get('/', (_req, res) => {
      res.type('text/plain').send('plain\n');
    });
    const server = plain.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), 'plain\n');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('saves the changes of a route before its response, with one write', async () => {
    const { id, cookie } = await make();
    const writes = app.store.writes.length;
    const response = await post(app, '/step', {}, { Cookie: cookie });
    assert.deepEqual(await response.json(), { step: 3 });
    assert.deepEqual(await stored(id), { step: 3 });
    assert.equal(app.store.writes.length, writes + 1);
  });

  it('does not write again at the end after an explicit save(), unless something changed since', async () => {
    const { id, cookie } = await make();
    let writes = app.store.writes.length;
    const once = await post(app, '/save-then', {}, { Cookie: cookie });
    assert.deepEqual(await once.json(), { outcome: 'saved' });
    assert.equal(app.store.writes.length, writes + 1);
    assert.deepEqual(await stored(id), { step: 3 });

    writes = app.store.writes.length;
    const twice = await fetch(`${app.base}/save-then?again=1`, { method: 'POST', headers: { Cookie: cookie } });
    assert.deepEqual(await twice.json(), { outcome: 'saved' });
    assert.equal(app.store.writes.length, writes + 2, 'the change after save() is saved at the end');
    assert.deepEqual(await stored(id), { step: 4, note: 'after save' });
  });

  it('answers 503 (not "logged out") when get() cannot reach the store', async () => {
    const { cookie } = await make();
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      const response = await get(app, '/peek', { Cookie: cookie });
      await response.text();
      assert.equal(response.status, 503);
      assert.deepEqual(response.headers.getSetCookie(), [], 'the cookie stays');
    } finally {
      app.store.failLoad = undefined;
    }
  });

  it('answers 503 when the end-of-response save fails, stores nothing and does not try again', async () => {
    const { id, cookie } = await make();
    const writes = app.store.writes.length;
    app.store.failWrite = new SessionContentionError('too busy for the test');
    try {
      const response = await post(app, '/step', {}, { Cookie: cookie });
      const body = await response.text();
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      assert.match(body, /could not be saved/);
      assert.doesNotMatch(body, /"step"/, 'the page showing the unsaved change is not sent');
    } finally {
      app.store.failWrite = undefined;
    }
    assert.equal(app.store.writes.length, writes + 1, 'one write: the one that failed');
    assert.deepEqual(await stored(id), { step: 2 });
  });

  it('answers 500 with the reason when a session is too large to store', async () => {
    const { id, cookie } = await make();
    app.store.failWrite = new SessionTooLargeError('over the 1 MB item limit');
    try {
      const response = await post(app, '/step', {}, { Cookie: cookie });
      assert.equal(response.status, 500);
      assert.match(await response.text(), /over the 1 MB item limit/);
    } finally {
      app.store.failWrite = undefined;
    }
    assert.deepEqual(await stored(id), { step: 2 });
  });

  it('answers 409 when the session ended before its change could be saved', async () => {
    const { id, cookie } = await make();
    const response = await post(app, '/lose', {}, { Cookie: cookie });
    assert.equal(response.status, 409);
    assert.match(await response.text(), /ended/);
    assert.equal(await app.memory.load(id), undefined, 'the refused change did not bring it back');
  });
});

describe('a session that is only read', () => {
  it('is written again once a quarter of its timeout has passed, and so stays alive', async () => {
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    const app = await startSessionApp((express) => routes(express, (id) => app.memory.remove(id)), {
      env: { SESSION_TIMEOUT_SECONDS: '2' },
    });
    try {
      const made = await post(app, '/make', {});
      const { id } = (await made.json()) as { id: string };
      const peek = async (): Promise<unknown> => {
        const response = await get(app, '/peek', { Cookie: `sessid=${id}` });
        return ((await response.json()) as { step: unknown }).step;
      };
      let writes = app.store.writes.length;
      assert.equal(await peek(), 2);
      assert.equal(app.store.writes.length, writes, 'a read right after a write writes nothing');
      for (let round = 0; round < 3; round++) {
        await sleep(700); // past a quarter of the 2 s timeout
        writes = app.store.writes.length;
        assert.equal(await peek(), 2, `alive after ${(round + 1) * 0.7} s`);
        assert.equal(app.store.writes.length, writes + 1, 'the read refreshed the session');
      }
      // 2.1 s after creation and never changed, but refreshed by its reads: still there.
      assert.ok(await app.memory.load(id));
    } finally {
      await app.close();
    }
  });
});

describe('the demo when saving fails (issue 10, bug 3)', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('answers 503 to a view whose save throws, keeps the count, and does not save twice', async () => {
    const id = await login(app, 'ann');
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '1');
    const writes = app.store.writes.length;
    app.store.failWrite = new SessionContentionError('too busy for the test');
    try {
      const { response, html } = await view(app, id);
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      assert.equal(testId(html, 'visit-count'), undefined, 'no page showing a count that was not kept');
      assert.deepEqual(response.headers.getSetCookie(), [], 'the cookie stays');
    } finally {
      app.store.failWrite = undefined;
    }
    assert.equal(app.store.writes.length, writes + 1, 'one write: the failed save was not retried by the end hook');
    assert.equal((await app.memory.load(id))?.record.variables['count'], 1, 'the change was not applied');
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '2', 'the next view counts on from 1');
  });

  it('answers a login whose session cannot be stored with 503 and no cookie', async () => {
    const sessions = app.memory.size;
    app.store.failWrite = new StoreUnavailableError('down for the test');
    try {
      const response = await post(app, '/demo/login', { username: 'ann', password: 'a' });
      await response.text();
      assert.equal(response.status, 503);
      assert.deepEqual(response.headers.getSetCookie(), []);
    } finally {
      app.store.failWrite = undefined;
    }
    assert.equal(app.memory.size, sessions);
  });
});

describe('the demo while the store cannot be read', () => {
  let app: TestApp;
  before(async () => (app = await startApp()));
  after(() => app.close());

  it('renders the page as logged out with the store-unavailable notice, privately', async () => {
    const id = await login(app, 'ann');
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      const { response, html } = await view(app, id);
      assert.equal(response.status, 200);
      assert.match(html, LOGIN_FORM);
      assert.ok(testId(html, 'store-unavailable'));
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.match(response.headers.get('vary') ?? '', /\bCookie\b/i);
    } finally {
      app.store.failLoad = undefined;
    }
  });

  it('answers 503 to logout, rotate and logout-all, changing nothing', async () => {
    const id = await login(app, 'bob');
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      for (const path of ['/demo/logout', '/demo/rotate', '/demo/logout-all']) {
        const response = await postWith(app, path, id);
        assert.equal(response.status, 503, path);
        assert.equal(response.headers.get('retry-after'), '1', path);
        assert.deepEqual(response.headers.getSetCookie(), [], path);
      }
    } finally {
      app.store.failLoad = undefined;
    }
    assert.equal(testId((await view(app, id)).html, 'visit-count'), '1', 'the session is as it was');
  });

  it('needs no store for an anonymous page or a cookie that is not an ID', async () => {
    app.store.failLoad = new StoreUnavailableError('down for the test');
    try {
      for (const headers of [{}, { Cookie: 'sessid=garbage' }, { Cookie: `other=${newSessionId()}` }] as Record<
        string,
        string
      >[]) {
        const response = await get(app, '/demo', headers);
        assert.equal(response.status, 200, JSON.stringify(headers));
        const html = await response.text();
        assert.match(html, LOGIN_FORM);
        assert.equal(testId(html, 'store-unavailable'), undefined, JSON.stringify(headers));
      }
    } finally {
      app.store.failLoad = undefined;
    }
  });
});
