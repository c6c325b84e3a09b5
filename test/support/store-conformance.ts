/**
 * The contract of `Store` (src/session/store.ts), as node:test tests any store can run. It
 * uses only the public record-level API plus the core's save loop (SessionCommitter) and
 * CookieManager, never a store's internals, so a store of your own runs it unchanged:
 *
 *   describeStoreConformance('MyStore', async () => ({ store: new MyStore() }));
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionCommitter } from '../../src/session/commit.js';
import { CookieManager } from '../../src/session/cookie-manager.js';
import { SessionDraft } from '../../src/session/draft.js';
import { newSessionId } from '../../src/session/id.js';
import type { HttpExchange } from '../../src/session/manager.js';
import { ownerHash, type Attributes, type Json, type SessionRecord } from '../../src/session/record.js';
import type { Store } from '../../src/session/store.js';

/** One store for one test, made fresh by the factory. */
export interface StoreUnderTest {
  store: Store;
  /** A second store on the same backends: another instance of the app. Defaults to `store`. */
  otherInstance?: Store;
  /** Releases what the factory set up besides the stores (the suite closes them itself). */
  cleanup?(): Promise<void>;
  /** Moves the store's clock forward; without it the suite waits in real time (a few seconds). */
  clock?: { now(): number; advance(ms: number): void };
}

export interface ConformanceOptions {
  /** Skips the whole suite, e.g. with `missing(...)` from test/support/services.ts. */
  skip?: string | boolean | undefined;
}

const LONG_TIMEOUT_SECONDS = 1800;
const DAY_SECONDS = 86_400;
/** Stores that count whole seconds (memcached, Valkey TTLs) may keep an item up to two seconds longer. */
const SECOND_SLACK_MS = 2200;
const CLOSE_LIMIT_MS = 10_000;

/** Constants and variables that a careless codec would mangle: nesting, unicode, null, floats. */
const CONSTANTS: Attributes = { userName: 'Zoë "<b>" 🙂', roles: ['admin', 'user'], profile: { age: 42 } };
const VARIABLES: Attributes = { count: 0, ratio: 0.25, flag: false, nothing: null, list: [1, 'two', { three: 3 }] };

function record(now: number, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: newSessionId(),
    created: now,
    accessed: now,
    timeout: LONG_TIMEOUT_SECONDS,
    lifetime: DAY_SECONDS,
    version: 1,
    owner: ownerHash('zoë'),
    constants: CONSTANTS,
    variables: VARIABLES,
    ...overrides,
  };
}

function increment(current: Json | undefined): number {
  return (typeof current === 'number' ? current : 0) + 1;
}

/** A request's exchange as the CookieManager sees it, for rotation. */
function exchange(): HttpExchange & { cookies: string[] } {
  const cookies: string[] = [];
  return {
    cookieHeader: undefined,
    secure: false,
    setCookie: (h) => cookies.push(h),
    cookies,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function closeWithin(store: Store, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`close did not resolve within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([store.close(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Registers a `describe` block that checks `Store`'s contract. `makeStore` is called once per
 * test; the suite closes the stores and calls `cleanup`. IDs are random, so stores made by
 * one factory may share a backend without resetting it between tests.
 */
export function describeStoreConformance(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
  options: ConformanceOptions = {},
): void {
  async function withStore(body: (made: StoreUnderTest & { now: () => number }) => Promise<void>): Promise<void> {
    const made = await makeStore();
    const now = made.clock ? () => made.clock!.now() : Date.now;
    try {
      await body({ ...made, now });
    } finally {
      try {
        await closeWithin(made.store, CLOSE_LIMIT_MS);
        if (made.otherInstance && made.otherInstance !== made.store)
          await closeWithin(made.otherInstance, CLOSE_LIMIT_MS);
      } finally {
        await made.cleanup?.();
      }
    }
  }

  async function pass(made: StoreUnderTest, ms: number): Promise<void> {
    if (made.clock) made.clock.advance(ms);
    else await sleep(ms);
  }

  /** A stored session as a request gets it, ready to change. */
  async function loaded(store: Store, id: string): Promise<SessionDraft> {
    const found = await store.load(id);
    assert.ok(found, `session ${id} is found`);
    return new SessionDraft(found.record, found.token, false);
  }

  describe(`Store conformance: ${name}`, { skip: options.skip }, () => {
    it('gives back a written session intact, with every field', () =>
      withStore(async ({ store, now }) => {
        const written = record(now());
        assert.equal((await store.write(written, undefined)).status, 'stored');
        const found = await store.load(written.id);
        assert.ok(found, 'the new session is found');
        assert.deepEqual(found.record, written);
      }));

    it('answers undefined for an ID it never stored, and refuses a new write of a taken ID', () =>
      withStore(async ({ store, now }) => {
        assert.equal(await store.load(newSessionId()), undefined);
        const first = record(now());
        await store.write(first, undefined);
        assert.equal((await store.write({ ...first, variables: { count: 99 } }, undefined)).status, 'conflict');
        assert.deepEqual((await store.load(first.id))?.record.variables, VARIABLES, 'the first session is untouched');
      }));

    it('writes conditionally: the token of the latest read or write wins, an older one conflicts', () =>
      withStore(async ({ store, now }) => {
        const first = record(now());
        await store.write(first, undefined);
        const a = await store.load(first.id);
        const b = await store.load(first.id);
        assert.ok(a && b);
        const second = { ...first, version: 2, variables: { count: 1 } };
        const stored = await store.write(second, a.token);
        assert.equal(stored.status, 'stored');
        assert.equal(
          (await store.write({ ...first, version: 2, variables: { count: 7 } }, b.token)).status,
          'conflict',
        );
        assert.ok(stored.status === 'stored');
        assert.equal(
          (await store.write({ ...second, version: 3, variables: { count: 2 } }, stored.token)).status,
          'stored',
        );
        assert.deepEqual((await store.load(first.id))?.record.variables, { count: 2 });
      }));

    it('saves set, delete and update through the core loop, each applied once', () =>
      withStore(async ({ store, now }) => {
        const committer = new SessionCommitter(store, now);
        const first = record(now());
        await store.write(first, undefined);
        const draft = await loaded(store, first.id);
        draft.change('count', increment);
        draft.change('flag', () => true);
        draft.change('nothing', () => undefined);
        assert.equal(await committer.save(draft), 'saved');
        assert.equal(await committer.save(draft), 'saved', 'a second save with nothing new writes nothing');
        const found = await store.load(first.id);
        const { nothing: _deleted, ...kept } = VARIABLES;
        assert.deepEqual(found?.record.variables, { ...kept, count: 1, flag: true });
      }));

    it('counts every one of 50 updates sent 10 at a time from two instances exactly once', () =>
      withStore(async ({ store, otherInstance, now }) => {
        const instances = [new SessionCommitter(store, now), new SessionCommitter(otherInstance ?? store, now)];
        const stores = [store, otherInstance ?? store];
        const first = record(now(), { variables: { count: 0 } });
        await store.write(first, undefined);
        for (let round = 0; round < 5; round++) {
          await Promise.all(
            Array.from({ length: 10 }, async (_, i) => {
              const draft = await loaded(stores[i % 2]!, first.id);
              draft.change('count', increment);
              assert.equal(await instances[i % 2]!.save(draft), 'saved');
            }),
          );
        }
        assert.equal((await store.load(first.id))?.record.variables['count'], 50);
      }));

    it('ends a session for good: remove, then no load finds it and no write revives it', () =>
      withStore(async ({ store, otherInstance, now }) => {
        const committer = new SessionCommitter(store, now);
        const first = record(now());
        await store.write(first, undefined);
        const late = await loaded(store, first.id);
        assert.equal(await (otherInstance ?? store).remove(first.id), 'removed');
        late.change('count', increment);
        assert.equal(await committer.save(late), 'gone', 'a request in flight is told its change was refused');
        assert.equal(await store.load(first.id), undefined);
        assert.equal(await store.remove(first.id), 'removed', 'removing an ended or unknown ID is fine');
      }));

    it('removes conditionally: a remove with a stale token conflicts and leaves the session', () =>
      withStore(async ({ store, now }) => {
        const first = record(now());
        await store.write(first, undefined);
        const stale = await store.load(first.id);
        const fresh = await store.load(first.id);
        assert.ok(stale && fresh);
        const written = await store.write({ ...first, version: 2, variables: { count: 5 } }, fresh.token);
        assert.equal(await store.remove(first.id, stale.token), 'conflict');
        assert.ok(await store.load(first.id), 'still there');
        assert.ok(written.status === 'stored');
        assert.equal(await store.remove(first.id, written.token), 'removed');
        assert.equal(await store.load(first.id), undefined);
        assert.equal(await store.remove(first.id, written.token), 'gone', 'a conditional remove says it had ended');
      }));

    it('rotates: a new ID with the same data and creation time, the old ID dead at once', () =>
      withStore(async ({ store, now }) => {
        const manager = new CookieManager({
          store,
          cookie: { name: 'sessid', maxAgeSeconds: 60, secure: 'never' },
          timeoutSeconds: LONG_TIMEOUT_SECONDS,
          now,
        });
        const draft = manager.create({ userName: 'zoë' }, { count: 3 }, 'zoë');
        await manager.add(draft, exchange());
        const oldId = draft.base.id;
        const created = draft.base.created;
        const request = await loaded(store, oldId);
        request.change('count', increment);
        const result = exchange();
        assert.equal(await manager.rotate(request, result), 'rotated');
        const newId = request.base.id;
        assert.notEqual(newId, oldId);
        assert.match(result.cookies.at(-1) ?? '', new RegExp(`^sessid=${newId};`));
        assert.equal(await store.load(oldId), undefined, 'the old ID is dead');
        const rotated = await store.load(newId);
        assert.equal(rotated?.record.variables['count'], 4, "the rotating request's own change is kept");
        assert.equal(rotated?.record.created, created, 'rotation keeps the creation time, so the absolute lifetime');
        assert.equal(rotated?.record.owner, ownerHash('zoë'));
      }));

    it("finds an owner's live sessions, from any instance, and ends them all", () =>
      withStore(async ({ store, otherInstance, now }) => {
        const other = otherInstance ?? store;
        const owner = ownerHash(`owner-${newSessionId()}`);
        const mine = [record(now(), { owner }), record(now(), { owner })];
        const someoneElse = record(now(), { owner: ownerHash('someone else') });
        await store.write(mine[0]!, undefined);
        await other.write(mine[1]!, undefined);
        await store.write(someoneElse, undefined);
        const found = await other.owned(owner);
        assert.deepEqual(found.map((r) => r.id).sort(), mine.map((r) => r.id).sort());
        await store.remove(mine[0]!.id);
        assert.deepEqual(
          (await store.owned(owner)).map((r) => r.id),
          [mine[1]!.id],
          'an ended session is not listed',
        );
        const manager = new CookieManager({
          store: other,
          cookie: { name: 'sessid', maxAgeSeconds: 60, secure: 'never' },
          timeoutSeconds: LONG_TIMEOUT_SECONDS,
          now,
        });
        assert.equal(await manager.store.owned(owner).then((r) => r.length), 1);
        for (const session of await other.owned(owner)) await other.remove(session.id);
        assert.deepEqual(await store.owned(owner), []);
        assert.ok(await store.load(someoneElse.id), "another owner's session is untouched");
      }));

    it('forgets a session left idle past its timeout', () =>
      withStore(async (made) => {
        const idle = record(made.now(), { timeout: 1 });
        await made.store.write(idle, undefined);
        await pass(made, 1000 + SECOND_SLACK_MS);
        assert.equal(await made.store.load(idle.id), undefined);
      }));

    it('ends a session at creation + lifetime however active it is', () =>
      withStore(async (made) => {
        const committer = new SessionCommitter(made.store, made.now);
        const busy = record(made.now(), { lifetime: 2, timeout: LONG_TIMEOUT_SECONDS });
        await made.store.write(busy, undefined);
        for (let i = 0; i < 3; i++) {
          await pass(made, 500);
          const draft = await loaded(made.store, busy.id);
          draft.change('count', increment);
          assert.equal(await committer.save(draft), 'saved');
        }
        await pass(made, 500 + SECOND_SLACK_MS);
        assert.equal(await made.store.load(busy.id), undefined, 'dead at its deadline, though used every half second');
      }));
  });
}
