/** package.json `engines.node` must admit App Engine's runtime (app.yaml) and this machine's Node. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Enough of npm's range syntax for `engines`: `||` of space-separated `>=20`, `<23`, `22.x`, `^22.1`. */
function satisfies(version: string, range: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.replace(/^v/, '').split('.').map(Number);
  const compare = (other: number[]): number =>
    major - (other[0] ?? 0) || minor - (other[1] ?? 0) || patch - (other[2] ?? 0);
  return range.split('||').some((set) =>
    set
      .trim()
      .split(/\s+/)
      .every((comparator) => {
        const match = /^(>=|<=|>|<|=|\^|~)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(comparator);
        if (!match) throw new Error(`engines.node: cannot read "${comparator}"`);
        const [, op = '=', ...parts] = match;
        const given = parts.filter((p): p is string => p !== undefined && /^\d+$/.test(p)).map(Number);
        const bound = [given[0] ?? 0, given[1] ?? 0, given[2] ?? 0];
        const c = compare(bound);
        switch (op) {
          case '>=':
            return c >= 0;
          case '>':
            return c > 0;
          case '<=':
            return c <= 0;
          case '<':
            return c < 0;
          case '^':
            return c >= 0 && major === bound[0];
          case '~':
            return c >= 0 && major === bound[0] && minor === bound[1];
          default: // 22, 22.x, 22.1: every version that starts so
            return given.every((part, i) => [major, minor, patch][i] === part);
        }
      }),
  );
}

describe('engines.node', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines?: { node?: string } };
  const range = pkg.engines?.node ?? '';
  const runtime = /^runtime:\s*nodejs(\d+)\s*$/m.exec(readFileSync(path.join(root, 'app.yaml'), 'utf8'))?.[1];

  it('admits the whole Node.js line of the app.yaml runtime', () => {
    assert.ok(runtime, 'app.yaml has a nodejsNN runtime');
    for (const version of [`${runtime}.0.0`, `${runtime}.99.99`]) {
      assert.ok(satisfies(version, range), `engines.node "${range}" refuses ${version} (app.yaml: nodejs${runtime})`);
    }
  });

  it('admits the Node.js running these tests', () => {
    assert.ok(satisfies(process.version, range), `engines.node "${range}" refuses ${process.version}`);
  });

  it('is read the way npm reads it', () => {
    assert.ok(satisfies('22.3.0', '>=20 <23'));
    assert.ok(!satisfies('23.0.0', '>=20 <23'));
    assert.ok(!satisfies('18.20.0', '>=20 <23'));
    assert.ok(satisfies('22.1.0', '^20 || 22.x'));
    assert.ok(!satisfies('21.0.0', '^20.5 || 22.x'));
    assert.ok(satisfies('20.6.1', '~20.6'));
  });
});
