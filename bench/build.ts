import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './server-process.js';

/** Where bench/tsconfig.json puts the compiled servers: build/bench/server.js, build/src/... */
export const BUILD = path.join(ROOT, 'bench/results/build');

/**
 * Compiles the benchmark servers and the app with tsc, as `npm run build` does for
 * production. Running them under tsx instead would add its helpers to every closure the
 * middleware creates per request, and measure them.
 */
export function buildServers(): void {
  rmSync(BUILD, { recursive: true, force: true });
  const tsc = spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'bench/tsconfig.json')],
    { cwd: ROOT, encoding: 'utf8' },
  );
  // Status 2: type errors, but the JavaScript was written; measure it and say so.
  if (tsc.status === 2 && existsSync(path.join(BUILD, 'bench/server.js'))) {
    process.stderr.write(`warning: type errors (the servers were compiled anyway):\n${tsc.stdout}${tsc.stderr}\n`);
  } else if (tsc.status !== 0) throw new Error(`tsc -p bench/tsconfig.json failed:\n${tsc.stdout}${tsc.stderr}`);
  // The app finds views/ and public/ two levels above its modules, as it does from dist/.
  for (const folder of ['views', 'public']) symlinkSync(path.join(ROOT, folder), path.join(BUILD, folder));
}
