import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { jsonCodec } from '../../src/gaesession/codec.js';
import { newSessionId } from '../../src/session/id.js';
import { missing, type DatastoreEmulator, type Memcached } from '../support/services.js';
import { parseSetCookie } from '../support/set-cookie.js';
import {
  datastoreClient,
  rawMemcache,
  request,
  sharedMemcached,
  startGaeApp,
  storedEntity,
  useEmulator,
  visitCount,
  type RunningApp,
} from './helpers.js';

const skip = missing('memcached', 'datastore-emulator');

/** What a codec change after a deploy, or another app sharing memcached, leaves under a session's key. */
const GARBAGE = Buffer.from('\x00\x01not a session of this codec', 'latin1');

describe('a session that cannot be decoded', { skip }, () => {
  let memcached: Memcached;
  let emulator: DatastoreEmulator;
  let app: RunningApp;

  before(async () => {
    memcached = await sharedMemcached();
    emulator = await useEmulator();
    app = await startGaeApp('sync', memcached.address);
  });
  beforeEach(async () => {
    await memcached.flush();
    await emulator.reset();
  });
  after(async () => {
    await app.close();
  });

  async function putInMemcache(id: string, value: Buffer): Promise<void> {
    const raw = rawMemcache(memcached.address);
    await raw.set(id, value, { expires: 600 });
    raw.close();
  }
  async function inMemcache(id: string): Promise<boolean> {
    const raw = rawMemcache(memcached.address);
    const { value } = await raw.get(id);
    raw.close();
    return value !== null;
  }
  async function putInDatastore(id: string, val: Buffer): Promise<void> {
    const datastore = datastoreClient();
    const data = { exp: new Date(Date.now() + 600_000), val };
    await datastore.save({ key: datastore.key(['sess_', id]), data, excludeFromIndexes: ['val'] });
  }

  it('is deleted from both tiers; the page is anonymous and the cookie cleared, no 5xx', async () => {
    const id = newSessionId();
    await putInMemcache(id, GARBAGE);
    await putInDatastore(id, GARBAGE);
    const errorsBefore = app.logger.lines.filter((line) => line.level === 'error').length;

    const reply = await request(app.base, '/demo', { cookie: `sessid=${id}` });
    assert.equal(reply.status, 200);
    assert.match(reply.body, /form[^>]*action="\/demo\/login"/, 'served as anonymous');
    const cleared = (reply.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === 'sessid');
    assert.ok(cleared, 'the cookie is cleared');
    assert.equal(cleared.value, '');
    assert.equal(await inMemcache(id), false, 'the memcache item is deleted');
    assert.equal(await storedEntity(id), undefined, 'the Datastore entity is deleted');
    const errors = app.logger.lines.filter((line) => line.level === 'error').slice(errorsBefore);
    assert.deepEqual(
      errors.map((line) => [line.message, line.fields?.['tier']]),
      [
        ['undecodable session deleted', 'memcache'],
        ['undecodable session deleted', 'Datastore'],
      ],
      'logged once per tier at error level',
    );

    const again = await request(app.base, '/demo', { cookie: `sessid=${id}` });
    assert.equal(again.status, 200);
  });

  it('in memcache only: the good Datastore copy carries the session on', async () => {
    const id = newSessionId();
    const now = Date.now();
    const record = {
      id,
      created: now,
      accessed: now,
      timeout: 1800,
      lifetime: 86_400,
      version: 1,
      constants: { userName: 'dora' },
      variables: { count: 4 },
    };
    await putInDatastore(id, jsonCodec.encode(record));
    await putInMemcache(id, GARBAGE);

    const reply = await request(app.base, '/demo', { cookie: `sessid=${id}` });
    assert.equal(reply.status, 200);
    assert.equal(visitCount(reply), 5, 'the session goes on from Datastore');
    assert.equal(await inMemcache(id), true, 'memcache holds the session again');
  });
});
