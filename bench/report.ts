import type { ReadOnlyCounts, StoredBytes } from './counts.js';
import type { RunResult, Scenario } from './measure.js';
import type { MemcacheCommands } from './memcached-stats.js';
import type { PurgeThroughput } from './purge.js';
import { VARIANTS } from './variants.js';

/** A run whose req/s varied more than this between rounds was disturbed (by other load). */
export const DISTURBED_SPREAD = 1.25;
export const BASELINE = 'bare';

/** One variant and kind of visitor over all rounds: medians, and counts per request. */
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
  datastorePerRequest: Record<string, number>;
}

export interface Results {
  date: string;
  machine: { cpus: number; model: string; node: string; taskset: boolean };
  settings: Record<string, unknown>;
  runs: RunResult[];
  bytes: Record<string, StoredBytes>;
  readOnly: Record<string, ReadOnlyCounts>;
  purge: PurgeThroughput | undefined;
  skipped: string[];
}

export function summarize(runs: RunResult[]): Summary[] {
  const summaries: Summary[] = [];
  for (const variant of VARIANTS) {
    for (const scenario of ['returning', 'new'] as const) {
      const mine = runs.filter((r) => r.variant === variant.name && r.scenario === scenario);
      if (mine.length === 0) continue;
      const requests = sum(mine.map((r) => r.load.requests));
      const rps = mine.map((r) => r.load.requestsPerSecond);
      const memcache = mine.every((r) => r.memcache) ? mine.map((r) => r.memcache as MemcacheCommands) : undefined;
      summaries.push({
        variant: variant.name,
        scenario,
        rounds: mine.length,
        requests,
        failures: sum(mine.map((r) => r.load.failures)),
        requestsPerSecond: median(rps),
        p50Ms: median(mine.map((r) => r.load.p50Ms)),
        p99Ms: median(mine.map((r) => r.load.p99Ms)),
        cpuMicrosPerRequest: median(mine.map((r) => r.cpuMicros / Math.max(1, r.load.requests))),
        spread: Math.max(...rps) / Math.max(1e-9, Math.min(...rps)),
        memcachePerRequest: memcache && (perRequest(memcache, requests) as unknown as MemcacheCommands),
        datastorePerRequest: perRequest(
          mine.map((r) => r.datastore),
          requests,
        ),
      });
    }
  }
  return summaries;
}

function perRequest(counts: object[], requests: number): Record<string, number> {
  const total: Record<string, number> = {};
  for (const count of counts) {
    for (const [key, value] of Object.entries(count)) total[key] = (total[key] ?? 0) + (value as number);
  }
  return Object.fromEntries(Object.entries(total).map(([key, value]) => [key, value / Math.max(1, requests)]));
}

/** The full report in Markdown: throughput, counts per view, purge, targets. */
export function renderReport(results: Results): string {
  const summaries = summarize(results.runs);
  const find = (variant: string, scenario: Scenario = 'returning'): Summary | undefined =>
    summaries.find((s) => s.variant === variant && s.scenario === scenario);
  const lines: string[] = [];
  const disturbed = summaries.filter((s) => s.spread > DISTURBED_SPREAD);

  for (const [scenario, title] of [
    ['returning', 'Returning visitor (logged-in cookie, the count changes each view)'],
    ['new', 'New visitor (no cookie: the login page, no session)'],
  ] as const) {
    const base = find(BASELINE, scenario);
    lines.push(`### ${title}`, '');
    lines.push(
      '| variant | CPU µs/req | ×bare | req/s | ×bare | p50 ms | ×bare | p99 ms | ×bare | spread | failures |',
    );
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const variant of VARIANTS) {
      const s = find(variant.name, scenario);
      if (!s) continue;
      const ratio = (value: number, baseline: number | undefined): string =>
        baseline ? `${(value / baseline).toFixed(2)}×` : '—';
      lines.push(
        `| ${variant.label} | ${s.cpuMicrosPerRequest.toFixed(0)} | ${ratio(s.cpuMicrosPerRequest, base?.cpuMicrosPerRequest)} ` +
          `| ${s.requestsPerSecond.toFixed(0)} | ${ratio(s.requestsPerSecond, base?.requestsPerSecond)} ` +
          `| ${s.p50Ms.toFixed(2)} | ${ratio(s.p50Ms, base?.p50Ms)} | ${s.p99Ms.toFixed(2)} | ${ratio(s.p99Ms, base?.p99Ms)} ` +
          `| ${s.spread.toFixed(2)}${s.spread > DISTURBED_SPREAD ? ' ⚠' : ''} | ${s.failures} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    disturbed.length > 0
      ? `**Disturbed run**: req/s varied more than ${DISTURBED_SPREAD}× between rounds for ` +
          `${disturbed.map((s) => `${s.variant} (${s.scenario})`).join(', ')} (⚠) — other load on the machine; ` +
          'trust CPU per request over req/s, or run again.'
      : `Undisturbed: req/s varied less than ${DISTURBED_SPREAD}× between rounds for every variant.`,
    '',
  );

  lines.push('### Store traffic per view', '');
  lines.push(
    '| variant | memcache cmds/view (get+set+touch+delete) | Datastore RPCs/view | read-only view: memcache cmds | read-only view: Datastore RPCs | bytes/session memcache | bytes/session Datastore |',
  );
  lines.push('| --- | ---: | --- | ---: | --- | ---: | ---: |');
  for (const variant of VARIANTS) {
    const s = find(variant.name);
    if (!s || !(variant.needs.memcached || variant.needs.datastore)) continue;
    const readOnly = results.readOnly[variant.name];
    const bytes = results.bytes[variant.name];
    lines.push(
      `| ${variant.label} | ${commands(s.memcachePerRequest, variant.needs.memcached)} | ${rpcs(s.datastorePerRequest, variant.needs.datastore)} ` +
        `| ${readOnly ? commands(readOnly.memcache, variant.needs.memcached) : '—'} ` +
        `| ${readOnly ? rpcs(readOnly.datastore, variant.needs.datastore) : '—'} ` +
        `| ${bytes?.memcache ?? '—'} | ${bytes?.datastore ?? '—'} |`,
    );
  }
  lines.push('');

  const purge = results.purge;
  lines.push('### Purge', '');
  lines.push(
    purge
      ? `${purge.deleted} of ${purge.inserted} expired sessions deleted in ${purge.seconds.toFixed(2)} s: ` +
          `**${purge.deletesPerSecond.toFixed(0)} deletes/s** (completed: ${purge.completed}, expired left: ${purge.remaining}).`
      : 'Not measured (no Datastore emulator).',
    '',
  );

  lines.push('### Targets (returning visitor; CPU per request first)', '');
  lines.push('| target | by CPU/request | verdict | by req/s | verdict |', '| --- | ---: | --- | ---: | --- |');
  const faster = (name: string, than: string, goal: number, text: string): void => {
    const a = find(name);
    const b = find(than);
    if (!a || !b) return void lines.push(`| ${text} | — | n/a | — | n/a |`);
    const byCpu = b.cpuMicrosPerRequest / a.cpuMicrosPerRequest;
    const byRps = a.requestsPerSecond / b.requestsPerSecond;
    lines.push(
      `| ${text} | ${byCpu.toFixed(2)}× | ${verdict(byCpu >= goal)} | ${byRps.toFixed(2)}× | ${verdict(byRps >= goal)} |`,
    );
  };
  faster('memory', 'bare', 0.9, 'in-memory ≥ 0.90× bare Express');
  faster('memcache', 'es-memcached', 1.6, 'memcache ≥ 1.6× express-session + connect-memcached');
  faster('memcache', 'memjs', 0.97, 'memcache ≥ 0.97× hand-written cookie + memjs get/set');
  faster('memcache-sync', 'es-datastore', 3, 'memcache + Datastore sync ≥ 3× express-session + connect-datastore');
  const async = find('memcache-async');
  const memcache = find('memcache');
  if (async && memcache) {
    const ratio = async.cpuMicrosPerRequest / memcache.cpuMicrosPerRequest;
    lines.push(`| async CPU/request ≤ 1.2× memcache-only | ${ratio.toFixed(2)}× | ${verdict(ratio <= 1.2)} | — | |`);
  } else lines.push('| async CPU/request ≤ 1.2× memcache-only | — | n/a | — | |');
  const writes = ['memcache-sync', 'memcache-async', 'datastore']
    .filter((name) => results.readOnly[name])
    .map((name) => [name, results.readOnly[name]?.datastore['commit'] ?? 0] as const);
  lines.push(
    writes.length > 0
      ? `| zero Datastore writes on an unchanged view | ${writes.map(([n, w]) => `${n}: ${w}`).join(', ')} | ${verdict(writes.every(([, w]) => w === 0))} | | |`
      : '| zero Datastore writes on an unchanged view | — | n/a | | |',
  );
  const trips = ['memcache', 'memcache-sync', 'memcache-async']
    .filter((name) => results.readOnly[name]?.memcache)
    .map((name) => [name, results.readOnly[name]?.memcache?.total ?? 0] as const);
  lines.push(
    trips.length > 0
      ? `| ≤ 1 memcache round trip on a read-only view | ${trips.map(([n, t]) => `${n}: ${t.toFixed(2)}`).join(', ')} | ${verdict(trips.every(([, t]) => t <= 1))} | | |`
      : '| ≤ 1 memcache round trip on a read-only view | — | n/a | | |',
  );
  lines.push(
    purge
      ? `| purge ≥ 5,000 deletes/s | ${purge.deletesPerSecond.toFixed(0)}/s | ${verdict(purge.deletesPerSecond >= 5000 && purge.remaining === 0)} | | |`
      : '| purge ≥ 5,000 deletes/s | — | n/a | | |',
  );
  if (results.skipped.length > 0) lines.push('', `Skipped: ${results.skipped.join('; ')}.`);
  return lines.join('\n') + '\n';
}

function verdict(pass: boolean): string {
  return pass ? 'PASS' : '**MISS**';
}

function commands(counts: MemcacheCommands | undefined, used: boolean): string {
  if (!used || !counts) return '—';
  const parts = [counts.get, counts.set, counts.touch, counts.delete].map((n) => trim(n)).join('+');
  return `${trim(counts.total)} (${parts})`;
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
