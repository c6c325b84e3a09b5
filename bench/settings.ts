/** The kinds of load the benchmark puts on every variant (see docs/benchmarks.md). */
export type Scenario = 'returning' | 'new' | 'spread' | 'contention';
export const SCENARIOS: readonly Scenario[] = ['returning', 'spread', 'contention', 'new'];

/** How long and how hard the benchmark runs; from arguments first, then environment. */
export interface Settings {
  quick: boolean;
  /** Write CPU profiles of the hot path instead of the comparison. */
  profile: boolean;
  rounds: number;
  /** Length of one load run (one variant, one scenario, one round). */
  seconds: number;
  warmupSeconds: number;
  /** Connections of the `returning` and `new` scenarios. */
  connections: number;
  /** Logged-in sessions the `returning` scenario cycles through (1: every request the same session). */
  sessions: number;
  /** Connections of the `spread` scenario (each its own session) and of `contention` (all one session). */
  spreadConnections: number;
  scenarios: Scenario[];
  /** Expired entities the purge measurement deletes. */
  purgeEntities: number;
  /** Only these variants (BENCH_ONLY=bare,memory); every one when empty. */
  only: string[];
}

export const USAGE = `npm run bench [-- options]
  --quick              1 round of 2 s, 5,000 entities to purge (about 4 minutes); also BENCH_QUICK=1
  --profile            CPU-profile the in-memory and memcache variants under load instead
  --rounds=N           interleaved rounds (default 2)          BENCH_ROUNDS
  --seconds=N          seconds per load run (3)                BENCH_SECONDS
  --scenarios=a,b      of ${SCENARIOS.join(', ')} (all)   BENCH_SCENARIOS
  --connections=N      connections of returning and new (10)   BENCH_CONNECTIONS
  --sessions=N         sessions of returning (one per connection) BENCH_SESSIONS
  --spread-connections=N  connections of spread and contention (32) BENCH_SPREAD_CONNECTIONS
  --purge=N            expired entities to purge (20000)       BENCH_PURGE_ENTITIES
  --only=a,b           only these variants                     BENCH_ONLY`;

export function readSettings(argv: string[], env: Record<string, string | undefined>): Settings {
  const args = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match?.[1]) throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    args.set(match[1], match[2] ?? 'true');
  }
  const known = [
    'quick',
    'profile',
    'rounds',
    'seconds',
    'scenarios',
    'connections',
    'sessions',
    'spread-connections',
    'purge',
    'only',
    'help',
  ];
  for (const name of args.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}\n${USAGE}`);
  if (args.has('help')) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const quick = args.has('quick') || env['BENCH_QUICK'] === '1';
  const number = (arg: string, variable: string, fallback: number): number => {
    const text = args.get(arg) ?? env[variable];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${arg} / ${variable} must be a whole number ≥ 1`);
    return value;
  };
  const list = (arg: string, variable: string): string[] =>
    (args.get(arg) ?? env[variable] ?? '').split(',').filter(Boolean);
  const connections = number('connections', 'BENCH_CONNECTIONS', 10);
  const scenarios = list('scenarios', 'BENCH_SCENARIOS');
  for (const name of scenarios) {
    if (!SCENARIOS.includes(name as Scenario))
      throw new Error(`unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
  }
  return {
    quick,
    profile: args.has('profile'),
    rounds: number('rounds', 'BENCH_ROUNDS', quick ? 1 : 2),
    seconds: number('seconds', 'BENCH_SECONDS', quick ? 2 : 3),
    warmupSeconds: 1,
    connections,
    sessions: number('sessions', 'BENCH_SESSIONS', connections),
    spreadConnections: number('spread-connections', 'BENCH_SPREAD_CONNECTIONS', 32),
    // In the order they run for each variant: `spread` before `contention`, whose length it sets.
    scenarios: scenarios.length > 0 ? SCENARIOS.filter((s) => scenarios.includes(s)) : [...SCENARIOS],
    purgeEntities: number('purge', 'BENCH_PURGE_ENTITIES', quick ? 5_000 : 20_000),
    only: list('only', 'BENCH_ONLY'),
  };
}
