/**
 * The contract of `Store` (src/session/store.ts) as the session middleware and a handler rely
 * on it, as node:test tests that any store can run. It uses only the public `Store` and
 * `Session` API, never a store's internals, so a store of your own runs it unchanged:
 *
 *   describeStoreConformance('MyStore', async () => ({ store: new MyStore() }));
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newSessionId } from '../../src/session/id.js';
import { Session, type Attributes, type Json } from '../../src/session/session.js';
import type { Store } from '../../src/session/store.js';

/** One store for one test, made fresh by the factory. */
export interface StoreUnderTest {
  store: Store;
  /** Releases what the factory set up besides the store (the suite closes the store itself). */
  cleanup?(): Promise<void>;
  /**
   * Moves the store's clock forward. Without it the suite waits in real time, which only the
   * idle-expiry test does (a few seconds).
   */
  clock?: { advance(ms: number): void | Promise<void> };
}

export interface ConformanceOptions {
  /** Skips the whole suite, e.g. with `missing(...)` from test/support/services.ts. */
  skip?: string | boolean | undefined;
}

/** Idle timeout of the sessions in every test but the expiry one: long enough never to matter. */
const LONG_TIMEOUT_SECONDS = 1800;
/** Idle timeout of the session the expiry test lets run out. */
const SHORT_TIMEOUT_SECONDS = 1;
/**
 * How long the expiry test leaves its session idle. More than the timeout, because a store
 * may count time in whole seconds: memcached does, and may keep an item up to a second longer.
 */
const IDLE_MS = SHORT_TIMEOUT_SECONDS * 1000 + 1200;
/** A close that takes longer would hold up a shutdown (App Engine allows a few seconds). */
const CLOSE_LIMIT_MS = 10_000;
/** Requests changing one session at the same moment in the concurrency test. */
const CONCURRENT_REQUESTS = 10;

/** Constants and variables that a careless codec would mangle: nesting, unicode, null, floats. */
const CONSTANTS: Attributes = { userName: 'Zoë "<b>" 🙂', roles: ['admin', 'user'], profile: { age: 42 } };
const VARIABLES: Attributes = { count: 0, ratio: 0.25, flag: false, nothing: null, list: [1, 'two', { three: 3 }] };

function newSession(timeoutSeconds = LONG_TIMEOUT_SECONDS, variables: Attributes = VARIABLES): Session {
  return Session.create({ id: newSessionId(), timeoutSeconds, constants: CONSTANTS, variables });
}

function increment(current: Json | undefined): number {
  return (typeof current === 'number' ? current : 0) + 1;
}

/** Closes the store, failing instead of hanging when it does not finish in time. */
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Registers a `describe` block of tests that check `Store`'s contract. `makeStore` is called
 * once per test and must give a store that is open and ready; the suite closes it at the end
 * of the test (the close test closes it itself), then calls `cleanup`. Session IDs are random,
 * so stores made by one factory may share a backend without resetting it between tests.
 */
export function describeStoreConformance(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
  options: ConformanceOptions = {},
): void {
  /** Runs `body` on a fresh store, and closes and cleans up after it whatever happens. */
  async function withStore(body: (made: StoreUnderTest, close: () => Promise<void>) => Promise<void>): Promise<void> {
    const made = await makeStore();
    let closed: Promise<void> | undefined;
    const close = (): Promise<void> => (closed ??= closeWithin(made.store, CLOSE_LIMIT_MS));
    try {
      await body(made, close);
    } finally {
      try {
        await close();
      } finally {
        await made.cleanup?.();
      }
    }
  }

  /** Lets `ms` of idle time pass for the store: on its clock if it has one, else for real. */
  async function idle(made: StoreUnderTest, ms: number): Promise<void> {
    if (made.clock) await made.clock.advance(ms);
    else await sleep(ms);
  }

  describe(`Store conformance: ${name}`, { skip: options.skip }, () => {
    it('gives back an added session intact: ID, dates, timeout, constants and variables', () =>
      withStore(async (made) => {
        const { store } = made;
        const session = newSession();
        const created = session.created.getTime();
        await store.add(session);
        assert.equal(session.isNew, false, 'a session is no longer new once added');
        // The next request comes a little later: a store must keep the creation time, not make one up.
        await idle(made, 5);

        const loaded = await store.get(session.id);
        assert.ok(loaded, 'the added session is found');
        assert.equal(loaded.id, session.id);
        assert.equal(loaded.isNew, false);
        assert.equal(loaded.changed, false);
        assert.equal(loaded.created.getTime(), created, 'creation time kept to the millisecond');
        assert.ok(loaded.accessed.getTime() >= created, 'last access is not before creation');
        assert.equal(loaded.timeoutSeconds, LONG_TIMEOUT_SECONDS);
        assert.equal(loaded.expires.getTime(), loaded.accessed.getTime() + LONG_TIMEOUT_SECONDS * 1000);
        assert.deepEqual(loaded.constants(), CONSTANTS);
        assert.deepEqual(loaded.variables(), VARIABLES);
      }));

    it('answers undefined for an ID it never stored', () =>
      withStore(async ({ store }) => {
        await store.add(newSession());
        assert.equal(await store.get(newSessionId()), undefined);
      }));

    it('persists set, delete and update, and applies each change once', () =>
      withStore(async (made) => {
        const { store } = made;
        const session = newSession(LONG_TIMEOUT_SECONDS, { count: 0, keep: 'me', drop: true });
        await store.add(session);
        await idle(made, 5);

        const loaded = await store.get(session.id);
        assert.ok(loaded);
        loaded.set('name', 'ann');
        loaded.delete('drop');
        assert.equal(loaded.update('count', increment), 1);
        assert.equal(await store.save(loaded), true);
        const expected = { count: 1, keep: 'me', name: 'ann' };
        assert.deepEqual(loaded.variables(), expected, 'the saved session object shows its own changes');
        assert.equal(loaded.changed, false, 'nothing is left to save');

        // Saving the same object again must not replay the update a second time.
        assert.equal(await store.save(loaded), true);
        const reloaded = await store.get(session.id);
        assert.ok(reloaded);
        assert.deepEqual(reloaded.variables(), expected);
        assert.deepEqual(reloaded.constants(), CONSTANTS, 'constants survive a save');
        assert.equal(reloaded.created.getTime(), session.created.getTime(), 'creation time survives a save');
      }));

    it('shows a saved change to the very next get', () =>
      withStore(async ({ store }) => {
        const session = newSession();
        await store.add(session);
        for (let expected = 1; expected <= 5; expected++) {
          const loaded = await store.get(session.id);
          assert.ok(loaded);
          loaded.update('count', increment);
          assert.equal(await store.save(loaded), true);
          const next = await store.get(session.id);
          assert.equal(next?.get('count'), expected, `view ${expected}`);
        }
      }));

    it('counts both updates of two requests that got the session at the same time', () =>
      withStore(async ({ store }) => {
        const session = newSession();
        await store.add(session);
        const [first, second] = await Promise.all([store.get(session.id), store.get(session.id)]);
        assert.ok(first && second);
        first.update('count', increment);
        second.update('count', increment);
        // The second save finds the session changed since it was read: its update goes on top.
        assert.equal(await store.save(first), true);
        assert.equal(await store.save(second), true);
        assert.equal(second.get('count'), 2, 'the later save sees the earlier one');
        assert.equal((await store.get(session.id))?.get('count'), 2);

        // The first request changes the session again (a handler may save twice): still nothing lost.
        first.update('count', increment);
        assert.equal(await store.save(first), true);
        assert.equal((await store.get(session.id))?.get('count'), 3);
      }));

    it(`counts every one of ${CONCURRENT_REQUESTS} concurrent updates exactly once`, () =>
      withStore(async ({ store }) => {
        const session = newSession();
        await store.add(session);
        // Every request reads before any saves, so all but one save find a newer state.
        const requests = await Promise.all(Array.from({ length: CONCURRENT_REQUESTS }, () => store.get(session.id)));
        for (const request of requests) {
          assert.ok(request);
          request.update('count', increment);
        }
        const saved = await Promise.all(requests.map((request) => store.save(request as Session)));
        assert.deepEqual(saved, Array<boolean>(CONCURRENT_REQUESTS).fill(true));
        assert.equal((await store.get(session.id))?.get('count'), CONCURRENT_REQUESTS);
      }));

    it('answers false to a save after remove, and the session stays removed', () =>
      withStore(async ({ store }) => {
        const session = newSession();
        await store.add(session);
        const changing = await store.get(session.id);
        const reading = await store.get(session.id);
        assert.ok(changing && reading);

        await store.remove(session.id);
        assert.equal(await store.get(session.id), undefined, 'removed');

        // A request that was still running when another one logged out: its save must not undo the logout.
        changing.update('count', increment);
        assert.equal(await store.save(changing), false);
        assert.equal(await store.get(session.id), undefined, 'a changed save does not bring it back');
        // A request that changed nothing may be answered either way, but must not bring it back either.
        await store.save(reading);
        assert.equal(await store.get(session.id), undefined, 'an unchanged save does not bring it back');
      }));

    it('removes an unknown ID without complaint', () =>
      withStore(async ({ store }) => {
        await store.remove(newSessionId());
        const session = newSession();
        await store.add(session);
        await store.remove(session.id);
        await store.remove(session.id);
        assert.equal(await store.get(session.id), undefined);
      }));

    it('keeps sessions apart: a change or removal of one leaves the others as they were', () =>
      withStore(async ({ store }) => {
        const ann = Session.create({
          id: newSessionId(),
          timeoutSeconds: LONG_TIMEOUT_SECONDS,
          constants: { userName: 'ann' },
        });
        const bob = Session.create({
          id: newSessionId(),
          timeoutSeconds: LONG_TIMEOUT_SECONDS,
          constants: { userName: 'bob' },
        });
        await Promise.all([store.add(ann), store.add(bob)]);

        const annLoaded = await store.get(ann.id);
        assert.ok(annLoaded);
        annLoaded.set('secret', 'ann only');
        assert.equal(await store.save(annLoaded), true);

        const bobLoaded = await store.get(bob.id);
        assert.ok(bobLoaded);
        assert.equal(bobLoaded.constant('userName'), 'bob');
        assert.deepEqual(bobLoaded.variables(), {});

        await store.remove(ann.id);
        assert.equal(await store.get(ann.id), undefined);
        assert.equal((await store.get(bob.id))?.constant('userName'), 'bob', 'removing one keeps the other');
      }));

    it('forgets a session left idle past its timeout, and a late save does not revive it', () =>
      withStore(async (made) => {
        const { store } = made;
        const idleOne = newSession(SHORT_TIMEOUT_SECONDS);
        const busyOne = newSession();
        await Promise.all([store.add(idleOne), store.add(busyOne)]);

        await idle(made, IDLE_MS);
        assert.equal(await store.get(idleOne.id), undefined, 'expired');
        idleOne.update('count', increment);
        assert.equal(await store.save(idleOne), false, 'a save of an expired session answers false');
        assert.equal(await store.get(idleOne.id), undefined, 'still expired after the save');
        assert.ok(await store.get(busyOne.id), 'a session with a longer timeout is still there');
      }));

    it('closes cleanly after use', () =>
      withStore(async ({ store }, close) => {
        const session = newSession();
        await store.add(session);
        const loaded = await store.get(session.id);
        assert.ok(loaded);
        loaded.update('count', increment);
        assert.equal(await store.save(loaded), true);
        await close();
      }));
  });
}
