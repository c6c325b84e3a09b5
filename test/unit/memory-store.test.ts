import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SessionCommitter } from '../../src/session/commit.js';
import { CookieManager } from '../../src/session/cookie-manager.js';
import { SessionDraft } from '../../src/session/draft.js';
import { newSessionId } from '../../src/session/id.js';
import type { LogFields, Logger } from '../../src/session/logger.js';
import type { HttpExchange } from '../../src/session/manager.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { ownerHash, type Attributes, type SessionRecord } from '../../src/session/record.js';
import { Session } from '../../src/session/session.js';

type Variables = { count: number };

/** A clock the test moves by hand. */
function manualClock(start = Date.UTC(2026, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

interface NewRecord {
  timeoutSeconds?: number;
  lifetimeSeconds?: number;
  owner?: string;
  now?: number;
  constants?: Attributes;
  variables?: Attributes;
}

/** A new session's first record, as CookieManager.add writes it. */
function newRecord(options: NewRecord = {}): SessionRecord {
  const now = options.now ?? Date.now();
  return SessionDraft.create({
    id: newSessionId(),
    timeoutSeconds: options.timeoutSeconds ?? 60,
    lifetimeSeconds: options.lifetimeSeconds ?? 86_400,
    constants: options.constants ?? { userName: 'ann' },
    variables: options.variables ?? { count: 0 },
    owner: options.owner === undefined ? undefined : ownerHash(options.owner),
    now,
  }).next(now);
}

/** Writes a new record; fails the test unless it was stored. */
async function add(store: MemoryStore, record: SessionRecord): Promise<SessionRecord> {
  const result = await store.write(record, undefined);
  assert.equal(result.status, 'stored');
  return record;
}

/** What a request's handler gets for a loaded session. */
async function load<C extends Attributes = { userName: string }, V extends Attributes = Variables>(
  store: MemoryStore,
  id: string,
): Promise<{ draft: SessionDraft; session: Session<C, V> } | undefined> {
  const loaded = await store.load(id);
  if (!loaded) return undefined;
  const draft = new SessionDraft(loaded.record, loaded.token, false);
  return { draft, session: new Session<C, V>(draft) };
}

/** A logger that remembers what it was told. */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: LogFields }[] } {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) =>
    void lines.push({ level, message, ...(fields && { fields }) });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An HTTP exchange with the given session cookie (or none). */
function exchange(id?: string): HttpExchange {
  return {
    cookieHeader: id === undefined ? undefined : `sessid=${id}`,
    secure: false,
    setCookie: () => {},
  };
}

const cookie = { name: 'sessid', maxAgeSeconds: 600, secure: 'auto' as const };

describe('MemoryStore', () => {
  it('writes, loads, writes again and removes a session', async () => {
    const store = new MemoryStore();
    try {
      const record = await add(store, newRecord());
      assert.equal(store.size, 1);

      const loaded = await load(store, record.id);
      assert.ok(loaded);
      assert.equal(loaded.session.constant('userName'), 'ann');
      assert.equal(loaded.session.get('count'), 0);
      loaded.session.set('count', 7);
      const next = loaded.draft.next(Date.now());
      assert.equal((await store.write(next, loaded.draft.token)).status, 'stored');
      assert.equal((await load(store, record.id))?.session.get('count'), 7);

      assert.equal(await store.remove(record.id), 'removed');
      assert.equal(await store.load(record.id), undefined);
      assert.equal(store.size, 0);
      assert.equal(await store.load(newSessionId()), undefined);
    } finally {
      await store.close();
    }
  });

  it('refuses a new write of an ID it holds, and a write with a stale token', async () => {
    const store = new MemoryStore();
    try {
      const record = await add(store, newRecord());
      assert.deepEqual(await store.write({ ...record, variables: { count: 99 } }, undefined), { status: 'conflict' });
      const first = await store.load(record.id);
      const second = await store.load(record.id);
      assert.ok(first && second);
      assert.equal((await store.write({ ...record, version: 2 }, first.token)).status, 'stored');
      assert.deepEqual(await store.write({ ...record, version: 2 }, second.token), { status: 'conflict' });
      assert.equal(await store.remove(record.id, second.token), 'conflict', 'a remove with a stale token too');
      const latest = await store.load(record.id);
      assert.ok(latest);
      assert.equal(await store.remove(record.id, latest.token), 'removed');
      assert.equal(await store.remove(record.id, latest.token), 'gone', 'a conditional remove of an ended session');
      assert.equal(await store.remove(record.id), 'removed', 'an unconditional one is fine');
    } finally {
      await store.close();
    }
  });

  it('hands out records no request can change: changes that are not saved are not kept', async () => {
    const store = new MemoryStore();
    try {
      const draft = SessionDraft.create({
        id: newSessionId(),
        timeoutSeconds: 60,
        lifetimeSeconds: 60,
        now: Date.now(),
      });
      const session = new Session<Record<string, never>, Variables>(draft);
      session.set('count', 0);
      assert.equal((await store.write(draft.next(Date.now()), undefined)).status, 'stored');
      session.set('count', 99); // the caller's session, after it was stored
      const loaded = await load<Record<string, never>, Variables>(store, session.id);
      assert.ok(loaded);
      loaded.session.set('count', 5); // never saved
      assert.equal((await load(store, session.id))?.session.get('count'), 0);
    } finally {
      await store.close();
    }
  });

  it('counts both of two conflicting saves made through update', async () => {
    const store = new MemoryStore();
    try {
      const record = await add(store, newRecord());
      const first = await load(store, record.id);
      const second = await load(store, record.id);
      assert.ok(first && second);
      first.session.update('count', (c) => (c ?? 0) + 1);
      second.session.update('count', (c) => (c ?? 0) + 1);
      // Two instances: the second one's write conflicts, reloads and replays its update.
      assert.equal(await new SessionCommitter(store).save(first.draft), 'saved');
      assert.equal(await new SessionCommitter(store).save(second.draft), 'saved');
      assert.equal((await load(store, record.id))?.session.get('count'), 2);
    } finally {
      await store.close();
    }
  });

  it('does not bring back a session removed while a request held it', async () => {
    const store = new MemoryStore();
    try {
      const record = await add(store, newRecord());
      const held = await load(store, record.id);
      assert.ok(held);
      await store.remove(record.id);
      held.session.set('count', 1);
      assert.deepEqual(await store.write(held.draft.next(Date.now()), held.draft.token), { status: 'gone' });
      assert.equal(await new SessionCommitter(store).save(held.draft), 'gone');
      assert.equal(await store.load(record.id), undefined);
    } finally {
      await store.close();
    }
  });

  it('expires a session idle for its timeout; a write restarts the idle time, a load does not', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    const committer = new SessionCommitter(store, clock.now);
    try {
      const record = await add(store, newRecord({ timeoutSeconds: 60, now: clock.now() }));
      clock.advance(59_000);
      const first = await load(store, record.id);
      assert.ok(first, 'alive one second before its timeout');
      // Flipped: a load used to count as access. Now only a write does; the core writes an
      // unchanged session again once a quarter of its timeout has passed (a refresh).
      assert.equal(await committer.save(first.draft), 'saved');
      clock.advance(59_000); // 59 s after the last write
      assert.ok(await store.load(record.id), 'the refresh above counted as access');
      clock.advance(1_000); // 60 s after the last write; the load just above did not count
      assert.equal(await store.load(record.id), undefined);
      assert.equal(store.size, 0);
    } finally {
      await store.close();
    }
  });

  it('refuses to save an expired session', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    try {
      const record = await add(store, newRecord({ timeoutSeconds: 60, now: clock.now() }));
      const held = await load(store, record.id);
      assert.ok(held);
      clock.advance(60_000);
      held.session.set('count', 1);
      assert.deepEqual(await store.write(held.draft.next(clock.now()), held.draft.token), { status: 'gone' });
      assert.equal(await new SessionCommitter(store, clock.now).save(held.draft), 'gone');
    } finally {
      await store.close();
    }
  });

  it('ends a session at creation + lifetime however constantly it is read and written', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    const committer = new SessionCommitter(store, clock.now);
    try {
      const created = clock.now();
      const record = await add(store, newRecord({ timeoutSeconds: 60, lifetimeSeconds: 300, now: created }));
      while (clock.now() < created + 290_000) {
        clock.advance(10_000);
        const view = await load(store, record.id);
        assert.ok(view, `alive ${(clock.now() - created) / 1000} s after creation`);
        view.session.update('count', (c) => (c ?? 0) + 1);
        assert.equal(await committer.save(view.draft), 'saved');
        assert.equal(view.session.expires.getTime(), Math.min(clock.now() + 60_000, created + 300_000));
      }
      clock.advance(9_999);
      assert.ok(await store.load(record.id), 'alive 1 ms before its deadline');
      clock.advance(1);
      assert.equal(await store.load(record.id), undefined, 'gone at creation + lifetime');
      assert.equal(store.size, 0);
    } finally {
      await store.close();
    }
  });

  it('removeExpired drops idle sessions and sessions past their lifetime only', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    try {
      const short = await add(store, newRecord({ timeoutSeconds: 10, now: clock.now() }));
      const long = await add(store, newRecord({ timeoutSeconds: 1000, now: clock.now() }));
      const brief = await add(store, newRecord({ timeoutSeconds: 100, lifetimeSeconds: 100, now: clock.now() }));
      clock.advance(10_000);
      assert.equal(store.removeExpired(), 1);
      assert.equal(store.size, 2);
      assert.equal(await store.load(short.id), undefined);
      assert.ok(await store.load(long.id));
      // `brief` is written at 90 s (as if active), yet ends at 100 s: its lifetime.
      clock.advance(80_000);
      const loaded = await store.load(brief.id);
      assert.ok(loaded);
      assert.equal((await store.write({ ...loaded.record, accessed: clock.now() }, loaded.token)).status, 'stored');
      clock.advance(10_000);
      assert.equal(store.removeExpired(), 1);
      assert.ok(await store.load(long.id));
      assert.equal(store.size, 1);
    } finally {
      await store.close();
    }
  });

  it('runs a cleaner that removes expired sessions without any request', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, cleanerIntervalMs: 10 });
    try {
      await add(store, newRecord({ timeoutSeconds: 1, now: clock.now() }));
      await add(store, newRecord({ timeoutSeconds: 1, now: clock.now() }));
      clock.advance(1_000);
      assert.equal(store.size, 2, 'nothing is removed before the cleaner runs');
      await waitFor(() => store.size === 0);
    } finally {
      await store.close();
    }
  });

  it('stops its cleaner on close', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, cleanerIntervalMs: 5 });
    await add(store, newRecord({ timeoutSeconds: 1, now: clock.now() }));
    await store.close();
    clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 50)); // ten cleaner intervals
    assert.equal(store.size, 1);
  });

  it('does not keep the process alive with its cleaner timer', async () => {
    const module = fileURLToPath(new URL('../../src/session/memory-store.ts', import.meta.url));
    const script = `
      const { MemoryStore } = await import(${JSON.stringify(module)});
      new MemoryStore({ cleanerIntervalMs: 10 });
      console.log('created');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, s) => resolve([c, s])),
    );
    clearTimeout(killer);
    assert.equal(output.trim(), 'created');
    assert.equal(signal, null, 'the process had to be killed: the cleaner kept it alive');
    assert.equal(code, 0);
  });

  describe('with maxSessions', () => {
    it('drops the least recently used session when full: a loaded one survives, the idle one goes', async () => {
      const logger = recordingLogger();
      const store = new MemoryStore({ maxSessions: 3, logger });
      try {
        const a = await add(store, newRecord({ owner: 'ann' }));
        const b = await add(store, newRecord({ owner: 'bob' }));
        const c = await add(store, newRecord());
        assert.ok(await store.load(a.id)); // a is now the most recently used; b the least
        const d = await add(store, newRecord());
        assert.equal(store.size, 3);
        assert.equal(await store.load(b.id), undefined, 'the idle session was dropped');
        assert.deepEqual(await store.owned(ownerHash('bob')), [], 'and left the owner index');
        for (const kept of [a, c, d]) assert.ok(await store.load(kept.id));

        // A write counts as use too. Order of use now: a, c, d (the loads above).
        const held = await store.load(c.id); // a, d, c
        assert.ok(held);
        assert.ok(await store.load(a.id)); // d, c, a
        assert.ok(await store.load(d.id)); // c, a, d
        assert.equal((await store.write({ ...held.record, version: 2 }, held.token)).status, 'stored'); // a, d, c
        await add(store, newRecord());
        assert.equal(await store.load(a.id), undefined, 'the least recently used one went');
        assert.ok(await store.load(c.id), 'the written one stayed');
        assert.ok(await store.load(d.id));

        const warnings = logger.lines.filter((line) => line.level === 'warn');
        assert.equal(warnings.length, 1, 'the first eviction is logged, not every one');
        assert.deepEqual(warnings[0]?.fields, { maxSessions: 3 });
      } finally {
        await store.close();
      }
    });

    it('holds 10,000 sessions by default', async () => {
      const store = new MemoryStore();
      try {
        const first = await add(store, newRecord());
        for (let i = 1; i < 10_000; i++) await add(store, newRecord());
        assert.equal(store.size, 10_000);
        assert.ok(await store.load(first.id));
        await add(store, newRecord());
        assert.equal(store.size, 10_000);
      } finally {
        await store.close();
      }
    });
  });

  describe('owner index', () => {
    it('finds the live sessions of an owner, and forgets removed and expired ones', async () => {
      const clock = manualClock();
      const store = new MemoryStore({ now: clock.now });
      try {
        const now = clock.now();
        const ann1 = await add(store, newRecord({ owner: 'ann', now }));
        const ann2 = await add(store, newRecord({ owner: 'ann', now, timeoutSeconds: 3600 }));
        const ann3 = await add(store, newRecord({ owner: 'ann', now, timeoutSeconds: 3600 }));
        const bob = await add(store, newRecord({ owner: 'bob', now }));
        await add(store, newRecord({ now })); // no owner
        const ids = async (owner: string): Promise<string[]> =>
          (await store.owned(ownerHash(owner))).map((record) => record.id).sort();

        assert.deepEqual(await ids('ann'), [ann1.id, ann2.id, ann3.id].sort());
        assert.deepEqual(await ids('bob'), [bob.id]);
        assert.deepEqual(await ids('nobody'), []);
        assert.deepEqual(await store.owned('ann'), [], 'the index is by hash, not by name');

        assert.equal(await store.remove(ann3.id), 'removed');
        assert.deepEqual(await ids('ann'), [ann1.id, ann2.id].sort());

        clock.advance(60_000); // ann1 and bob idle out
        assert.deepEqual(await ids('ann'), [ann2.id]);
        assert.deepEqual(await ids('bob'), []);
        // What `owned` gives is the stored record itself.
        assert.deepEqual(await store.owned(ownerHash('ann')), [ann2]);
      } finally {
        await store.close();
      }
    });

    it('ends every session of an owner through CookieManager.removeSessionsOf, no one else’s', async () => {
      const store = new MemoryStore();
      const manager = new CookieManager({ store, cookie, timeoutSeconds: 60 });
      try {
        const ann = [manager.create({}, {}, 'ann'), manager.create({}, {}, 'ann')];
        const bob = manager.create({}, {}, 'bob');
        for (const draft of [...ann, bob]) await manager.add(draft, exchange());
        assert.equal(await manager.removeSessionsOf('ann'), 2);
        for (const draft of ann) assert.equal(await store.load(draft.base.id), undefined);
        assert.ok(await store.load(bob.base.id));
        assert.deepEqual(await store.owned(ownerHash('ann')), []);
        assert.equal(await manager.removeSessionsOf('ann'), 0);
      } finally {
        await manager.close();
      }
    });
  });

  it('logs added, removed and expired sessions, without whole IDs', async () => {
    // 'session added' and 'session removed' are logged by the CookieManager now (the store
    // only stores records); expiry is still the store's.
    const clock = manualClock();
    const logger = recordingLogger();
    const store = new MemoryStore({ now: clock.now, logger });
    const manager = new CookieManager({ store, cookie, timeoutSeconds: 60, logger, now: clock.now });
    try {
      const removed = manager.create();
      const expired = manager.create();
      const swept = manager.create();
      await manager.add(removed, exchange());
      await manager.add(expired, exchange());
      await manager.add(swept, exchange());
      await manager.remove(removed, exchange(removed.base.id));
      clock.advance(60_000);
      assert.equal(await manager.load(exchange(expired.base.id)), undefined);
      store.removeExpired();
      const messages = logger.lines.map((line) => line.message);
      assert.deepEqual(messages, [
        'session added',
        'session added',
        'session added',
        'session removed',
        'session expired',
        'expired sessions removed',
      ]);
      assert.deepEqual(logger.lines.at(-1)?.fields, { count: 1 });
      const text = JSON.stringify(logger.lines);
      for (const draft of [removed, expired, swept])
        assert.equal(text.includes(draft.base.id), false, 'a whole ID was logged');
    } finally {
      await manager.close();
    }
  });

  it('logs nothing by default', async () => {
    const written: string[] = [];
    const original = { log: console.log, info: console.info, warn: console.warn, error: console.error };
    const capture = (...args: unknown[]): void => void written.push(args.join(' '));
    Object.assign(console, { log: capture, info: capture, warn: capture, error: capture });
    try {
      const store = new MemoryStore({ maxSessions: 1 });
      const manager = new CookieManager({ store, cookie, timeoutSeconds: 60 });
      const draft = manager.create();
      await manager.add(draft, exchange());
      await manager.add(manager.create(), exchange()); // full: evicts the first
      await manager.remove(draft, exchange(draft.base.id));
      await manager.close();
    } finally {
      Object.assign(console, original);
    }
    assert.deepEqual(written, []);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('MemoryStore shares records with sessions without letting a request change them', () => {
  it('keeps what is stored when a handler changes an object it got without saving it', async () => {
    type C = { user: { name: string } };
    type V = { tags: string[] };
    const store = new MemoryStore();
    const record = await add(store, newRecord({ constants: { user: { name: 'ann' } }, variables: { tags: ['a'] } }));
    const loaded = await load<C, V>(store, record.id);
    assert.ok(loaded);
    loaded.session.get('tags')?.push('b');
    loaded.session.constant('user').name = 'mallory';
    await new SessionCommitter(store).save(loaded.draft);
    const again = await load<C, V>(store, record.id);
    assert.deepEqual(again?.session.get('tags'), ['a']);
    assert.equal(again?.session.constant('user').name, 'ann');
    await store.close();
  });
});
