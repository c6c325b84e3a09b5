import type { Socket } from 'node:net';

/**
 * Holds a cache connection's writes until this turn of the event loop is over, so that the
 * commands of every request served in the turn leave in one write instead of one each.
 *
 * Under load a turn serves many requests, and each sends its own command (a read, a
 * conditional write, an index read). Every socket write is a system call, which costs more
 * than anything else a cache command does here: batching them is the largest single cut in
 * a view's CPU time (see docs/benchmarks.md). A command waits at most for the rest of the
 * turn, microseconds; alone, it leaves as it would have.
 */
export function batchWritesThisTurn(socket: Socket | undefined): void {
  if (!socket || socket.writableCorked > 0) return;
  socket.cork();
  setImmediate(release, socket);
}

function release(socket: Socket): void {
  // A socket that closed meanwhile has nothing left to send.
  if (socket.writableCorked > 0) socket.uncork();
}
