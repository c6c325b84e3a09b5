/**
 * Thousands of random and malformed Cookie headers and form bodies, sent as raw bytes. The app
 * must never answer 5xx (or drop the connection without an answer), and no value that cannot
 * be a session ID may reach the store. The generator is seeded: a failure names its seed and
 * case, and `FUZZ_SEED=<seed> npm test -- test/http/fuzz.test.ts` replays it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newSessionId } from '../../src/session/id.js';
import { isValidId, login, rawRequest, startApp, type TestApp } from './harness.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20_261_123);
const COOKIE_CASES = 2_500;
const FORM_CASES = 1_500;
const PARALLEL = 16;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Random {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = prng(seed);
  }
  int(max: number): number {
    return Math.floor(this.#next() * max);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  string(alphabet: string, length: number): string {
    let text = '';
    for (let i = 0; i < length; i++) text += alphabet.charAt(this.int(alphabet.length));
    return text;
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const NASTY = ' ;,="\'\\%+/.:!*()[]{}<>@?#&~|^`$\t';
const LATIN1 = Array.from({ length: 0xde }, (_, i) => String.fromCharCode(i + 0x21)).join('');
const BYTES = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');

/** A session cookie value: mostly almost-IDs, sometimes anything at all. */
function cookieValue(random: Random, live: string): string {
  switch (random.int(12)) {
    case 0:
      return live; // a real session, so the logged-in paths are fuzzed too
    case 1:
      return newSessionId(); // well-formed, unknown
    case 2:
      return random.string(BASE64URL, random.pick([23, 25, 32, 0, 1]));
    case 3: {
      const id = newSessionId();
      const at = random.int(24);
      return id.slice(0, at) + random.string(NASTY + LATIN1, 1) + id.slice(at + 1);
    }
    case 4:
      return '"' + random.pick([live, newSessionId(), random.string(BASE64URL, 24)]) + random.pick(['"', '', '""']);
    case 5:
      return encodeURIComponent(random.string(LATIN1, random.int(30))) + random.pick(['', '%', '%E0%A4', '%zz', '%00']);
    case 6:
      return (
        random.pick(['j:', 's:', 'j:{"', 'j:[1,2', 'j:null', 'j:"' + newSessionId() + '"', 'j:123']) +
        random.string(BASE64URL, random.int(30))
      );
    case 7:
      return random.string(BASE64URL, 2_000 + random.int(5_000));
    case 8:
      return random.string(NASTY, random.int(40));
    case 9:
      return random.string(LATIN1, random.int(60));
    case 10:
      return '';
    default:
      return random.string(BASE64URL + NASTY, random.int(50));
  }
}

function cookieHeader(random: Random, live: string): string {
  const parts: string[] = [];
  const count = 1 + random.int(4);
  for (let i = 0; i < count; i++) {
    const name = random.chance(0.7)
      ? 'sessid'
      : random.pick(['SESSID', 'sessid ', ' sessid', 'other', 'sess', '', '=', random.string(NASTY, 3)]);
    parts.push(random.chance(0.1) ? name : `${name}=${cookieValue(random, live)}`);
  }
  return parts.join(random.pick(['; ', ';', ' ; ', ', ', ';;']));
}

function cookieRequest(random: Random, live: string, port: number): string {
  const path = random.pick(['/demo', '/demo', '/demo', '/', '/demo/purge', '/nope', '/demo?x=1']);
  const cookies = Array.from(
    { length: random.chance(0.1) ? 2 : 1 },
    () => `Cookie: ${cookieHeader(random, live)}\r\n`,
  ).join('');
  const extra = random.chance(0.2)
    ? 'X-Forwarded-Proto: ' + random.pick(['https', 'http', 'https, http', 'gopher', '']) + '\r\n'
    : '';
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${cookies}${extra}Connection: close\r\n\r\n`;
}

function formBody(random: Random): string {
  switch (random.int(8)) {
    case 0:
      return `username=${encodeURIComponent(random.string(LATIN1, random.int(120)))}&password=${random.pick(['a', '', 'b', 'a'.repeat(300)])}`;
    case 1:
      return random.string(LATIN1, random.int(300));
    case 2:
      return random.string('=&%+' + BASE64URL, random.int(300));
    case 3:
      return Array.from(
        { length: random.int(40) },
        () => `${random.pick(['username', 'password', 'x'])}=${random.string(BASE64URL, 5)}`,
      ).join('&');
    case 4:
      return `username=${random.string('%', 1)}${random.string('0123456789ABCDEFzZ', random.int(4))}&password=a`;
    case 5:
      return 'username=' + 'x'.repeat(3_000 + random.int(4_000)) + '&password=a';
    case 6:
      return random.string(BYTES, random.int(200));
    default:
      return `username[]=a&username[b]=c&password=a&__proto__=x&constructor[prototype][admin]=1`;
  }
}

function formRequest(random: Random, live: string, port: number): Buffer {
  const path = random.pick(['/demo/login', '/demo/login', '/demo/logout', '/demo']);
  const body = Buffer.from(formBody(random), 'latin1');
  const type = random.pick([
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=utf-16',
    'application/x-www-form-urlencoded; charset=nope',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/json',
    '',
  ]);
  const headers = [
    `POST ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    ...(type ? [`Content-Type: ${type}`] : []),
    ...(random.chance(0.5) ? [`Cookie: sessid=${random.chance(0.5) ? live : cookieValue(random, live)}`] : []),
    ...(random.chance(0.2)
      ? [`Origin: ${random.pick(['null', 'http://evil.example', `http://127.0.0.1:${port}`, '%%'])}`]
      : []),
    ...(random.chance(0.1) ? ['Content-Encoding: ' + random.pick(['gzip', 'deflate', 'br', 'bogus'])] : []),
    `Content-Length: ${body.length}`,
    'Connection: close',
  ];
  return Buffer.concat([Buffer.from(headers.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

/** Runs `count` cases, `PARALLEL` at a time, and returns the ones that failed. */
async function runCases(count: number, send: (index: number) => Promise<number>): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < count) {
        const index = next++;
        try {
          const status = await send(index);
          if (status < 100 || status >= 500) failures.push(`case ${index}: status ${status}`);
        } catch (error) {
          failures.push(`case ${index}: ${String(error)}`);
        }
      }
    }),
  );
  return failures;
}

describe(`fuzzing (seed ${SEED})`, () => {
  let app: TestApp;
  let live: string;
  before(async () => {
    app = await startApp();
    live = await login(app, 'fuzz');
  });
  after(() => app.close());

  it(`survives ${COOKIE_CASES} random Cookie headers`, async () => {
    // Generate every request up front, in order, so the sequence does not depend on timing.
    const random = new Random(SEED);
    const requests = Array.from({ length: COOKIE_CASES }, () => cookieRequest(random, live, app.port));
    const failures = await runCases(COOKIE_CASES, async (i) => (await rawRequest(app, requests[i] as string)).status);
    assert.deepEqual(
      failures.slice(0, 10),
      [],
      failures
        .map((f) => `${f}: ${JSON.stringify(requests[Number(/\d+/.exec(f)?.[0])]).slice(0, 300)}`)
        .slice(0, 5)
        .join('\n'),
    );
  });

  it(`survives ${FORM_CASES} random form posts`, async () => {
    const random = new Random(SEED + 1);
    const requests = Array.from({ length: FORM_CASES }, () => formRequest(random, live, app.port));
    const failures = await runCases(FORM_CASES, async (i) => (await rawRequest(app, requests[i] as Buffer)).status);
    assert.deepEqual(
      failures.slice(0, 10),
      [],
      failures
        .map((f) => `${f}: ${JSON.stringify(requests[Number(/\d+/.exec(f)?.[0])]?.toString('latin1')).slice(0, 300)}`)
        .slice(0, 5)
        .join('\n'),
    );
  });

  it('never asked the store about a value that is not a valid session ID', () => {
    assert.ok(app.store.lookups.length > 100, 'the fuzzing reached the store with valid IDs');
    const invalid = app.store.lookups.filter((id) => !isValidId(id));
    assert.deepEqual(invalid.slice(0, 5), []);
  });

  it('still serves the live session afterwards', async () => {
    const response = await fetch(`${app.base}/demo`, { headers: { Cookie: `sessid=${live}` } });
    const html = await response.text();
    // Fuzzed logouts with the live cookie may have ended it; either way the app still answers.
    assert.equal(response.status, 200);
    assert.match(html, /data-testid="(visit-count|user-name)"|action="\/demo\/login"/);
  });
});
