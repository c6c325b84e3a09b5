import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionDraft } from '../../src/session/draft.js';
import {
  cacheTtlSeconds,
  deadline,
  expiresAt,
  isExpired,
  ownerHash,
  parseRecord,
  refreshDue,
  type SessionRecord,
} from '../../src/session/record.js';
import { Session } from '../../src/session/session.js';

type Constants = { userName: string };
type Variables = { count: number; tags: string[]; note: string };

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
/** A store's token: opaque to the core. */
const TOKEN = { token: 1 };

function newDraft(variables: Partial<Variables> = { count: 0 }, lifetimeSeconds = 86_400): SessionDraft {
  return SessionDraft.create({
    id: 'abcdefghijklmnopqrstuvwx',
    timeoutSeconds: 1800,
    lifetimeSeconds,
    constants: { userName: 'ann' },
    variables,
    now: T0,
  });
}

function newSession(variables: Partial<Variables> = { count: 0 }): Session<Constants, Variables> {
  return new Session<Constants, Variables>(newDraft(variables));
}

/** A session as a store hands it to a request: stored once, then loaded from its record. */
function stored(variables: Partial<Variables> = { count: 0 }): {
  record: SessionRecord;
  load: () => { draft: SessionDraft; session: Session<Constants, Variables> };
} {
  const draft = newDraft(variables);
  const record = structuredClone(draft.next(T0));
  draft.committed(structuredClone(record), TOKEN);
  return {
    record,
    load: () => {
      const loaded = new SessionDraft(structuredClone(record), TOKEN, false);
      return { draft: loaded, session: new Session<Constants, Variables>(loaded) };
    },
  };
}

describe('Session', () => {
  it('has an ID, creation and access times, a timeout, an expiry and a deadline', () => {
    const draft = newDraft({ count: 0 }, 7200);
    const session = new Session(draft);
    assert.equal(session.id, 'abcdefghijklmnopqrstuvwx');
    assert.equal(session.created.getTime(), T0);
    assert.equal(session.accessed.getTime(), T0);
    assert.equal(session.timeoutSeconds, 1800);
    assert.equal(session.expires.getTime(), T0 + 1_800_000);
    assert.equal(session.deadline.getTime(), T0 + 7_200_000);
    // Session lost its isExpired(now): expiry is a property of the record (record.ts).
    assert.equal(isExpired(draft.base, T0 + 1_799_999), false);
    assert.equal(isExpired(draft.base, T0 + 1_800_000), true);
  });

  it('is new until it is first stored', () => {
    const draft = newDraft();
    const session = new Session(draft);
    assert.equal(session.isNew, true);
    draft.committed(draft.next(T0), TOKEN);
    assert.equal(session.isNew, false);
    assert.equal(stored().load().session.isNew, false);
  });

  it('keeps the constants it was created with, as a copy', () => {
    const constants = { userName: 'ann' };
    const session = new Session<Constants, Variables>(
      SessionDraft.create({ id: 'x', timeoutSeconds: 1, lifetimeSeconds: 1, constants, now: T0 }),
    );
    constants.userName = 'bob';
    assert.equal(session.constant('userName'), 'ann');
    const copy = session.constants();
    copy.userName = 'eve';
    assert.equal(session.constant('userName'), 'ann');
  });

  it('gets, sets and deletes variables', () => {
    const session = newSession({});
    assert.equal(session.get('count'), undefined);
    session.set('count', 3);
    assert.equal(session.get('count'), 3);
    session.set('note', 'hi');
    assert.deepEqual(session.variables(), { count: 3, note: 'hi' });
    session.delete('count');
    assert.equal(session.get('count'), undefined);
    assert.deepEqual(session.variables(), { note: 'hi' });
    assert.equal('count' in session.variables(), false);
  });

  it('updates a variable by a function of its current value and returns the new value', () => {
    const session = newSession({});
    assert.equal(
      session.update('count', (c) => (c ?? 0) + 1),
      1,
    );
    assert.equal(
      session.update('count', (c) => (c ?? 0) + 1),
      2,
    );
    assert.equal(session.get('count'), 2);
  });

  it('reports whether this request changed anything', () => {
    const { session } = stored().load();
    assert.equal(session.changed, false);
    session.get('count');
    session.variables();
    assert.equal(session.changed, false);
    session.set('count', 1);
    assert.equal(session.changed, true);
  });

  it('hands out copies of variables: changing a copy changes nothing', () => {
    const session = newSession({ tags: ['a'] });
    const all = session.variables();
    all.tags?.push('b');
    all.count = 99;
    assert.deepEqual(session.variables(), { tags: ['a'] });
    assert.equal(session.changed, false);
  });

  it('stores a copy of a value set: changing the original later changes nothing', () => {
    const session = newSession({});
    const tags = ['a'];
    session.set('tags', tags);
    tags.push('b');
    assert.deepEqual(session.get('tags'), ['a']);
  });

  it('hands out copies of object values from get: changing one changes nothing unsaved', () => {
    const { session } = stored({ tags: ['a'] }).load();
    session.get('tags')?.push('b');
    assert.deepEqual(session.get('tags'), ['a']);
    assert.equal(session.changed, false, 'a change must go through set or update to be saved');
  });

  it('never changes the record it was loaded from', () => {
    const { record } = stored({ count: 1, tags: ['a'] });
    const frozen = structuredClone(record);
    const draft = new SessionDraft(record, TOKEN, false);
    const session = new Session<Constants, Variables>(draft);
    session.set('count', 2);
    session.update('tags', (tags) => [...(tags ?? []), 'b']);
    session.delete('note');
    draft.next(T0 + 1);
    assert.deepEqual(record, frozen);
  });

  it('types attributes through its generics', () => {
    const session = newSession();
    // These lines are checked by `npm run typecheck`: a wrong type would not compile.
    const count: number | undefined = session.get('count');
    const name: string = session.constant('userName');
    const next: number = session.update('count', (c) => (c ?? 0) + 1);
    assert.equal(typeof count, 'number');
    assert.equal(name, 'ann');
    assert.equal(next, 1);
    // @ts-expect-error: `count` is a number
    session.set('count', 'one');
    // @ts-expect-error: no such variable
    session.get('missing');
    // @ts-expect-error: no such constant
    session.constant('count');
  });

  describe('JSON', () => {
    it('round-trips with its dates, attributes and version intact', () => {
      const { load } = stored({ count: 2, tags: ['x', 'y'], note: 'é ✓ "quoted"' });
      const { draft, session } = load();
      session.update('count', (c) => (c ?? 0) + 1);
      // Session.fromJSON is gone: parseRecord reads a serialized session, a draft wraps it.
      const record = parseRecord(JSON.stringify(session));
      const copy = new Session<Constants, Variables>(new SessionDraft(record, undefined, false));
      assert.equal(copy.id, session.id);
      assert.ok(copy.created instanceof Date);
      assert.equal(copy.created.getTime(), T0);
      assert.equal(copy.accessed.getTime(), T0);
      assert.equal(copy.expires.getTime(), session.expires.getTime());
      assert.equal(copy.deadline.getTime(), session.deadline.getTime());
      assert.equal(copy.timeoutSeconds, 1800);
      // Session has no `version` getter any more: compare the records.
      assert.equal(record.version, draft.base.version);
      assert.equal(record.lifetime, draft.base.lifetime);
      assert.equal(record.owner, draft.base.owner);
      assert.equal(copy.constant('userName'), 'ann');
      assert.deepEqual(copy.variables(), { count: 3, tags: ['x', 'y'], note: 'é ✓ "quoted"' });
    });

    it('keeps the owner hash through a round trip, and leaves it out when there is none', () => {
      const draft = SessionDraft.create({
        id: 'x',
        timeoutSeconds: 1,
        lifetimeSeconds: 1,
        owner: ownerHash('ann'),
        now: T0,
      });
      assert.equal(parseRecord(JSON.stringify(new Session(draft))).owner, ownerHash('ann'));
      const json = JSON.parse(JSON.stringify(newSession())) as Record<string, unknown>;
      assert.equal('owner' in json, false);
    });

    it('writes dates as ISO-8601 text', () => {
      const json = JSON.parse(JSON.stringify(newSession())) as Record<string, unknown>;
      assert.equal(json['created'], new Date(T0).toISOString());
      assert.equal(json['accessed'], new Date(T0).toISOString());
    });

    it('refuses text that is not a session', () => {
      const good = JSON.parse(JSON.stringify(newSession())) as Record<string, unknown>;
      for (const bad of [
        'null',
        '[]',
        '"x"',
        '{}',
        '{"id":1}',
        JSON.stringify({ ...good, created: 'yesterday' }),
        JSON.stringify({ ...good, lifetime: undefined }),
        JSON.stringify({ ...good, version: '1' }),
        JSON.stringify({ ...good, owner: 7 }),
        JSON.stringify({ ...good, variables: [] }),
      ]) {
        assert.throws(() => parseRecord(bad), TypeError, bad);
      }
      assert.throws(() => parseRecord('{not json'), SyntaxError);
    });
  });

  describe('the record to write (was toRecord)', () => {
    it('gives a new session version 1 and stamps the access time', () => {
      const record = newDraft().next(T0 + 5);
      assert.equal(record.version, 1);
      assert.equal(record.accessed, T0 + 5);
      assert.equal(record.created, T0);
    });

    it('is due when something changed, and then adds one to the version', () => {
      const { record, load } = stored();
      // Flipped: toRecord kept the version of an unchanged session; now an unchanged draft is
      // simply not due (nothing is written), and any record written (a refresh too) is the next version.
      assert.equal(load().draft.due(T0 + 1), false);
      assert.equal(load().draft.next(T0 + 1).version, record.version + 1);
      const { draft, session } = load();
      session.set('count', 5);
      assert.equal(draft.due(T0 + 1), true);
      const next = draft.next(T0 + 1);
      assert.equal(next.version, record.version + 1);
      assert.deepEqual(next.variables, { count: 5 });
    });

    it('is due unchanged once a quarter of the timeout has passed since the last write', () => {
      const { draft } = stored().load();
      assert.equal(draft.due(T0 + 450_000), false);
      assert.equal(draft.due(T0 + 450_001), true);
      assert.equal(refreshDue(draft.base, T0 + 450_001), true);
    });

    it('gives a new ID when asked (rotation) and keeps the creation time', () => {
      const { draft } = stored().load();
      const next = draft.next(T0 + 9, 'new-id');
      assert.equal(next.id, 'new-id');
      assert.equal(next.created, T0);
      assert.equal(next.accessed, T0 + 9);
    });

    it('starts a new base once committed: no pending changes, version carried on', () => {
      const { draft, session } = stored().load();
      session.set('count', 5);
      const record = draft.next(T0 + 1);
      draft.committed(structuredClone(record), TOKEN);
      assert.equal(session.changed, false);
      assert.equal(draft.base.version, record.version);
      assert.equal(session.accessed.getTime(), T0 + 1);
      session.set('count', 6);
      assert.equal(draft.next(T0 + 2).version, record.version + 1);
    });
  });

  describe('rebase', () => {
    it('replays updates on the newer state, so concurrent increments are all counted', () => {
      const { load } = stored({ count: 10 });
      const first = load();
      const second = load();
      first.session.update('count', (c) => (c ?? 0) + 1);
      second.session.update('count', (c) => (c ?? 0) + 1);
      const firstRecord = first.draft.next(T0 + 1);
      first.draft.committed(structuredClone(firstRecord), TOKEN);

      // The second request finds the first one's record stored and replays its own change on it.
      second.draft.rebase(structuredClone(firstRecord), TOKEN);
      assert.equal(second.session.get('count'), 12);
      const secondRecord = second.draft.next(T0 + 2);
      assert.equal(secondRecord.version, firstRecord.version + 1);
      assert.deepEqual(secondRecord.variables, { count: 12 });
    });

    it('replays sets and deletes in order, and keeps what the other request changed elsewhere', () => {
      const { load } = stored({ count: 1, note: 'old', tags: ['t'] });
      const other = load();
      other.session.set('tags', ['t', 'u']);
      other.session.set('note', 'theirs');
      const latest = other.draft.next(T0 + 1);

      const mine = load();
      mine.session.set('note', 'mine');
      mine.session.delete('count');
      mine.draft.rebase(structuredClone(latest), TOKEN);
      assert.deepEqual(mine.session.variables(), { note: 'mine', tags: ['t', 'u'] });
      assert.equal(mine.draft.token, TOKEN);
    });
  });
});

describe('session records', () => {
  const record: SessionRecord = {
    id: 'x',
    created: T0,
    accessed: T0,
    timeout: 60,
    lifetime: 100,
    version: 1,
    constants: {},
    variables: {},
  };

  it('expire at the idle timeout, never past the deadline', () => {
    assert.equal(deadline(record), T0 + 100_000);
    assert.equal(expiresAt(record), T0 + 60_000);
    const late = { ...record, accessed: T0 + 70_000 };
    assert.equal(expiresAt(late), T0 + 100_000, 'capped by creation + lifetime');
    assert.equal(isExpired(late, T0 + 99_999), false);
    assert.equal(isExpired(late, T0 + 100_000), true);
  });

  it('give a cache TTL of whole seconds to the idle end, capped by the deadline, at least 1', () => {
    assert.equal(cacheTtlSeconds(record, T0), 60);
    assert.equal(cacheTtlSeconds(record, T0 + 70_000), 30);
    assert.equal(cacheTtlSeconds(record, T0 + 99_500), 1);
    assert.equal(cacheTtlSeconds(record, T0 + 200_000), 1);
  });

  it('name their owner by a hash, not the user name', () => {
    const hash = ownerHash('ann');
    assert.equal(hash, ownerHash('ann'));
    assert.notEqual(hash, ownerHash('Ann'));
    assert.match(hash, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(hash.includes('ann'), false);
  });
});
