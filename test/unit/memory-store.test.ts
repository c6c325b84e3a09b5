import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { newSessionId } from '../../src/session/id.js';
import type { LogFields, Logger } from '../../src/session/logger.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { Session } from '../../src/session/session.js';

type Variables = { count: number };

/** A clock the test moves by hand. */
function manualClock(start = Date.UTC(2026, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

function newSession(timeoutSeconds = 60): Session<{ userName: string }, Variables> {
  return Session.create({
    id: newSessionId(),
    timeoutSeconds,
    constants: { userName: 'ann' },
    variables: { count: 0 },
  });
}

/** A logger that remembers what it was told. */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: LogFields }[] } {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) =>
    void lines.push({ level, message, ...(fields && { fields }) });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('MemoryStore', () => {
  it('adds, gets, saves and removes a session', async () => {
    const store = new MemoryStore();
    try {
      const session = newSession();
      await store.add(session);
      assert.equal(session.isNew, false);
      assert.equal(store.size, 1);

      const loaded = (await store.get(session.id)) as Session<{ userName: string }, Variables> | undefined;
      assert.ok(loaded);
      assert.equal(loaded.constant('userName'), 'ann');
      assert.equal(loaded.get('count'), 0);
      loaded.set('count', 7);
      assert.equal(await store.save(loaded), true);
      assert.equal((await store.get(session.id))?.get('count'), 7);

      await store.remove(session.id);
      assert.equal(await store.get(session.id), undefined);
      assert.equal(store.size, 0);
      assert.equal(await store.get(newSessionId()), undefined);
    } finally {
      await store.close();
    }
  });

  it('hands out copies: changes that are not saved are not kept', async () => {
    const store = new MemoryStore();
    try {
      const session = newSession();
      await store.add(session);
      session.set('count', 99); // the caller's object, after add
      const loaded = await store.get(session.id);
      assert.ok(loaded);
      loaded.set('count', 5); // never saved
      assert.equal((await store.get(session.id))?.get('count'), 0);
    } finally {
      await store.close();
    }
  });

  it('counts both of two conflicting saves made through update', async () => {
    const store = new MemoryStore();
    try {
      const session = newSession();
      await store.add(session);
      const first = (await store.get(session.id)) as Session<Record<string, never>, Variables>;
      const second = (await store.get(session.id)) as Session<Record<string, never>, Variables>;
      first.update('count', (c) => (c ?? 0) + 1);
      second.update('count', (c) => (c ?? 0) + 1);
      assert.equal(await store.save(first), true);
      assert.equal(await store.save(second), true);
      assert.equal((await store.get(session.id))?.get('count'), 2);
    } finally {
      await store.close();
    }
  });

  it('does not bring back a session removed while a request held it', async () => {
    const store = new MemoryStore();
    try {
      const session = newSession();
      await store.add(session);
      const held = await store.get(session.id);
      assert.ok(held);
      await store.remove(session.id);
      held.set('count', 1);
      assert.equal(await store.save(held), false);
      assert.equal(await store.get(session.id), undefined);
    } finally {
      await store.close();
    }
  });

  it('expires a session idle for its timeout, and an access restarts the idle time', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    try {
      const session = newSession(60);
      await store.add(session);
      clock.advance(59_000);
      assert.ok(await store.get(session.id), 'alive one second before its timeout');
      clock.advance(59_000); // 59 s after the last access
      assert.ok(await store.get(session.id), 'the get above counted as access');
      clock.advance(60_000);
      assert.equal(await store.get(session.id), undefined);
      assert.equal(store.size, 0);
    } finally {
      await store.close();
    }
  });

  it('refuses to save an expired session', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    try {
      const session = newSession(60);
      await store.add(session);
      const held = await store.get(session.id);
      assert.ok(held);
      clock.advance(60_000);
      held.set('count', 1);
      assert.equal(await store.save(held), false);
    } finally {
      await store.close();
    }
  });

  it('removeExpired drops idle sessions only', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    try {
      const short = newSession(10);
      const long = newSession(100);
      await store.add(short);
      await store.add(long);
      clock.advance(10_000);
      assert.equal(store.removeExpired(), 1);
      assert.equal(store.size, 1);
      assert.ok(await store.get(long.id));
    } finally {
      await store.close();
    }
  });

  it('runs a cleaner that removes idle sessions without any request', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now, cleanerIntervalMs: 10 });
    try {
      await store.add(newSession(1));
      await store.add(newSession(1));
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
    await store.add(newSession(1));
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

  it('tells its logger about added, removed and expired sessions, without whole IDs', async () => {
    const clock = manualClock();
    const logger = recordingLogger();
    const store = new MemoryStore({ now: clock.now, logger });
    try {
      const removed = newSession(60);
      const expired = newSession(60);
      const swept = newSession(60);
      await store.add(removed);
      await store.add(expired);
      await store.add(swept);
      await store.remove(removed.id);
      clock.advance(60_000);
      await store.get(expired.id);
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
      for (const id of [removed.id, expired.id, swept.id])
        assert.equal(text.includes(id), false, 'a whole ID was logged');
    } finally {
      await store.close();
    }
  });

  it('logs nothing by default', async () => {
    const written: string[] = [];
    const original = { log: console.log, info: console.info, warn: console.warn, error: console.error };
    const capture = (...args: unknown[]): void => void written.push(args.join(' '));
    Object.assign(console, { log: capture, info: capture, warn: capture, error: capture });
    try {
      const store = new MemoryStore();
      const session = newSession();
      await store.add(session);
      await store.remove(session.id);
      await store.close();
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
    const store = new MemoryStore();
    const session = Session.create<{ user: { name: string } }, { tags: string[] }>({
      id: newSessionId(),
      timeoutSeconds: 60,
      constants: { user: { name: 'ann' } },
      variables: { tags: ['a'] },
    });
    await store.add(session);
    const loaded = (await store.get(session.id)) as Session<{ user: { name: string } }, { tags: string[] }>;
    loaded.get('tags')?.push('b');
    loaded.constant('user').name = 'mallory';
    await store.save(loaded);
    const again = (await store.get(session.id)) as Session<{ user: { name: string } }, { tags: string[] }>;
    assert.deepEqual(again.get('tags'), ['a']);
    assert.equal(again.constant('user').name, 'ann');
    await store.close();
  });
});
