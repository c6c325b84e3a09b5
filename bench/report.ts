import type { ReadOnlyCounts, StoredBytes } from './counts.js';
import type { RunResult } from './measure.js';
import type { MemcacheCommands } from './memcached-stats.js';
import type { PurgeThroughput } from './purge.js';
import { SCENARIOS, type Scenario, type Settings } from './settings.js';
import type { ValkeyCommands, ValkeyTrips } from './valkey.js';
import { VARIANTS, type Variant } from './variants.js';

/** A run whose req/s varied more than this between rounds was disturbed (by other load). */
export const DISTURBED_SPREAD = 1.25;
export const BASELINE = 'bare';

/** One variant and scenario over all rounds: medians, and counts per request. */
export interface Summary {
  variant: string;
  scenario: Scenario;
  rounds: number;
  requests: number;
  failures: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuMicrosPerRequest: number;
  /** max/min req/s over the rounds. */
  spread: number;
  memcachePerRequest: MemcacheCommands | undefined;
  valkeyPerRequest: ValkeyCommands | undefined;
  datastorePerRequest: Record<string, number>;
  /**
   * `contention`, summed over the rounds: updates lost (a 2xx view the final count does not hold,
   * or a count two views showed; from the counts shown alone, a lower bound, when a run was cut
   * off), and views counted beyond the 2xx ones (answered with an error, yet stored).
   */
  lostUpdates: number | undefined;
  countedBeyond2xx: number | undefined;
  cutOff: boolean;
}

export interface Results {
  date: string;
  machine: { cpus: number; model: string; node: string; pinning: string; valkey: string | undefined };
  settings: Settings & { minutes: number };
  runs: RunResult[];
  bytes: Record<string, StoredBytes>;
  readOnly: Record<string, ReadOnlyCounts>;
  purge: PurgeThroughput | undefined;
  skipped: string[];
}

export function summarize(runs: RunResult[]): Summary[] {
  const summaries: Summary[] = [];
  for (const variant of VARIANTS) {
    for (const scenario of SCENARIOS) {
      const mine = runs.filter((r) => r.variant === variant.name && r.scenario === scenario);
      if (mine.length === 0) continue;
      const requests = sum(mine.map((r) => r.load.requests));
      const rps = mine.map((r) => r.load.requestsPerSecond);
      const memcache = mine.every((r) => r.memcache) ? mine.map((r) => r.memcache as MemcacheCommands) : undefined;
      const valkey = mine.every((r) => r.valkey) ? mine.map((r) => r.valkey as ValkeyCommands) : undefined;
      summaries.push({
        variant: variant.name,
        scenario,
        rounds: mine.length,
        requests,
        failures: sum(mine.map((r) => r.load.failures)),
        requestsPerSecond: median(rps),
        p50Ms: median(mine.map((r) => r.load.p50Ms)),
        p99Ms: median(mine.map((r) => r.load.p99Ms)),
        cpuMicrosPerRequest: median(mine.map(cpuPerRequest)),
        spread: Math.max(...rps) / Math.max(1e-9, Math.min(...rps)),
        memcachePerRequest: memcache && (perRequest(memcache, requests) as unknown as MemcacheCommands),
        valkeyPerRequest: valkey && {
          total: sum(valkey.map((v) => v.total)) / Math.max(1, requests),
          byCommand: perRequest(
            valkey.map((v) => v.byCommand),
            requests,
          ),
        },
        datastorePerRequest: perRequest(
          mine.map((r) => r.datastore),
          requests,
        ),
        ...contention(mine),
      });
    }
  }
  return summaries;
}

function contention(runs: RunResult[]): Pick<Summary, 'lostUpdates' | 'countedBeyond2xx' | 'cutOff'> {
  const counted = runs.flatMap((r) => (r.contention ? [[r.contention, r.load.stoppedEarly] as const] : []));
  if (counted.length === 0) return { lostUpdates: undefined, countedBeyond2xx: undefined, cutOff: false };
  const cutOff = counted.some(([, early]) => early);
  return {
    // A run cut off leaves requests in flight the server may have counted: only the counts
    // shown twice tell then.
    lostUpdates: sum(counted.map(([c, early]) => (early ? c.repeatedCounts : Math.max(c.deficit, c.repeatedCounts)))),
    countedBeyond2xx: cutOff ? undefined : sum(counted.map(([c]) => Math.max(0, -c.deficit))),
    cutOff,
  };
}

function perRequest(counts: object[], requests: number): Record<string, number> {
  const total: Record<string, number> = {};
  for (const count of counts) {
    for (const [key, value] of Object.entries(count)) total[key] = (total[key] ?? 0) + (value as number);
  }
  return Object.fromEntries(Object.entries(total).map(([key, value]) => [key, value / Math.max(1, requests)]));
}

const TITLES: Record<Scenario, (s: Settings) => string> = {
  returning: (s) =>
    `Returning visitors: ${s.connections} connections, ${s.sessions} logged-in sessions (the count changes each view)`,
  spread: (s) =>
    `Spread: ${s.spreadConnections} connections, ${s.spreadConnections} logged-in sessions (each connection its own returning visitor)`,
  contention: (s) =>
    `Contention: ${s.spreadConnections} connections on one shared session (same cookie); no update may be lost`,
  new: (s) => `New visitor: ${s.connections} connections, no cookie (the login page, no session)`,
};

/** The full report in Markdown: a table per scenario, the ratios, store traffic, purge, targets. */
export function renderReport(results: Results): string {
  const summaries = summarize(results.runs);
  const find = (variant: string, scenario: Scenario = 'returning'): Summary | undefined =>
    summaries.find((s) => s.variant === variant && s.scenario === scenario);
  const lines: string[] = [];
  const disturbed = summaries.filter((s) => s.spread > DISTURBED_SPREAD);
  const ratio = (value: number, baseline: number | undefined): string =>
    baseline ? `${(value / baseline).toFixed(2)}×` : '—';

  for (const scenario of results.settings.scenarios) {
    const base = find(BASELINE, scenario);
    const contention = scenario === 'contention';
    lines.push(`### ${TITLES[scenario](results.settings)}`, '');
    lines.push(
      '| variant | CPU µs/req | ×bare | req/s | ×bare | p50 ms | p99 ms | round var. | failures |' +
        (contention ? ' lost updates | counted beyond 2xx | req/s ÷ spread |' : ''),
    );
    lines.push(
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |' + (contention ? ' ---: | ---: | ---: |' : ''),
    );
    for (const variant of VARIANTS) {
      const s = find(variant.name, scenario);
      if (!s) continue;
      const spread = find(variant.name, 'spread');
      lines.push(
        `| ${variant.label} | ${s.cpuMicrosPerRequest.toFixed(0)} | ${ratio(s.cpuMicrosPerRequest, base?.cpuMicrosPerRequest)} ` +
          `| ${s.requestsPerSecond.toFixed(0)} | ${ratio(s.requestsPerSecond, base?.requestsPerSecond)} ` +
          `| ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} ` +
          `| ${s.spread.toFixed(2)}${s.spread > DISTURBED_SPREAD ? ' ⚠' : ''} | ${s.failures} |` +
          (contention
            ? ` ${lost(s)} | ${s.countedBeyond2xx ?? '—'} ` +
              `| ${spread ? (s.requestsPerSecond / spread.requestsPerSecond).toFixed(2) : '—'} |`
            : ''),
      );
    }
    lines.push('');
    if (contention) {
      lines.push(
        '_lost updates_: the count one more view showed after the run, against the count before it plus the ' +
          "run's 2xx views plus that view; also every count two 2xx pages showed (each view shows the count it " +
          'stored). _counted beyond 2xx_: views stored though answered with an error. Summed over the rounds; a ' +
          'run sends an exact number of requests, so none is cut off in flight, unless it ran past its limit ' +
          '(then only the counts shown twice tell, a lower bound). Only the app promises no loss: the references overwrite.',
        '',
      );
    }
  }
  lines.push(
    disturbed.length > 0
      ? `**Disturbed run**: req/s varied more than ${DISTURBED_SPREAD}× between rounds for ` +
          `${disturbed.map((s) => `${s.variant} (${s.scenario})`).join(', ')} (⚠) — other load on the machine; ` +
          'trust CPU per request over req/s, or run again.'
      : `Undisturbed: req/s varied less than ${DISTURBED_SPREAD}× between rounds for every variant.`,
    '',
  );

  lines.push(...ratios(results, find), '');
  lines.push(...storeTraffic(results, find), '');

  const purge = results.purge;
  lines.push('### Purge', '');
  lines.push(
    purge
      ? `${purge.deleted} of ${purge.inserted} expired sessions deleted in ${purge.seconds.toFixed(2)} s: ` +
          `**${purge.deletesPerSecond.toFixed(0)} deletes/s** (completed: ${purge.completed}, expired left: ${purge.remaining}).`
      : 'Not measured (no Datastore emulator).',
    '',
  );

  lines.push(...targets(results, summaries, find));
  if (results.skipped.length > 0) lines.push('', `Skipped: ${results.skipped.join('; ')}.`);
  return lines.join('\n') + '\n';
}

type Find = (variant: string, scenario?: Scenario) => Summary | undefined;

/** The session-carrying scenarios the ratios are given for. */
const LOADED: readonly Scenario[] = ['returning', 'spread', 'contention'];

/**
 * How many times better `ours` is than `theirs`: by CPU, their CPU per request ÷ ours; by
 * req/s, ours ÷ theirs. Above 1, ours is ahead. Each round's two runs are compared with each
 * other (they ran seconds apart) and the median of those ratios is taken: on a shared machine a
 * slow spell then skews one round's ratio, not one variant's whole result.
 */
function versus(runs: RunResult[], ours: string, theirs: string, scenario: Scenario): [number, number] | undefined {
  const cpu: number[] = [];
  const rps: number[] = [];
  for (const a of runs) {
    if (a.variant !== ours || a.scenario !== scenario) continue;
    const b = runs.find((r) => r.variant === theirs && r.scenario === scenario && r.round === a.round);
    if (!b) continue;
    cpu.push(cpuPerRequest(b) / cpuPerRequest(a));
    rps.push(a.load.requestsPerSecond / b.load.requestsPerSecond);
  }
  return cpu.length > 0 ? [median(cpu), median(rps)] : undefined;
}

function cpuPerRequest(run: RunResult): number {
  return run.cpuMicros / Math.max(1, run.load.requests);
}

const COMPARISONS: readonly [string, string, string][] = [
  ['memory', 'bare', 'in-memory ÷ bare Express'],
  ['memcache', 'es-memcached', 'memcache-only ÷ express-session + connect-memcached'],
  ['memcache', 'memjs', 'memcache-only ÷ cookie + memjs lower bound'],
  ['memcache-nocount', 'memjs', 'memcache-only without the session count ÷ cookie + memjs lower bound'],
  ['memcache', 'memcache-nocount', 'memcache-only ÷ memcache-only without the session count (what the count costs)'],
  ['valkey', 'es-redis', 'Valkey-only ÷ express-session + connect-redis'],
  ['valkey', 'iovalkey', 'Valkey-only ÷ cookie + iovalkey lower bound'],
  ['valkey-nocount', 'iovalkey', 'Valkey-only without the session count ÷ cookie + iovalkey lower bound'],
  ['valkey', 'valkey-nocount', 'Valkey-only ÷ Valkey-only without the session count (what the count costs)'],
  ['valkey', 'memcache', 'Valkey-only ÷ memcache-only'],
  ['datastore', 'es-datastore', 'Datastore-only ÷ express-session + connect-datastore'],
  ['memcache-async', 'memcache', 'memcache + async ÷ memcache-only'],
  ['valkey-async', 'valkey', 'Valkey + async ÷ Valkey-only'],
  ['memcache-sync', 'es-datastore', 'memcache + sync ÷ express-session + connect-datastore'],
];

function ratios(results: Results, find: Find): string[] {
  const scenarios = LOADED.filter((s) => results.settings.scenarios.includes(s));
  if (scenarios.length === 0) return [];
  const lines = [
    "### Ratios (same run; above 1 the first is ahead: by CPU, the second's CPU/req ÷ the first's; by req/s, the first's ÷ the second's; the median of the rounds' ratios, each round's two runs seconds apart)",
    '',
    `| ratio | ${scenarios.map((s) => `${s}: by CPU | ${s}: by req/s`).join(' | ')} |`,
    `| --- | ${scenarios.map(() => '---: | ---:').join(' | ')} |`,
  ];
  for (const [ours, theirs, text] of COMPARISONS) {
    const cells = scenarios.map((scenario) => {
      const r = versus(results.runs, ours, theirs, scenario);
      return r ? `${r[0].toFixed(2)}× | ${r[1].toFixed(2)}×` : '— | —';
    });
    if (cells.every((c) => c === '— | —')) continue;
    lines.push(`| ${text} | ${cells.join(' | ')} |`);
  }
  const cpu = scenarios.map((scenario) => {
    const v = find('valkey', scenario);
    const m = find('memcache', scenario);
    return `${v && m ? `${(v.cpuMicrosPerRequest / m.cpuMicrosPerRequest).toFixed(2)}×` : '—'} | —`;
  });
  if (cpu.some((c) => !c.startsWith('—')))
    lines.push(`| Valkey-only CPU/req ÷ memcache-only CPU/req (lower is better) | ${cpu.join(' | ')} |`);
  return lines;
}

function storeTraffic(results: Results, find: Find): string[] {
  const uses = (v: Variant): boolean => v.needs.memcached || v.needs.datastore || v.needs.valkey;
  const lines = [
    '### Store traffic per view',
    '',
    'Returning visitors under load, then (app only) views one after another: a counted `GET /demo`, and a read-only view that changes nothing.',
    '',
    '| variant | memcache cmds/view (get+set+touch+delete) | Valkey cmds/view (commandstats) | Datastore RPCs/view ' +
      '| counted view: Valkey round trips | read-only view: memcache cmds | read-only view: Valkey round trips ' +
      '| read-only view: Datastore RPCs | bytes/session memcache | Valkey | Datastore |',
    '| --- | ---: | --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: |',
  ];
  for (const variant of VARIANTS) {
    const s = find(variant.name);
    if (!s || !uses(variant)) continue;
    const readOnly = results.readOnly[variant.name];
    const bytes = results.bytes[variant.name];
    const app = variant.kind === 'app';
    lines.push(
      `| ${variant.label} | ${commands(s.memcachePerRequest, variant.needs.memcached)} ` +
        `| ${valkeyCommands(s.valkeyPerRequest, variant.needs.valkey)} ` +
        `| ${rpcs(s.datastorePerRequest, variant.needs.datastore)} ` +
        `| ${app ? trips(readOnly?.valkeyCounted, variant.needs.valkey) : '—'} ` +
        `| ${readOnly ? commands(readOnly.memcache, variant.needs.memcached) : '—'} ` +
        `| ${app ? trips(readOnly?.valkey, variant.needs.valkey) : '—'} ` +
        `| ${readOnly ? rpcs(readOnly.datastore, variant.needs.datastore) : '—'} ` +
        `| ${bytes?.memcache ?? '—'} | ${bytes?.valkey ?? '—'} | ${bytes?.datastore ?? '—'} |`,
    );
  }
  lines.push(
    '',
    "Valkey's commandstats count the commands a script runs (inside EVALSHA or FCALL) besides the script itself; " +
      'the round-trip columns (MONITOR) count only what a client sent, with the script\'s commands after "in scripts".',
  );
  if (!results.settings.scenarios.includes('contention')) return lines;
  lines.push('', '#### Under contention (one session on every connection)', '');
  lines.push('| variant | memcache cmds/view | Valkey cmds/view (commandstats) | Datastore RPCs/view | lost updates |');
  lines.push('| --- | ---: | --- | --- | ---: |');
  for (const variant of VARIANTS) {
    const s = find(variant.name, 'contention');
    if (!s || !uses(variant)) continue;
    lines.push(
      `| ${variant.label} | ${commands(s.memcachePerRequest, variant.needs.memcached)} ` +
        `| ${valkeyCommands(s.valkeyPerRequest, variant.needs.valkey)} ` +
        `| ${rpcs(s.datastorePerRequest, variant.needs.datastore)} | ${lost(s)} |`,
    );
  }
  return lines;
}

function targets(results: Results, summaries: Summary[], find: Find): string[] {
  const scenarios = (['returning', 'spread'] as const).filter((s) => results.settings.scenarios.includes(s));
  const lines = [
    '### Targets (issues 13 and 11; CPU per request first)',
    '',
    `| target | ${scenarios.map((s) => `${s}: by CPU | ${s}: by req/s`).join(' | ')} | verdict |`,
    `| --- | ${scenarios.map(() => '---: | ---:').join(' | ')} | --- |`,
  ];
  /** ours ≥ minimum × theirs, by CPU (their CPU/req ÷ ours) and by req/s (ours ÷ theirs), or by req/s only. */
  const goal = (ours: string, theirs: string, minimum: number, text: string, only?: 'rps'): void => {
    const measured = scenarios.map((scenario) => versus(results.runs, ours, theirs, scenario));
    const cells = measured.map((r) =>
      r ? `${only === 'rps' ? '—' : `${r[0].toFixed(2)}×`} | ${r[1].toFixed(2)}×` : '— | —',
    );
    const values = measured.flatMap((r) => (r ? (only === 'rps' ? [r[1]] : r) : []));
    const known = measured.every(Boolean) && measured.length > 0;
    lines.push(`| ${text} | ${cells.join(' | ')} | ${known ? verdict(values.every((v) => v >= minimum)) : 'n/a'} |`);
  };
  /** ours's CPU per request ≤ maximum × theirs's (shown as that quotient). */
  const cpuAtMost = (ours: string, theirs: string, maximum: number, text: string): void => {
    const measured = scenarios.map((scenario) => {
      const a = find(ours, scenario);
      const b = find(theirs, scenario);
      return a && b ? a.cpuMicrosPerRequest / b.cpuMicrosPerRequest : undefined;
    });
    const cells = measured.map((r) => (r === undefined ? '— | —' : `${r.toFixed(2)}× | —`));
    const known = measured.every((r) => r !== undefined) && measured.length > 0;
    const pass = measured.every((r) => r !== undefined && r <= maximum);
    lines.push(`| ${text} | ${cells.join(' | ')} | ${known ? verdict(pass) : 'n/a'} |`);
  };
  goal('memory', 'bare', 0.75, 'in-memory ≥ 0.75× bare Express');
  goal('memcache', 'es-memcached', 1.5, 'memcache-only ≥ 1.5× express-session + connect-memcached');
  goal('memcache', 'memjs', 0.95, 'memcache-only ≥ 0.95× cookie + memjs lower bound');
  goal('valkey', 'es-redis', 1.5, 'Valkey-only ≥ 1.5× express-session + connect-redis');
  goal('valkey', 'es-redis', 1.3, 'Valkey-only ≥ 1.3× express-session + connect-redis by req/s (issue 11)', 'rps');
  goal('valkey', 'iovalkey', 0.95, 'Valkey-only ≥ 0.95× cookie + iovalkey lower bound');
  cpuAtMost('valkey', 'memcache', 1.1, 'Valkey-only CPU/req ≤ 1.1× memcache-only (issue 11)');
  goal('datastore', 'es-datastore', 1.2, 'Datastore-only ≥ 1.2× express-session + connect-datastore');
  cpuAtMost('memcache-async', 'memcache', 1.2, 'memcache + async CPU/req ≤ 1.2× memcache-only');
  cpuAtMost('valkey-async', 'valkey', 1.2, 'Valkey + async CPU/req ≤ 1.2× Valkey-only');
  const empty = ' |'.repeat(Math.max(0, 2 * scenarios.length - 1));
  const row = (text: string, value: string, pass: boolean | undefined): void =>
    void lines.push(`| ${text} | ${value} |${empty} ${pass === undefined ? 'n/a' : verdict(pass)} |`);

  const apps = VARIANTS.filter((v) => v.kind === 'app').map((v) => v.name);
  const contended = summaries.filter((s) => s.scenario === 'contention' && apps.includes(s.variant));
  row(
    'contention: the app loses no update',
    contended.map((s) => `${s.variant}: ${lost(s)}`).join(', ') || '—',
    contended.length > 0 ? contended.every((s) => s.lostUpdates === 0 && !s.cutOff) : undefined,
  );
  const halves = contended.flatMap((s) => {
    const spread = find(s.variant, 'spread');
    return spread ? [[s.variant, s.requestsPerSecond / spread.requestsPerSecond] as const] : [];
  });
  row(
    'contention req/s ≥ 0.5× spread req/s (app)',
    halves.map(([n, r]) => `${n}: ${r.toFixed(2)}`).join(', ') || '—',
    halves.length > 0 ? halves.every(([, r]) => r >= 0.5) : undefined,
  );
  const writes = ['memcache-sync', 'memcache-async', 'valkey-sync', 'valkey-async', 'datastore']
    .filter((name) => results.readOnly[name])
    .map((name) => [name, results.readOnly[name]?.datastore['commit'] ?? 0] as const);
  row(
    'zero Datastore writes on an unchanged view',
    writes.map(([n, w]) => `${n}: ${w}`).join(', ') || '—',
    writes.length > 0 ? writes.every(([, w]) => w === 0) : undefined,
  );
  const reads = [
    ...['memcache', 'memcache-sync', 'memcache-async']
      .filter((name) => results.readOnly[name]?.memcache)
      .map((name) => [name, results.readOnly[name]?.memcache?.total ?? 0] as const),
    ...['valkey', 'valkey-sync', 'valkey-async']
      .filter((name) => results.readOnly[name]?.valkey)
      .map((name) => [name, results.readOnly[name]?.valkey?.roundTrips ?? 0] as const),
  ];
  row(
    '≤ 1 cache round trip on a read-only view',
    reads.map(([n, t]) => `${n}: ${t.toFixed(2)}`).join(', ') || '—',
    reads.length > 0 ? reads.every(([, t]) => t <= 1) : undefined,
  );
  const purge = results.purge;
  row(
    'purge ≥ 5,000 deletes/s',
    purge ? `${purge.deletesPerSecond.toFixed(0)}/s` : '—',
    purge ? purge.deletesPerSecond >= 5000 && purge.remaining === 0 : undefined,
  );
  return lines;
}

function lost(s: Summary): string {
  if (s.lostUpdates === undefined) return '—';
  return s.cutOff ? `≥ ${s.lostUpdates} (cut off)` : String(s.lostUpdates);
}

function verdict(pass: boolean): string {
  return pass ? 'PASS' : '**MISS**';
}

function commands(counts: MemcacheCommands | undefined, used: boolean): string {
  if (!used || !counts) return '—';
  const parts = [counts.get, counts.set, counts.touch, counts.delete].map((n) => trim(n)).join('+');
  return `${trim(counts.total)} (${parts})`;
}

function byName(counts: Record<string, number>): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([, a], [, b]) => b - a)
    .map(([name, n]) => `${name} ${trim(n)}`)
    .join(', ');
}

function valkeyCommands(counts: ValkeyCommands | undefined, used: boolean): string {
  if (!used || !counts) return '—';
  return counts.total === 0 ? '0' : `${trim(counts.total)} (${byName(counts.byCommand)})`;
}

function trips(counts: ValkeyTrips | undefined, used: boolean): string {
  if (!used || !counts) return '—';
  const inScripts = byName(counts.inScripts);
  return `${trim(counts.roundTrips)} (${byName(counts.byCommand) || 'none'}${inScripts ? `; in scripts: ${inScripts}` : ''})`;
}

function rpcs(counts: Record<string, number>, used: boolean): string {
  if (!used) return '—';
  const entries = Object.entries(counts).filter(([, n]) => n > 0);
  return entries.length === 0 ? '0' : entries.map(([method, n]) => `${method} ${trim(n)}`).join(', ');
}

function trim(n: number): string {
  return n === 0 ? '0' : n >= 0.1 ? n.toFixed(2).replace(/\.?0+$/, '') : n.toFixed(3);
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
