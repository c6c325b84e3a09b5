// Preloaded into the server by bench/random-id-flood.ts (plain JavaScript, so the server runs
// without tsx): counts the Datastore RPCs the process makes, by method (the emulator keeps no
// statistics), and prints the totals to stderr on SIGUSR2. Every call of the library goes
// through `prepareGaxRequest_`.
import { DatastoreRequest } from '@google-cloud/datastore';

const calls = {};
const original = DatastoreRequest.prototype.prepareGaxRequest_;
DatastoreRequest.prototype.prepareGaxRequest_ = function (config, callback) {
  calls[config.method] = (calls[config.method] ?? 0) + 1;
  original.call(this, config, callback);
};
process.on('SIGUSR2', () => process.stderr.write(`datastore-calls ${JSON.stringify(calls)}\n`));
