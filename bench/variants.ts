/**
 * The servers the benchmark compares. Each runs in its own process (bench/server.ts), so its
 * CPU time is its own; `kind` says which code serves it, `env` how it is configured.
 */
export type VariantKind = 'bare' | 'app' | 'express-session' | 'memjs' | 'iovalkey';

export interface Variant {
  /** Short stable name, used on the command line (BENCH_ONLY) and in result files. */
  name: string;
  label: string;
  kind: VariantKind;
  /** Extra environment for the server process. */
  env: Record<string, string>;
  /** The servers it needs; the run skips it, with a note, where one cannot be started. */
  needs: { memcached: boolean; datastore: boolean; valkey: boolean };
}

const none = { memcached: false, datastore: false, valkey: false };
const memcached = { ...none, memcached: true };
const valkey = { ...none, valkey: true };
const datastore = { ...none, datastore: true };

const memcacheOnly: Variant = {
  name: 'memcache',
  label: 'app, memcache only',
  kind: 'app',
  env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'off' },
  needs: memcached,
};
const valkeyOnly: Variant = {
  name: 'valkey',
  label: 'app, Valkey only',
  kind: 'app',
  env: { SESSION_STORE: 'valkey', SESSION_DATASTORE: 'off' },
  needs: valkey,
};

/** The same app without the demo's session count (BENCH_NO_COUNT, see bench/server.ts): what the count costs. */
function withoutSessionCount(variant: Variant): Variant {
  return {
    ...variant,
    name: `${variant.name}-nocount`,
    label: `${variant.label}, without the session count`,
    env: { ...variant.env, BENCH_NO_COUNT: '1' },
  };
}

export const VARIANTS: readonly Variant[] = [
  // In the order of a round (reversed every other round): what is compared stands side by side,
  // so each pair's runs are seconds apart; the Datastore variants come last, as the emulator's
  // work after them slows whatever runs next.
  { name: 'bare', label: 'bare Express + ejs (no session)', kind: 'bare', env: {}, needs: none },
  { name: 'memory', label: 'app, in-memory store', kind: 'app', env: { SESSION_STORE: 'memory' }, needs: none },
  {
    name: 'es-memory',
    label: 'express-session + MemoryStore',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'memory' },
    needs: none,
  },
  memcacheOnly,
  withoutSessionCount(memcacheOnly),
  {
    name: 'memjs',
    label: 'hand-written cookie + memjs get/set',
    kind: 'memjs',
    env: {},
    needs: memcached,
  },
  {
    name: 'es-memcached',
    label: 'express-session + connect-memcached',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'memcached' },
    needs: memcached,
  },
  valkeyOnly,
  withoutSessionCount(valkeyOnly),
  {
    name: 'iovalkey',
    label: 'hand-written cookie + iovalkey GET/SET',
    kind: 'iovalkey',
    env: {},
    needs: valkey,
  },
  {
    name: 'es-redis',
    label: 'express-session + connect-redis (iovalkey)',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'redis' },
    needs: valkey,
  },
  {
    name: 'memcache-async',
    label: 'app, memcache + Datastore async',
    kind: 'app',
    env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'async' },
    needs: { ...memcached, datastore: true },
  },
  {
    name: 'valkey-async',
    label: 'app, Valkey + Datastore async',
    kind: 'app',
    env: { SESSION_STORE: 'valkey', SESSION_DATASTORE: 'async' },
    needs: { ...valkey, datastore: true },
  },
  {
    name: 'memcache-sync',
    label: 'app, memcache + Datastore sync',
    kind: 'app',
    env: { SESSION_STORE: 'memcache', SESSION_DATASTORE: 'sync' },
    needs: { ...memcached, datastore: true },
  },
  {
    name: 'valkey-sync',
    label: 'app, Valkey + Datastore sync',
    kind: 'app',
    env: { SESSION_STORE: 'valkey', SESSION_DATASTORE: 'sync' },
    needs: { ...valkey, datastore: true },
  },
  {
    name: 'es-datastore',
    label: 'express-session + connect-datastore',
    kind: 'express-session',
    env: { BENCH_ES_STORE: 'datastore' },
    needs: datastore,
  },
  {
    name: 'datastore',
    label: 'app, Datastore only',
    kind: 'app',
    env: { SESSION_STORE: 'datastore' },
    needs: datastore,
  },
];

export function variantNamed(name: string): Variant {
  const variant = VARIANTS.find((v) => v.name === name);
  if (!variant) throw new Error(`unknown variant "${name}" (known: ${VARIANTS.map((v) => v.name).join(', ')})`);
  return variant;
}
