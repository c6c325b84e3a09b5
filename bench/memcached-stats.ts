import net from 'node:net';

/** memcached's `stats` counters, by name (numbers only). */
export type MemcachedStats = Record<string, number>;

/** Reads `stats` from the memcached at 127.0.0.1:port. */
export function memcachedStats(port: number): Promise<MemcachedStats> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('stats\r\n'));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (!reply.endsWith('END\r\n')) return;
      socket.destroy();
      const stats: MemcachedStats = {};
      for (const line of reply.split('\r\n')) {
        const [tag, name, value] = line.split(' ');
        if (tag === 'STAT' && name && value !== undefined && /^\d+(\.\d+)?$/.test(value)) stats[name] = Number(value);
      }
      resolve(stats);
    });
    socket.once('error', reject);
  });
}

/** The commands (each one round trip, unless a client pipelines) memcached served between two readings. */
export function memcacheCommands(before: MemcachedStats, after: MemcachedStats): MemcacheCommands {
  const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0);
  const counts = {
    get: delta('cmd_get'),
    set: delta('cmd_set'),
    touch: delta('cmd_touch'),
    delete: delta('delete_hits') + delta('delete_misses'),
    incrDecr: delta('incr_hits') + delta('incr_misses') + delta('decr_hits') + delta('decr_misses'),
  };
  return { ...counts, total: counts.get + counts.set + counts.touch + counts.delete + counts.incrDecr };
}

export interface MemcacheCommands {
  get: number;
  /** set, add, replace, cas, append, prepend. */
  set: number;
  touch: number;
  delete: number;
  incrDecr: number;
  total: number;
}
