import { DatastoreRequest } from '@google-cloud/datastore';

/**
 * Counts the Datastore RPCs this process makes, by method (`commit` = one write, whatever
 * it holds; `lookup`, `runQuery`, `beginTransaction`...). The emulator keeps no statistics,
 * so the benchmark counts at the client: every call of the library, from a plain `save` to a
 * transaction's commit, goes through `prepareGaxRequest_`.
 */
const calls: Record<string, number> = {};

type Prepare = (this: DatastoreRequest, config: { method: string }, callback: unknown) => void;

export function countDatastoreCalls(): void {
  const prototype = DatastoreRequest.prototype as unknown as { prepareGaxRequest_: Prepare };
  const original = prototype.prepareGaxRequest_;
  prototype.prepareGaxRequest_ = function (config, callback) {
    calls[config.method] = (calls[config.method] ?? 0) + 1;
    original.call(this, config, callback);
  };
}

export function datastoreCalls(): Record<string, number> {
  return { ...calls };
}
