import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CookieManager } from '../../src/session/cookie-manager.js';
import { idLength, newSessionId, sessionIdValidator } from '../../src/session/id.js';
import type { HttpExchange } from '../../src/session/manager.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { ownerHash } from '../../src/session/record.js';
import { Session } from '../../src/session/session.js';
import { SessionTooLargeError, StoreUnavailableError } from '../../src/session/store.js';
import { SpyStore } from '../support/spy-store.js';

const cookie = { name: 'sessid', maxAgeSeconds: 600, secure: 'auto' as const };
const CLEARED = /^sessid=; Max-Age=0; Path=\//;

type Exchange = HttpExchange & { set: string[] };

/** An HTTP exchange with this raw Cookie header; remembers Set-Cookie headers. */
function rawExchange(header: string | undefined, secure = false): Exchange {
  const set: string[] = [];
  return { set, secure, cookieHeader: header, setCookie: (h) => void set.push(h) };
}

/** An HTTP exchange whose request carries these cookies, as `name=value` pairs. */
function exchange(cookies: Record<string, string> = {}, secure = false): Exchange {
  const pairs = Object.entries(cookies).map(([name, value]) => `${name}=${value}`);
  return rawExchange(pairs.length === 0 ? undefined : pairs.join('; '), secure);
}

/** A clock the test moves by hand. */
function manualClock(start = Date.UTC(2026, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

function setup(
  options: { idBytes?: number; now?: () => number; timeoutSeconds?: number; lifetimeSeconds?: number } = {},
): { store: SpyStore; memory: MemoryStore; manager: CookieManager } {
  const memory = new MemoryStore({ now: options.now });
  const store = new SpyStore(memory);
  const manager = new CookieManager({
    store,
    cookie,
    timeoutSeconds: options.timeoutSeconds ?? 60,
    lifetimeSeconds: options.lifetimeSeconds,
    idBytes: options.idBytes,
    now: options.now,
  });
  return { store, memory, manager };
}

describe('CookieManager', () => {
  it('makes new sessions with a fresh valid ID, the configured timeout and lifetime', async () => {
    const { manager } = setup();
    const a = new Session(manager.create({ userName: 'ann' }, { count: 0 }));
    const b = new Session(manager.create());
    assert.ok(sessionIdValidator()(a.id));
    assert.notEqual(a.id, b.id);
    assert.equal(a.timeoutSeconds, 60);
    assert.equal(a.deadline.getTime() - a.created.getTime(), 86_400_000, 'a day by default');
    assert.equal(a.constant('userName'), 'ann');
    assert.equal(a.get('count'), 0);
    assert.equal(a.isNew, true);
    await manager.close();

    const long = setup({ timeoutSeconds: 2 * 86_400 }).manager;
    const session = new Session(long.create());
    assert.equal(session.deadline.getTime() - session.created.getTime(), 2 * 86_400_000, 'or the timeout, if longer');
    await long.close();
    const set = setup({ lifetimeSeconds: 3600 }).manager;
    const third = new Session(set.create());
    assert.equal(third.deadline.getTime() - third.created.getTime(), 3_600_000);
    await set.close();
  });

  it('keeps the owner as a hash, never the name itself', async () => {
    const { manager, memory } = setup();
    const draft = manager.create({}, {}, 'ann');
    assert.equal(draft.base.owner, ownerHash('ann'));
    await manager.add(draft, exchange());
    assert.equal((await memory.load(draft.base.id))?.record.owner, ownerHash('ann'));
    assert.equal(manager.create().base.owner, undefined);
    await manager.close();
  });

  it('adds a session and hands its ID to the client in the cookie', async () => {
    const { manager, store } = setup();
    const draft = manager.create();
    const http = exchange();
    await manager.add(draft, http);
    assert.equal(http.set.length, 1);
    assert.match(
      http.set[0] ?? '',
      new RegExp(`^sessid=${draft.base.id}; Max-Age=600; Path=/; HttpOnly; SameSite=Lax$`),
    );
    assert.ok(await store.inner.load(draft.base.id));
    assert.equal(draft.isNew, false);
    assert.equal(draft.base.version, 1);
    await manager.close();
  });

  it('finds the session the cookie names, and sets no cookie for it', async () => {
    const { manager } = setup();
    const draft = manager.create();
    await manager.add(draft, exchange());
    const http = exchange({ sessid: draft.base.id });
    assert.equal((await manager.load(http))?.base.id, draft.base.id);
    assert.deepEqual(http.set, []);
    // Other cookies beside it change nothing.
    const among = rawExchange(`a=1; sessid=${draft.base.id}; b="x"`);
    assert.equal((await manager.load(among))?.base.id, draft.base.id);
    assert.deepEqual(among.set, []);
    await manager.close();
  });

  it('asks nothing and sets nothing when the request has no session cookie', async () => {
    const { manager, store } = setup();
    for (const http of [exchange({ other: newSessionId() }), exchange(), rawExchange('sessidx=1; xsessid=2')]) {
      assert.equal(await manager.load(http), undefined);
      assert.deepEqual(http.set, []);
    }
    assert.deepEqual(store.lookups, []);
    await manager.close();
  });

  it('never looks up a malformed or too long value, and clears the cookie', async () => {
    const { manager, store } = setup();
    const valid = newSessionId();
    const bad = [
      '',
      'x',
      valid + 'A',
      valid.slice(1),
      valid.slice(0, 23) + '=',
      valid.slice(0, 23) + '.',
      'A'.repeat(4096),
      `${valid.slice(0, 20)}%20x`,
      ' '.repeat(24),
      '"' + valid.slice(2) + '"',
    ];
    for (const value of bad) {
      const http = exchange({ sessid: value });
      assert.equal(await manager.load(http), undefined, value);
      assert.equal(http.set.length, 1, value);
      assert.match(http.set[0] ?? '', CLEARED);
    }
    assert.deepEqual(store.lookups, []);
    await manager.close();
  });

  it('never looks up a live ID quoted, percent-encoded, as j: JSON or given twice, and clears the cookie', async () => {
    // Cookie parsers decode these forms to the bare ID; only the exact canonical ID, once, is a
    // session ID.
    const { manager, store } = setup();
    const draft = manager.create();
    await manager.add(draft, exchange());
    const id = draft.base.id;
    const other = manager.create();
    await manager.add(other, exchange());
    const percent = id.replace(/[A-Za-z]/, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const headers = [
      `sessid="${id}"`,
      `sessid=${percent}`,
      `sessid=j:${JSON.stringify(id)}`,
      `sessid=${id}; sessid=${id}`,
      `sessid=${id}; sessid=${other.base.id}`,
      `sessid=${id};sessid=garbage`,
      `sessid=garbage; sessid=${id}`,
      `sessid= ${id} ; sessid=${id}`,
    ];
    for (const header of headers) {
      const http = rawExchange(header);
      assert.equal(await manager.load(http), undefined, header);
      assert.equal(http.set.length, 1, header);
      assert.match(http.set[0] ?? '', CLEARED, header);
    }
    assert.deepEqual(store.lookups, []);
    // Spaces around the one bare ID are not part of the value.
    assert.equal((await manager.load(rawExchange(`sessid= ${id} `)))?.base.id, id);
    await manager.close();
  });

  it('checks the ID length it was configured with', async () => {
    const { manager, store } = setup({ idBytes: 32 });
    const draft = manager.create();
    assert.equal(draft.base.id.length, idLength(32));
    await manager.add(draft, exchange());
    assert.equal(await manager.load(exchange({ sessid: newSessionId() })), undefined); // 18 bytes: wrong length
    assert.deepEqual(store.lookups, []);
    assert.equal((await manager.load(exchange({ sessid: draft.base.id })))?.base.id, draft.base.id);
    await manager.close();
  });

  it('clears the cookie of an unknown ID after one lookup', async () => {
    const { manager, store } = setup();
    const unknown = newSessionId();
    const http = exchange({ sessid: unknown });
    assert.equal(await manager.load(http), undefined);
    assert.deepEqual(store.lookups, [unknown]);
    assert.match(http.set[0] ?? '', /^sessid=; Max-Age=0; Path=\/; HttpOnly; SameSite=Lax; Expires=Thu, 01 Jan 1970/);
    await manager.close();
  });

  it('passes a store outage on, and keeps the cookie', async () => {
    const { manager, store } = setup();
    const draft = manager.create();
    await manager.add(draft, exchange());
    store.failLoad = new StoreUnavailableError('down for the test');
    const http = exchange({ sessid: draft.base.id });
    await assert.rejects(manager.load(http), StoreUnavailableError);
    assert.deepEqual(http.set, [], 'the session may be fine: the cookie stays');
    await manager.close();
  });

  it('removes a session from the store and clears the cookie, Secure over HTTPS', async () => {
    const { manager } = setup();
    const draft = manager.create();
    await manager.add(draft, exchange());
    const http = exchange({ sessid: draft.base.id }, true);
    await manager.remove(draft, http);
    assert.equal(http.set.length, 1);
    assert.match(http.set[0] ?? '', /^sessid=; Max-Age=0; .*; Secure/);
    assert.equal(await manager.load(exchange({ sessid: draft.base.id })), undefined);
    await manager.close();
  });

  it('sets no cookie when the store refuses a new session', async () => {
    const { manager, store } = setup();
    store.failWrite = new Error('store down');
    const http = exchange();
    await assert.rejects(manager.add(manager.create(), http), /store down/);
    assert.deepEqual(http.set, []);
    store.failWrite = new SessionTooLargeError('too large');
    await assert.rejects(manager.add(manager.create(), http), SessionTooLargeError);
    assert.deepEqual(http.set, []);
    await manager.close();
  });

  it('saves changes, and answers gone for a session that ended meanwhile', async () => {
    const { manager, memory } = setup();
    const draft = manager.create({}, { count: 0 });
    await manager.add(draft, exchange());
    const loaded = await manager.load(exchange({ sessid: draft.base.id }));
    assert.ok(loaded);
    new Session(loaded).set('count', 1);
    assert.equal(await manager.save(loaded), 'saved');
    assert.equal((await memory.load(draft.base.id))?.record.variables['count'], 1);
    await memory.remove(draft.base.id);
    new Session(loaded).set('count', 2);
    assert.equal(await manager.save(loaded), 'gone');
    assert.equal(await memory.load(draft.base.id), undefined);
    await manager.close();
  });

  describe('rotate', () => {
    it('gives a new ID and cookie, keeps data and creation time, and kills the old ID', async () => {
      const clock = manualClock();
      const { manager, memory } = setup({ now: clock.now });
      const draft = manager.create({ userName: 'ann' }, { count: 3 }, 'ann');
      await manager.add(draft, exchange());
      const oldId = draft.base.id;
      const created = draft.base.created;
      const deadline = new Session(draft).deadline.getTime();
      clock.advance(5_000);
      const loaded = await manager.load(exchange({ sessid: oldId }));
      assert.ok(loaded);
      const http = exchange({ sessid: oldId }, true);
      assert.equal(await manager.rotate(loaded, http), 'rotated');
      const newId = loaded.base.id;
      assert.notEqual(newId, oldId);
      assert.ok(sessionIdValidator()(newId));
      assert.equal(http.set.length, 1);
      assert.match(
        http.set[0] ?? '',
        new RegExp(`^sessid=${newId}; Max-Age=600; Path=/; HttpOnly; SameSite=Lax; Secure$`),
      );

      assert.equal(await memory.load(oldId), undefined, 'the old ID is dead at once');
      const stored = (await memory.load(newId))?.record;
      assert.ok(stored);
      assert.equal(stored.created, created, 'rotation keeps the creation time');
      assert.equal(new Session(loaded).deadline.getTime(), deadline, 'and so the deadline');
      assert.equal(stored.accessed, clock.now());
      assert.deepEqual(stored.constants, { userName: 'ann' });
      assert.deepEqual(stored.variables, { count: 3 });
      assert.equal(stored.owner, ownerHash('ann'));
      assert.deepEqual(
        (await memory.owned(ownerHash('ann'))).map((r) => r.id),
        [newId],
        'the owner index follows',
      );
      const old = exchange({ sessid: oldId });
      assert.equal(await manager.load(old), undefined);
      assert.match(old.set[0] ?? '', CLEARED);
      await manager.close();
    });

    it('carries over a change another instance wrote meanwhile', async () => {
      const { manager, memory } = setup();
      const draft = manager.create({}, { count: 0 });
      await manager.add(draft, exchange());
      const mine = await manager.load(exchange({ sessid: draft.base.id }));
      const theirs = await manager.load(exchange({ sessid: draft.base.id }));
      assert.ok(mine && theirs);
      new Session(theirs).set('count', 7);
      // Another instance: its own manager on the same store.
      assert.equal(await new CookieManager({ store: memory, cookie, timeoutSeconds: 60 }).save(theirs), 'saved');
      assert.equal(await manager.rotate(mine, exchange()), 'rotated');
      assert.equal((await memory.load(mine.base.id))?.record.variables['count'], 7);
      await manager.close();
    });

    it('answers gone, clears the cookie and creates nothing when the session had ended', async () => {
      const { manager, memory } = setup();
      const draft = manager.create();
      await manager.add(draft, exchange());
      const loaded = await manager.load(exchange({ sessid: draft.base.id }));
      assert.ok(loaded);
      await memory.remove(draft.base.id);
      const http = exchange({ sessid: draft.base.id });
      assert.equal(await manager.rotate(loaded, http), 'gone');
      assert.match(http.set[0] ?? '', CLEARED);
      assert.equal(memory.size, 0);
      await manager.close();
    });
  });

  describe('sessions of an owner', () => {
    it('lists them most recently used first, the current one marked, and never their IDs', async () => {
      const clock = manualClock();
      const { manager } = setup({ now: clock.now });
      const first = manager.create({}, {}, 'ann');
      await manager.add(first, exchange());
      clock.advance(1_000);
      const second = manager.create({}, {}, 'ann');
      await manager.add(second, exchange());
      await manager.add(manager.create({}, {}, 'bob'), exchange());

      const list = await manager.sessionsOf('ann', first);
      assert.equal(list.length, 2);
      assert.deepEqual(
        list.map((s) => s.current),
        [false, true],
      );
      assert.equal(list[0]?.accessed.getTime(), clock.now());
      assert.equal(list[1]?.created.getTime(), clock.now() - 1_000);
      assert.equal(list[1]?.deadline.getTime(), clock.now() - 1_000 + 86_400_000);
      assert.equal(list[1]?.expires.getTime(), clock.now() - 1_000 + 60_000);
      const text = JSON.stringify(list);
      for (const draft of [first, second]) assert.equal(text.includes(draft.base.id), false);
      assert.deepEqual(await manager.sessionsOf('nobody'), []);
      await manager.close();
    });

    it("lists the current session's owner's sessions when no owner is named, and none for a session without one", async () => {
      const { manager } = setup();
      const first = manager.create({}, {}, 'ann');
      await manager.add(first, exchange());
      await manager.add(manager.create({}, {}, 'ann'), exchange());
      await manager.add(manager.create({}, {}, 'bob'), exchange());
      const list = await manager.sessionsOf(undefined, first);
      assert.deepEqual(list.map((s) => s.current).sort(), [false, true]);
      const ownerless = manager.create({}, {});
      await manager.add(ownerless, exchange());
      assert.deepEqual(await manager.sessionsOf(undefined, ownerless), []);
      assert.deepEqual(await manager.sessionsOf(undefined), []);
      await manager.close();
    });

    it('lists the current session as its save under way leaves it, the listing read at once', async () => {
      const clock = manualClock();
      const { manager, store } = setup({ now: clock.now });
      const draft = manager.create({}, { count: 0 }, 'ann');
      await manager.add(draft, exchange());
      clock.advance(5_000);
      const loaded = await manager.load(exchange({ sessid: draft.base.id }));
      assert.ok(loaded);
      new Session<Record<string, never>, { count: number }>(loaded).update('count', (c) => (c ?? 0) + 1);
      store.latencyMs = 20;
      const saving = manager.save(loaded);
      const [list] = await Promise.all([manager.sessionsOf('ann', loaded, saving), saving]);
      assert.equal(list.length, 1);
      assert.equal(list[0]?.current, true);
      assert.equal(list[0]?.accessed.getTime(), clock.now(), 'last seen: this view, as saved');
      await manager.close();
    });

    it('ends all of them, clears the cookie of the request that asked, and counts them', async () => {
      const { manager, memory } = setup();
      const ann = [manager.create({}, {}, 'ann'), manager.create({}, {}, 'ann')];
      const bob = manager.create({}, {}, 'bob');
      for (const draft of [...ann, bob]) await manager.add(draft, exchange());
      const http = exchange({ sessid: ann[0]?.base.id ?? '' });
      assert.equal(await manager.removeSessionsOf('ann', http), 2);
      assert.match(http.set[0] ?? '', CLEARED);
      for (const draft of ann) assert.equal(await memory.load(draft.base.id), undefined);
      assert.ok(await memory.load(bob.base.id));
      await manager.close();
    });
  });

  it('ends a session at creation + lifetime however busy it is', async () => {
    const clock = manualClock();
    const { manager } = setup({ now: clock.now, timeoutSeconds: 60, lifetimeSeconds: 120 });
    const draft = manager.create({}, { count: 0 });
    await manager.add(draft, exchange());
    for (let second = 20; second < 120; second += 20) {
      clock.advance(20_000);
      const loaded = await manager.load(exchange({ sessid: draft.base.id }));
      assert.ok(loaded, `alive at ${second} s`);
      new Session(loaded).update('count', (c) => (typeof c === 'number' ? c : 0) + 1);
      assert.equal(await manager.save(loaded), 'saved');
    }
    clock.advance(20_000);
    const late = exchange({ sessid: draft.base.id });
    assert.equal(await manager.load(late), undefined, 'gone at 120 s');
    assert.match(late.set[0] ?? '', CLEARED);
    await manager.close();
  });
});
