import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionCommitter } from '../../src/session/commit.js';
import { SessionDraft } from '../../src/session/draft.js';
import { newSessionId } from '../../src/session/id.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import type { SessionRecord } from '../../src/session/record.js';
import { Session } from '../../src/session/session.js';
import {
  SessionContentionError,
  type Loaded,
  type RemoveResult,
  type Store,
  type StoreToken,
  type WriteResult,
} from '../../src/session/store.js';
import { SpyStore } from '../support/spy-store.js';

type Variables = { count: number; note: string };

/** A clock the test moves by hand. */
function manualClock(start = Date.UTC(2026, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

/** Stores a new session (as CookieManager.add does) and returns its ID. */
async function addSession(
  store: Store,
  now = Date.now(),
  variables: Variables = { count: 0, note: '' },
): Promise<string> {
  const draft = SessionDraft.create({
    id: newSessionId(),
    timeoutSeconds: 1800,
    lifetimeSeconds: 86_400,
    variables,
    now,
  });
  const result = await store.write(draft.next(now), undefined);
  assert.equal(result.status, 'stored');
  return draft.base.id;
}

/** What a request does: load the session, wrap it for the handler. */
async function loadSession(
  store: Store,
  id: string,
): Promise<{ draft: SessionDraft; session: Session<Record<string, never>, Variables> }> {
  const loaded = await store.load(id);
  assert.ok(loaded, 'the session is live');
  const draft = new SessionDraft(loaded.record, loaded.token, false, loaded.source);
  return { draft, session: new Session<Record<string, never>, Variables>(draft) };
}

async function countOf(store: Store, id: string): Promise<unknown> {
  return (await store.load(id))?.record.variables['count'];
}

/** Runs `task` `total` times, `parallel` at a time. */
async function inBatches(total: number, parallel: number, task: (index: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < total; start += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, total - start) }, (_, i) => task(start + i)));
  }
}

/**
 * A store another writer always beats: every write conflicts, every load finds the session
 * still there. Counts what it was asked.
 */
class AlwaysConflicting implements Store {
  writes = 0;
  loads = 0;
  constructor(readonly record: SessionRecord) {}
  async load(): Promise<Loaded | undefined> {
    this.loads++;
    return { record: this.record, token: { load: this.loads } };
  }
  async write(_record: SessionRecord, _token: StoreToken | undefined): Promise<WriteResult> {
    this.writes++;
    return { status: 'conflict' };
  }
  async remove(): Promise<RemoveResult> {
    return 'conflict';
  }
  async owned(): Promise<SessionRecord[]> {
    return [];
  }
  async close(): Promise<void> {}
}

describe('SessionCommitter', () => {
  it('loses no update of 50 saves of one session, 10 at a time, through a store with latency', async () => {
    const store = new SpyStore(new MemoryStore());
    store.latencyMs = 5;
    const committer = new SessionCommitter(store);
    try {
      const id = await addSession(store);
      const shown: number[] = [];
      await inBatches(50, 10, async () => {
        const { draft, session } = await loadSession(store, id);
        session.update('count', (c) => (c ?? 0) + 1);
        assert.equal(await committer.save(draft), 'saved');
        // After the save, the session shows what was stored: each view its own count.
        shown.push(session.get('count') ?? 0);
      });
      assert.equal(await countOf(store, id), 50);
      assert.deepEqual(
        shown.sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
    } finally {
      await store.close();
    }
  });

  it('loses no update when two instances (two committers) save one session at once', async () => {
    const store = new SpyStore(new MemoryStore());
    store.latencyMs = 5;
    const instances = [new SessionCommitter(store), new SessionCommitter(store)];
    try {
      const id = await addSession(store);
      await inBatches(50, 10, async (i) => {
        const { draft, session } = await loadSession(store, id);
        session.update('count', (c) => (c ?? 0) + 1);
        assert.equal(await instances[i % 2]?.save(draft), 'saved');
      });
      assert.equal(await countOf(store, id), 50);
      assert.ok(store.writes.length > 51, 'the instances did collide (and reloaded and replayed)');
    } finally {
      await store.close();
    }
  });

  it("answers 'gone' and stores nothing when the session was removed meanwhile", async () => {
    const store = new SpyStore(new MemoryStore());
    const committer = new SessionCommitter(store);
    try {
      const id = await addSession(store);
      const { draft, session } = await loadSession(store, id);
      assert.equal(await store.remove(id), 'removed');
      session.update('count', (c) => (c ?? 0) + 1);
      assert.equal(await committer.save(draft), 'gone');
      assert.equal(await store.load(id), undefined, 'the save did not bring it back');
    } finally {
      await store.close();
    }
  });

  it("answers 'gone' when the session ends between a conflict and the reload", async () => {
    const memory = new MemoryStore();
    // Another instance's write wins, and a logout lands right after it: this request's write
    // conflicts, and its reload finds nothing.
    const racing: Store = {
      load: (id) => memory.load(id),
      write: async (record, token) => {
        const result = await memory.write(record, token);
        if (result.status === 'conflict') await memory.remove(record.id);
        return result;
      },
      remove: (id, token) => memory.remove(id, token),
      owned: (owner) => memory.owned(owner),
      close: () => memory.close(),
    };
    try {
      const id = await addSession(memory);
      const first = await loadSession(memory, id);
      const second = await loadSession(memory, id);
      second.session.set('note', 'other');
      assert.equal(await new SessionCommitter(memory).save(second.draft), 'saved');
      first.session.update('count', (c) => (c ?? 0) + 1);
      assert.equal(await new SessionCommitter(racing).save(first.draft), 'gone');
      assert.equal(await memory.load(id), undefined);
    } finally {
      await racing.close();
    }
  });

  it('gives up with SessionContentionError against a store where every write conflicts', async () => {
    const draft = SessionDraft.create({ id: newSessionId(), timeoutSeconds: 60, lifetimeSeconds: 60, now: Date.now() });
    const record = draft.next(Date.now());
    const store = new AlwaysConflicting(record);
    const loaded = new SessionDraft(record, {}, false);
    new Session(loaded).set('count', 1);
    await assert.rejects(new SessionCommitter(store).save(loaded), SessionContentionError);
    assert.equal(store.writes, 30, 'a bounded number of attempts');
    assert.equal(store.loads, 29, 'a reload between two attempts');
  });

  it('replays an update on the newer value after a conflict, and a set with its own value', async () => {
    const memory = new MemoryStore();
    try {
      const id = await addSession(memory, Date.now(), { count: 10, note: 'old' });
      const mine = await loadSession(memory, id);
      const theirs = await loadSession(memory, id);
      mine.session.update('count', (c) => (c ?? 0) + 1);
      mine.session.set('note', 'mine');
      // Another instance saves first: count 20, note 'theirs'.
      theirs.session.set('count', 20);
      theirs.session.set('note', 'theirs');
      assert.equal(await new SessionCommitter(memory).save(theirs.draft), 'saved');

      assert.equal(await new SessionCommitter(memory).save(mine.draft), 'saved');
      const stored = (await memory.load(id))?.record.variables;
      // The update re-ran on the newer count (20 + 1, not 10 + 1); the set replayed the value
      // it was given, so the later save's 'mine' wins over 'theirs'.
      assert.deepEqual(stored, { count: 21, note: 'mine' });
      assert.deepEqual(mine.session.variables(), { count: 21, note: 'mine' });
    } finally {
      await memory.close();
    }
  });

  it('writes an unchanged session only once a refresh is due, and then moves its expiry', async () => {
    const clock = manualClock();
    const store = new SpyStore(new MemoryStore({ now: clock.now }));
    const committer = new SessionCommitter(store, clock.now);
    try {
      const id = await addSession(store, clock.now());
      const writes = store.writes.length;
      clock.advance(60_000);
      const quiet = await loadSession(store, id);
      assert.equal(await committer.save(quiet.draft), 'saved');
      assert.equal(store.writes.length, writes, 'nothing to write a minute after the last write');

      clock.advance(1800_000 / 4); // a quarter of the timeout (and a minute) since the last write
      const due = await loadSession(store, id);
      const before = due.session.expires.getTime();
      assert.equal(await committer.save(due.draft), 'saved');
      assert.equal(store.writes.length, writes + 1);
      assert.equal(due.session.accessed.getTime(), clock.now());
      assert.ok(due.session.expires.getTime() > before);
      assert.equal(due.session.changed, false);
    } finally {
      await store.close();
    }
  });

  it('carries a draft over to what the previous save in its lane stored', async () => {
    const store = new SpyStore(new MemoryStore());
    store.latencyMs = 5;
    const committer = new SessionCommitter(store);
    try {
      const id = await addSession(store);
      const a = await loadSession(store, id);
      const b = await loadSession(store, id);
      a.session.update('count', (c) => (c ?? 0) + 1);
      b.session.update('count', (c) => (c ?? 0) + 1);
      const lookups = store.lookups.length;
      await Promise.all([committer.save(a.draft), committer.save(b.draft)]);
      assert.equal(await countOf(store, id), 2);
      assert.equal(store.lookups.length, lookups + 1, 'no reload: only the check above');
    } finally {
      await store.close();
    }
  });
});
