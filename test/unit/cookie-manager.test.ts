import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CookieManager } from '../../src/session/cookie-manager.js';
import { idLength, newSessionId, sessionIdValidator } from '../../src/session/id.js';
import type { HttpExchange } from '../../src/session/manager.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { SpyStore } from '../support/spy-store.js';

const cookie = { name: 'sessid', maxAgeSeconds: 600, secure: 'auto' as const };

/** An HTTP exchange with the given request cookies; remembers the Set-Cookie headers. */
function exchange(cookies: Record<string, string> = {}, secure = false): HttpExchange & { set: string[] } {
  const set: string[] = [];
  return { set, secure, cookie: (name) => cookies[name], setCookie: (header) => void set.push(header) };
}

function setup(idBytes?: number): { store: SpyStore; manager: CookieManager } {
  const store = new SpyStore(new MemoryStore());
  const manager = new CookieManager({ store, cookie, timeoutSeconds: 60, ...(idBytes && { idBytes }) });
  return { store, manager };
}

describe('CookieManager', () => {
  it('makes new sessions with a fresh valid ID and the configured timeout', async () => {
    const { manager } = setup();
    const a = manager.newSession({ userName: 'ann' }, { count: 0 });
    const b = manager.newSession();
    assert.ok(sessionIdValidator()(a.id));
    assert.notEqual(a.id, b.id);
    assert.equal(a.timeoutSeconds, 60);
    assert.equal(a.constant('userName'), 'ann');
    assert.equal(a.isNew, true);
    await manager.close();
  });

  it('adds a session and hands its ID to the client in the cookie', async () => {
    const { manager, store } = setup();
    const session = manager.newSession();
    const http = exchange();
    await manager.add(session, http);
    assert.equal(http.set.length, 1);
    assert.match(http.set[0] ?? '', new RegExp(`^sessid=${session.id}; Max-Age=600; Path=/; HttpOnly; SameSite=Lax$`));
    assert.ok(await store.inner.get(session.id));
    await manager.close();
  });

  it('finds the session the cookie names, and sets no cookie for it', async () => {
    const { manager } = setup();
    const session = manager.newSession();
    await manager.add(session, exchange());
    const http = exchange({ sessid: session.id });
    assert.equal((await manager.get(http))?.id, session.id);
    assert.deepEqual(http.set, []);
    await manager.close();
  });

  it('asks nothing and sets nothing when the request has no cookie', async () => {
    const { manager, store } = setup();
    const http = exchange({ other: newSessionId() });
    assert.equal(await manager.get(http), undefined);
    assert.deepEqual(http.set, []);
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
      assert.equal(await manager.get(http), undefined, value);
      assert.equal(http.set.length, 1, value);
      assert.match(http.set[0] ?? '', /^sessid=; Max-Age=0; Path=\//);
    }
    assert.deepEqual(store.lookups, []);
    await manager.close();
  });

  it('checks the ID length it was configured with', async () => {
    const { manager, store } = setup(32);
    const session = manager.newSession();
    assert.equal(session.id.length, idLength(32));
    await manager.add(session, exchange());
    assert.equal(await manager.get(exchange({ sessid: newSessionId() })), undefined); // 18 bytes: wrong length
    assert.deepEqual(store.lookups, []);
    assert.equal((await manager.get(exchange({ sessid: session.id })))?.id, session.id);
    await manager.close();
  });

  it('clears the cookie of an unknown ID after one lookup', async () => {
    const { manager, store } = setup();
    const unknown = newSessionId();
    const http = exchange({ sessid: unknown });
    assert.equal(await manager.get(http), undefined);
    assert.deepEqual(store.lookups, [unknown]);
    assert.match(http.set[0] ?? '', /^sessid=; Max-Age=0; Path=\/; HttpOnly; SameSite=Lax; Expires=Thu, 01 Jan 1970/);
    await manager.close();
  });

  it('removes a session from the store and clears the cookie, Secure over HTTPS', async () => {
    const { manager } = setup();
    const session = manager.newSession();
    await manager.add(session, exchange());
    const http = exchange({ sessid: session.id }, true);
    await manager.remove(session, http);
    assert.equal(http.set.length, 1);
    assert.match(http.set[0] ?? '', /^sessid=; Max-Age=0; .*; Secure/);
    assert.equal(await manager.get(exchange({ sessid: session.id })), undefined);
    await manager.close();
  });

  it('sets no cookie when the store refuses a new session', async () => {
    const { manager, store } = setup();
    store.failAdd = new Error('store down');
    const http = exchange();
    await assert.rejects(manager.add(manager.newSession(), http), /store down/);
    assert.deepEqual(http.set, []);
    await manager.close();
  });
});
