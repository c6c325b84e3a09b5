import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackupQueue } from '../../src/gaesession/backup-queue.js';
import type { SessionRecord } from '../../src/session/record.js';

function record(id: string, version: number): SessionRecord {
  const now = Date.now();
  return { id, created: now, accessed: now, timeout: 60, lifetime: 3600, version, constants: {}, variables: {} };
}

describe('BackupQueue.drop', () => {
  it('resolves only once the write in flight has landed, so a logout deletes after it', async () => {
    let land!: () => void;
    const landed = new Promise<void>((resolve) => (land = resolve));
    const started: number[] = [];
    const queue = new BackupQueue({
      intervalMs: 0,
      write: (r) => {
        started.push(r.version);
        return landed;
      },
    });
    queue.enqueue(record('abc', 1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(started, [1], 'the write is in flight');
    queue.enqueue(record('abc', 2));

    let dropped = false;
    const drop = queue.drop('abc').then(() => (dropped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(dropped, false, 'still waiting for the write in flight');
    land();
    await drop;
    await queue.flush();
    assert.deepEqual(started, [1], 'the waiting state was discarded, never written');
    assert.equal(queue.size, 0);
  });

  it('resolves at once when nothing of the session is in flight', async () => {
    const queue = new BackupQueue({ intervalMs: 60_000, write: () => Promise.resolve() });
    queue.enqueue(record('abc', 1));
    await queue.drop('abc');
    await queue.drop('never-seen');
    assert.equal(queue.size, 0);
  });

  it('does not let a write in flight that fails be tried again', async () => {
    let fail!: (error: Error) => void;
    const started: number[] = [];
    const queue = new BackupQueue({
      intervalMs: 0,
      write: (r) => {
        started.push(r.version);
        return new Promise((_, reject) => (fail = reject));
      },
    });
    queue.enqueue(record('abc', 1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    const drop = queue.drop('abc');
    fail(new Error('contention'));
    await drop;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(started, [1], 'the logged-out session is not written after the logout');
    assert.equal(queue.size, 0);
  });
});
