#!/usr/bin/env node
// `npm test`: starts memcached, Valkey (standalone and a 3-node cluster) and the Datastore
// emulator once for the whole run (when they are installed; see test/support/services.ts),
// runs every test file with node's test runner, then stops them. Arguments narrow the run to
// some files or folders: npm test -- test/unit
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { tsImport } from 'tsx/esm/api';

const services = await tsImport('../test/support/services.ts', import.meta.url);
const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['test'];
const files = roots.flatMap(testFiles).sort();

const started = [];
// No Google metadata server here: tell the auth library not to look for one (and warn).
const env = { METADATA_SERVER_DETECTION: 'none', ...process.env };
async function share(name, start, variable) {
  if (services.missing(name)) return; // each test says what to install, or fails under CI=true
  const service = await start();
  started.push(service);
  env[variable] = service.address;
}
// A cluster keeps its state in files until destroyed; the other services have nothing to delete.
const stopAll = () => Promise.all(started.map((service) => (service.destroy ?? service.stop).call(service)));
// At once: the emulator takes seconds, and a Valkey cluster about 2.5 (a primary refuses to
// report itself ready within 2 s of starting).
const sharing = await Promise.allSettled([
  share('memcached', services.startMemcached, 'TEST_MEMCACHED'),
  share('valkey', services.startValkey, 'TEST_VALKEY'),
  share('valkey', services.startValkeyCluster, 'TEST_VALKEY_CLUSTER'),
  share('datastore-emulator', services.startDatastoreEmulator, 'TEST_DATASTORE_EMULATOR'),
]);
const failure = sharing.find((result) => result.status === 'rejected');
if (failure) {
  await stopAll();
  console.error(String(failure.reason));
  process.exit(1);
}

// One file at a time: the files share the services above and some stop or flush them.
const runner = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env },
);
// Ctrl-C or a timeout's SIGTERM: pass it to the runner first (services.ts then stops the servers).
for (const signal of ['SIGINT', 'SIGTERM']) process.prependListener(signal, () => runner.kill(signal));
const code = await new Promise((resolve) => runner.on('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0))));
await stopAll();
process.exit(code);

function testFiles(entry) {
  if (statSync(entry).isFile()) return [entry];
  return readdirSync(entry, { recursive: true })
    .map((name) => path.join(entry, String(name)))
    .filter((name) => name.endsWith('.test.ts') && !name.includes(`${path.sep}support${path.sep}`));
}
