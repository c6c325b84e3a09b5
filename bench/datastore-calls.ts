import { DatastoreClient } from '@google-cloud/datastore';

/**
 * Counts the Datastore RPCs this process makes, by method (`commit` = one write, whatever
 * it holds; `lookup`, `runQuery`, `beginTransaction`...). The emulator keeps no statistics,
 * so the benchmark counts at the client: every call, from the library's entity API (a `save`,
 * a transaction's commit) to the session tier's own, is a method of the gRPC client.
 */
const calls: Record<string, number> = {};

const METHODS = ['lookup', 'commit', 'runQuery', 'runAggregationQuery', 'beginTransaction', 'rollback'] as const;

export function countDatastoreCalls(): void {
  const prototype = DatastoreClient.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of METHODS) {
    const original = prototype[method]!;
    prototype[method] = function (this: DatastoreClient, ...args: unknown[]) {
      calls[method] = (calls[method] ?? 0) + 1;
      return original.apply(this, args);
    };
  }
}

export function datastoreCalls(): Record<string, number> {
  return { ...calls };
}
