import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { BUILD } from './build.js';
import { runLoad } from './measure.js';
import { ROOT, ServerProcess } from './server-process.js';
import type { Variant } from './variants.js';
import { logIn } from './visitors.js';
import { freePort } from '../test/support/services.js';

export interface ProfileOptions {
  env: Record<string, string>;
  seconds: number;
  connections: number;
  sessions: number;
  directory: string;
  logFile: (variant: string) => string;
}

/**
 * Runs each variant under `node --cpu-prof` with returning visitors, then reads the profile:
 * where the time goes by package, and the functions of our own code (src/) with the most
 * self time. Only the samples taken while the load ran count (not start-up or shutdown).
 */
export async function profileHotPath(variants: Variant[], options: ProfileOptions): Promise<string> {
  const sections: string[] = [];
  let baseline: Analysis | undefined;
  for (const variant of variants) {
    const directory = path.join(options.directory, variant.name);
    rmSync(directory, { recursive: true, force: true });
    const server = await new ServerProcess(
      variant,
      { ...options.env, PORT: String(await freePort()) },
      { logFile: options.logFile(variant.name), nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${directory}`] },
    ).ready();
    const cookies: string[] = [];
    for (let i = 0; i < options.sessions; i++) cookies.push(await logIn(server.url, `visitor-${i}`));
    const before = await server.stats();
    const load = await runLoad({
      url: `${server.url}/demo`,
      connections: options.connections,
      durationSeconds: options.seconds,
      cookies,
    });
    const after = await server.stats();
    await server.stop();
    const file = readdirSync(directory).find((name) => name.endsWith('.cpuprofile'));
    if (!file) throw new Error(`${variant.name}: no profile written in ${directory}`);
    const profile = JSON.parse(readFileSync(path.join(directory, file), 'utf8')) as CpuProfile;
    const analysis = analyse(profile, before.clockMicros, after.clockMicros, load.requests);
    const cpuPerRequest = (after.cpuMicros - before.cpuMicros) / Math.max(1, load.requests);
    sections.push(
      renderProfile(variant, load.requests, cpuPerRequest, analysis, path.relative(ROOT, path.join(directory, file))),
    );
    if (variant.kind === 'bare') baseline = analysis;
    else if (baseline) sections.push(renderExtra(analysis, baseline));
  }
  return sections.join('\n');
}

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface FunctionTime {
  name: string;
  where: string;
  selfMs: number;
  totalMs: number;
}

interface Analysis {
  busyMs: number;
  byPackage: [string, number][];
  ours: FunctionTime[];
  /** Every function with self time, for the comparison with the bare baseline. */
  all: FunctionTime[];
  requests: number;
}

/** Self and total time per function, counting only the samples taken between `from` and `to` (the load). */
function analyse(profile: CpuProfile, from: number, to: number, requests: number): Analysis {
  const self = new Map<number, number>();
  let clock = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    clock += delta;
    if (clock >= from && clock <= to) self.set(id, (self.get(id) ?? 0) + delta / 1000);
  });
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));

  // Inclusive time per node, then per function (a function counted once per stack it is on).
  const inclusive = new Map<number, number>();
  const total = (id: number): number => {
    const known = inclusive.get(id);
    if (known !== undefined) return known;
    const node = nodes.get(id);
    const value = (self.get(id) ?? 0) + (node?.children ?? []).reduce((sum, child) => sum + total(child), 0);
    inclusive.set(id, value);
    return value;
  };
  const functions = new Map<string, FunctionTime>();
  const onStack = new Set<string>();
  const walk = (id: number): void => {
    const node = nodes.get(id);
    if (!node) return;
    const key = functionKey(node.callFrame);
    const entry = functions.get(key) ?? {
      name: node.callFrame.functionName || '(anonymous)',
      where: where(node.callFrame),
      selfMs: 0,
      totalMs: 0,
    };
    functions.set(key, entry);
    entry.selfMs += self.get(id) ?? 0;
    const outermost = !onStack.has(key);
    if (outermost) {
      entry.totalMs += total(id);
      onStack.add(key);
    }
    for (const child of node.children ?? []) walk(child);
    if (outermost) onStack.delete(key);
  };
  const root = profile.nodes[0];
  if (root) walk(root.id);

  const byPackage = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of self) {
    const frame = nodes.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    busyMs += ms;
    const name = packageOf(frame);
    byPackage.set(name, (byPackage.get(name) ?? 0) + ms);
  }
  const ours = [...functions.entries()]
    .filter(([key]) => /\/src\/(session|app|gaesession)\//.test(key))
    .map(([, value]) => value)
    .sort((a, b) => b.selfMs - a.selfMs);
  const all = [...functions.values()].filter((f) => f.selfMs > 0 && f.name !== '(idle)');
  return { busyMs, byPackage: [...byPackage].sort((a, b) => b[1] - a[1]), ours, all, requests };
}

function functionKey(frame: CallFrame): string {
  return `${frame.functionName} ${frame.url}:${frame.lineNumber}`;
}

function where(frame: CallFrame): string {
  if (frame.url === '') return '(V8)';
  if (frame.url.startsWith('node:')) return `${frame.url}:${frame.lineNumber + 1}`;
  const file = frame.url.replace(/^file:\/\//, '');
  // Compiled by bench/tsconfig.json: tsc keeps the TypeScript's lines nearly as they were.
  if (!file.startsWith(BUILD)) return `${path.relative(ROOT, file)}:${frame.lineNumber + 1}`;
  return `${path.relative(BUILD, file).replace(/\.js$/, '.ts')}:${frame.lineNumber + 1}`;
}

/** Who owns the time: our src/, a package in node_modules, Node's own JavaScript, or V8. */
function packageOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native: V8 builtins, C++)';
  if (url.startsWith('node:')) return 'node: internals';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  const ours = /\/(src\/[^/]+|views)\//.exec(url) ?? /\/(bench)\//.exec(url);
  return ours?.[1] ?? url;
}

function renderProfile(
  variant: Variant,
  requests: number,
  cpuPerRequest: number,
  analysis: Analysis,
  file: string,
): string {
  const perRequest = (ms: number): string => `${((ms * 1000) / Math.max(1, requests)).toFixed(1)}`;
  const lines = [
    `### ${variant.label}`,
    '',
    `${requests} requests (returning visitors); ${analysis.busyMs.toFixed(0)} ms of samples during the load = ` +
      `${perRequest(analysis.busyMs)} µs/request (process CPU time: ${cpuPerRequest.toFixed(0)} µs/request, ` +
      `the profiler's own cost included). Profile: \`${file}\`.`,
    '',
    '| where the time goes (self time) | ms | % busy | µs/request |',
    '| --- | ---: | ---: | ---: |',
    ...analysis.byPackage
      .slice(0, 12)
      .map(
        ([name, ms]) =>
          `| ${name} | ${ms.toFixed(0)} | ${((100 * ms) / analysis.busyMs).toFixed(1)} | ${perRequest(ms)} |`,
      ),
    '',
    '| our function (src/) | where | self ms | % busy | self µs/req | total µs/req |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...analysis.ours
      .slice(0, 15)
      .map(
        (f) =>
          `| ${f.name} | ${f.where} | ${f.selfMs.toFixed(1)} | ${((100 * f.selfMs) / analysis.busyMs).toFixed(2)} ` +
          `| ${perRequest(f.selfMs)} | ${perRequest(f.totalMs)} |`,
      ),
    '',
  ];
  return lines.join('\n');
}

/** The functions that cost this variant the most more than bare Express (self µs per request). */
function renderExtra(analysis: Analysis, baseline: Analysis): string {
  const perRequest = (f: FunctionTime | undefined, requests: number): number => ((f?.selfMs ?? 0) * 1000) / requests;
  const base = new Map(baseline.all.map((f) => [`${f.name} ${f.where}`, f]));
  const rows = analysis.all
    .map((f) => {
      const here = perRequest(f, analysis.requests);
      const there = perRequest(base.get(`${f.name} ${f.where}`), baseline.requests);
      return { f, here, there, extra: here - there };
    })
    .sort((a, b) => b.extra - a.extra)
    .slice(0, 20);
  return [
    '| costs more than in bare Express | where | µs/req here | µs/req bare | extra |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows.map(
      (r) => `| ${r.f.name} | ${r.f.where} | ${r.here.toFixed(1)} | ${r.there.toFixed(1)} | ${r.extra.toFixed(1)} |`,
    ),
    '',
  ].join('\n');
}
