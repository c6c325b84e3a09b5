import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRecord, Session, type SessionRecord } from '../../src/session/session.js';

type Constants = { userName: string };
type Variables = { count: number; tags: string[]; note: string };

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function newSession(variables: Partial<Variables> = { count: 0 }): Session<Constants, Variables> {
  return Session.create<Constants, Variables>({
    id: 'abcdefghijklmnopqrstuvwx',
    timeoutSeconds: 1800,
    constants: { userName: 'ann' },
    variables,
    now: T0,
  });
}

/** A session as a store hands it to a request: stored once, then loaded from its record. */
function stored(variables: Partial<Variables> = { count: 0 }): {
  record: SessionRecord;
  load: () => Session<Constants, Variables>;
} {
  const session = newSession(variables);
  const record = structuredClone(session.toRecord(T0));
  session.markSaved(structuredClone(record));
  return { record, load: () => Session.fromRecord<Constants, Variables>(structuredClone(record)) };
}

describe('Session', () => {
  it('has an ID, creation and access times, a timeout and an expiry', () => {
    const session = newSession();
    assert.equal(session.id, 'abcdefghijklmnopqrstuvwx');
    assert.equal(session.created.getTime(), T0);
    assert.equal(session.accessed.getTime(), T0);
    assert.equal(session.timeoutSeconds, 1800);
    assert.equal(session.expires.getTime(), T0 + 1_800_000);
    assert.equal(session.isExpired(T0 + 1_799_999), false);
    assert.equal(session.isExpired(T0 + 1_800_000), true);
  });

  it('is new until it is first stored', () => {
    const session = newSession();
    assert.equal(session.isNew, true);
    session.markSaved(session.toRecord(T0));
    assert.equal(session.isNew, false);
    assert.equal(stored().load().isNew, false);
  });

  it('keeps the constants it was created with, as a copy', () => {
    const constants = { userName: 'ann' };
    const session = Session.create<Constants, Variables>({ id: 'x', timeoutSeconds: 1, constants });
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
    const session = stored().load();
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
    const session = stored({ tags: ['a'] }).load();
    session.get('tags')?.push('b');
    assert.deepEqual(session.get('tags'), ['a']);
    assert.equal(session.changed, false, 'a change must go through set or update to be saved');
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
      const session = load();
      session.update('count', (c) => (c ?? 0) + 1);
      const copy = Session.fromJSON<Constants, Variables>(JSON.stringify(session));
      assert.equal(copy.id, session.id);
      assert.ok(copy.created instanceof Date);
      assert.equal(copy.created.getTime(), T0);
      assert.equal(copy.accessed.getTime(), T0);
      assert.equal(copy.expires.getTime(), session.expires.getTime());
      assert.equal(copy.timeoutSeconds, 1800);
      assert.equal(copy.version, session.version);
      assert.equal(copy.constant('userName'), 'ann');
      assert.deepEqual(copy.variables(), { count: 3, tags: ['x', 'y'], note: 'é ✓ "quoted"' });
    });

    it('writes dates as ISO-8601 text', () => {
      const json = JSON.parse(JSON.stringify(newSession())) as Record<string, unknown>;
      assert.equal(json['created'], new Date(T0).toISOString());
      assert.equal(json['accessed'], new Date(T0).toISOString());
    });

    it('refuses text that is not a session', () => {
      for (const bad of [
        'null',
        '[]',
        '"x"',
        '{}',
        '{"id":1}',
        JSON.stringify({ ...JSON.parse(JSON.stringify(newSession())), created: 'yesterday' }),
      ]) {
        assert.throws(() => parseRecord(bad), TypeError, bad);
      }
      assert.throws(() => parseRecord('{not json'), SyntaxError);
    });
  });

  describe('toRecord', () => {
    it('gives a new session version 1 and stamps the access time', () => {
      const record = newSession().toRecord(T0 + 5);
      assert.equal(record.version, 1);
      assert.equal(record.accessed, T0 + 5);
      assert.equal(record.created, T0);
    });

    it('keeps the version when nothing changed, and adds one when something did', () => {
      const { record, load } = stored();
      assert.equal(load().toRecord(T0 + 1).version, record.version);
      const session = load();
      session.set('count', 5);
      const next = session.toRecord(T0 + 1);
      assert.equal(next.version, record.version + 1);
      assert.deepEqual(next.variables, { count: 5 });
    });

    it('starts a new base after markSaved: no pending changes, version carried on', () => {
      const session = stored().load();
      session.set('count', 5);
      const record = session.toRecord(T0 + 1);
      session.markSaved(structuredClone(record));
      assert.equal(session.changed, false);
      assert.equal(session.version, record.version);
      assert.equal(session.accessed.getTime(), T0 + 1);
      session.set('count', 6);
      assert.equal(session.toRecord(T0 + 2).version, record.version + 1);
    });
  });

  describe('rebase', () => {
    it('replays updates on the newer state, so concurrent increments are all counted', () => {
      const { load } = stored({ count: 10 });
      const first = load();
      const second = load();
      first.update('count', (c) => (c ?? 0) + 1);
      second.update('count', (c) => (c ?? 0) + 1);
      const firstRecord = first.toRecord(T0 + 1);
      first.markSaved(structuredClone(firstRecord));

      // The second request finds the first one's record stored and replays its own change on it.
      second.rebase(structuredClone(firstRecord));
      assert.equal(second.get('count'), 12);
      const secondRecord = second.toRecord(T0 + 2);
      assert.equal(secondRecord.version, firstRecord.version + 1);
      assert.deepEqual(secondRecord.variables, { count: 12 });
    });

    it('replays sets and deletes in order, and keeps what the other request changed elsewhere', () => {
      const { load } = stored({ count: 1, note: 'old', tags: ['t'] });
      const other = load();
      other.set('tags', ['t', 'u']);
      other.set('note', 'theirs');
      const latest = other.toRecord(T0 + 1);

      const mine = load();
      mine.set('note', 'mine');
      mine.delete('count');
      mine.rebase(structuredClone(latest));
      assert.deepEqual(mine.variables(), { note: 'mine', tags: ['t', 'u'] });
    });
  });
});
