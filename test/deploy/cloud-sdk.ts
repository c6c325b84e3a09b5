/**
 * Finds the Google Cloud SDK the way `gcloud` does (CLOUDSDK_ROOT_DIR, else the SDK that
 * `gcloud` on PATH belongs to, else the Debian package's place) and its bundled Python, so the
 * App Engine checks can run Google's own parsers. Where there is none, `sdkMissing()` gives
 * the skip reason — and under CI=true throws, like `missing()` in test/support/services.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';

export interface CloudSdk {
  root: string;
  /** The SDK's bundled Python (or CLOUDSDK_PYTHON, or python3), which its parsers need. */
  python: string;
  gcloud: string;
}

export function findCloudSdk(env: NodeJS.ProcessEnv = process.env): CloudSdk | undefined {
  const roots: string[] = [];
  if (env['CLOUDSDK_ROOT_DIR']) roots.push(env['CLOUDSDK_ROOT_DIR']);
  const gcloud = spawnSync('sh', ['-c', 'command -v gcloud'], { encoding: 'utf8' });
  if (gcloud.status === 0) roots.push(path.resolve(path.dirname(realpathSync(gcloud.stdout.trim())), '..'));
  roots.push('/usr/lib/google-cloud-sdk');
  const root = roots.find((candidate) => existsSync(path.join(candidate, 'lib/googlecloudsdk')));
  if (!root) return undefined;
  const bundled = path.join(root, 'platform/bundledpythonunix/bin/python3');
  const python = existsSync(bundled) ? bundled : (env['CLOUDSDK_PYTHON'] ?? 'python3');
  return { root, python, gcloud: path.join(root, 'bin/gcloud') };
}

/** Why the SDK checks cannot run here, or undefined when they can. */
export function sdkMissing(): string | undefined {
  if (findCloudSdk()) return undefined;
  const message =
    'the Google Cloud SDK is not installed (https://cloud.google.com/sdk/docs/install; Debian: google-cloud-cli)';
  if (process.env['CI'] === 'true') throw new Error(`CI=true but ${message}`);
  return `skipped: ${message}`;
}
