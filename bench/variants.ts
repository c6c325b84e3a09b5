/**
 * The servers the benchmark compares. Each runs in its own process (bench/server.ts), so its
 * CPU time is its own; `kind` says which code serves it, `env` how it is configured.
 */
export type VariantKind = 'bare' | 'app' | 'express-session' | 'memjs';

export interface Variant {
  /** Short stable name, used on the command line (BENCH_ONLY) and in result files. */
  name: string;
  label: string;
  kind: VariantKind;
  /** Extra environment for the server process. */
  env: Record<string, string>;
  needs: { memcached: boolean; datastore: boolean };
}

const none = { memcached: false, datastore: false };

export const VARIANTS: readonly Variant[] = [
  { name: 'bare', label: 'bare Express + ejs (no session)', kind: 'bare', env: {}, needs: none },
  { name: 'memory', label: 'app, in-memory store', kind: 'app', env: { SESSION_STORE: 'memory' }, needs: none },
  {
    name: 'memcache',
    label: 'app, memcache only',
    kind: 'app',
    env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'off' },
    needs: { memcached: true, datastore: false },
  },
  {
    name: 'memcache-sync',
    label: 'app, memcache + Datastore sync',
    kind: 'app',
    env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'sync' },
    needs: { memcached: true, datastore: true },
  },
  {
    name: 'memcache-async',
    label: 'app, memcache + Datastore async',
    kind: 'app',
    env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'async' },
    needs: { memcached: true, datastore: true },
  },
  {
    name: 'datastore',
    label: 'app, Datastore only',
    kind: 'app',
    env: { SESSION_STORE: 'datastore' },
    needs: { memcached: false, datastore: true },
  },
  {
    name: 'es-memory',
    label: 'express-session + MemoryStore',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'memory' },
    needs: none,
  },
  {
    name: 'es-memcached',
    label: 'express-session + connect-memcached',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'memcached' },
    needs: { memcached: true, datastore: false },
  },
  {
    name: 'es-datastore',
    label: 'express-session + connect-datastore',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'datastore' },
    needs: { memcached: false, datastore: true },
  },
  {
    name: 'memjs',
    label: 'hand-written cookie + memjs get/set',
    kind: 'memjs',
    env: {},
    needs: { memcached: true, datastore: false },
  },
];

export function variantNamed(name: string): Variant {
  const variant = VARIANTS.find((v) => v.name === name);
  if (!variant) throw new Error(`unknown variant "${name}" (known: ${VARIANTS.map((v) => v.name).join(', ')})`);
  return variant;
}
