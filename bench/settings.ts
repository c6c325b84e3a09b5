/** How long and how hard the benchmark runs; from arguments first, then environment. */
export interface Settings {
  quick: boolean;
  /** Write CPU profiles of the hot path instead of the comparison. */
  profile: boolean;
  rounds: number;
  /** Length of one load run (one variant, one kind of visitor, one round). */
  seconds: number;
  warmupSeconds: number;
  connections: number;
  /** Logged-in sessions a returning-visitor run cycles through (1: every request the same session). */
  sessions: number;
  /** Expired entities the purge measurement deletes. */
  purgeEntities: number;
  /** Only these variants (BENCH_ONLY=bare,memory); every one when empty. */
  only: string[];
}

export const USAGE = `npm run bench [-- options]
  --quick            2 rounds of 2 s, 5,000 entities to purge (about 2 minutes); also BENCH_QUICK=1
  --profile          CPU-profile the in-memory and memcache variants under load instead
  --rounds=N         rounds (default 3)          BENCH_ROUNDS
  --seconds=N        seconds per load run (5)    BENCH_SECONDS
  --connections=N    concurrent connections (10) BENCH_CONNECTIONS
  --sessions=N       sessions of returning visitors (default: one per connection) BENCH_SESSIONS
  --purge=N          expired entities to purge (20000) BENCH_PURGE_ENTITIES
  --only=a,b         only these variants         BENCH_ONLY`;

export function readSettings(argv: string[], env: Record<string, string | undefined>): Settings {
  const args = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match?.[1]) throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    args.set(match[1], match[2] ?? 'true');
  }
  const known = ['quick', 'profile', 'rounds', 'seconds', 'connections', 'sessions', 'purge', 'only', 'help'];
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
  const connections = number('connections', 'BENCH_CONNECTIONS', 10);
  const only = (args.get('only') ?? env['BENCH_ONLY'] ?? '').split(',').filter(Boolean);
  return {
    quick,
    profile: args.has('profile'),
    rounds: number('rounds', 'BENCH_ROUNDS', quick ? 2 : 3),
    seconds: number('seconds', 'BENCH_SECONDS', quick ? 2 : 5),
    warmupSeconds: quick ? 1 : 2,
    connections,
    sessions: number('sessions', 'BENCH_SESSIONS', connections),
    purgeEntities: number('purge', 'BENCH_PURGE_ENTITIES', quick ? 5_000 : 20_000),
    only,
  };
}
