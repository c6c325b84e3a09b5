/**
 * The load generator, run as its own process (pinned to another core than the server):
 * `node --import tsx bench/load.ts '<json LoadOptions>'`. Prints one JSON LoadResult.
 * Latencies are kept exactly (autocannon's own histogram rounds them to whole milliseconds,
 * too coarse for a page served in one or two).
 */
import autocannon from 'autocannon';

export interface LoadOptions {
  url: string;
  connections: number;
  durationSeconds: number;
  /** Session cookies (`name=value`) sent round-robin, one per request; none: a new visitor. */
  cookies: string[];
  /**
   * Exactly this many requests instead of `durationSeconds` of them, every one answered (a
   * timed run cuts off the requests in flight at its end, which the server may still count);
   * stopped all the same after `durationSeconds`.
   */
  amount?: number;
  /** Read the visit count off every 2xx page (`contention`), to find counts shown twice. */
  readCounts?: boolean;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx, plus connection errors and timeouts. */
  failures: number;
  /** 2xx responses. */
  ok: number;
  /** A run of `amount` requests that had to be cut off after `durationSeconds`. */
  stoppedEarly: boolean;
  /**
   * With `readCounts`: 2xx pages that showed a count another page of the run had shown already.
   * Each view shows the count it stored, so every one of them is an update lost.
   */
  repeatedCounts?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
const latencies: number[] = [];
let next = 0;
let stoppedEarly = false;
let lastResponseAt = 0;
const shown = new Set<number>();
let repeated = 0;
const COUNT = /data-testid="visit-count">(\d+)</;

const startedAt = performance.now();
const result = await new Promise<autocannon.Result>((resolve, reject) => {
  const instance = autocannon(
    {
      url: options.url,
      connections: options.connections,
      ...(options.amount ? { amount: options.amount } : { duration: options.durationSeconds }),
      requests: [
        {
          method: 'GET',
          // Called before every request; hands out the sessions in turn, so with as many sessions
          // as connections the requests in flight at one time hardly ever share a session.
          setupRequest: (request) => {
            const cookie = options.cookies[next++ % options.cookies.length];
            return cookie ? { ...request, headers: { ...request.headers, cookie } } : request;
          },
          ...(options.readCounts
            ? {
                onResponse: (status: number, body: string) => {
                  const count = status < 300 ? COUNT.exec(body)?.[1] : undefined;
                  if (count === undefined) return;
                  if (shown.has(Number(count))) repeated++;
                  else shown.add(Number(count));
                },
              }
            : {}),
        },
      ],
    },
    (error: unknown, done) => {
      if (error) reject(error instanceof Error ? error : new Error('autocannon failed'));
      else resolve(done);
    },
  );
  instance.on('response', (_client, _status, _bytes, responseTime) => {
    latencies.push(responseTime);
    lastResponseAt = performance.now();
  });
  if (options.amount) {
    const timer = setTimeout(() => {
      stoppedEarly = true;
      instance.stop();
    }, options.durationSeconds * 1000);
    instance.on('done', () => clearTimeout(timer));
  }
});

latencies.sort((a, b) => a - b);
const percentile = (p: number): number =>
  latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
// autocannon ends a run of `amount` requests at its next whole-second tick, not at the last
// response: time such a run up to its last response.
const seconds = options.amount && lastResponseAt > 0 ? (lastResponseAt - startedAt) / 1000 : result.duration;
const output: LoadResult = {
  requests: result.requests.total,
  seconds,
  requestsPerSecond: result.requests.total / seconds,
  p50Ms: percentile(0.5),
  p99Ms: percentile(0.99),
  failures: result.non2xx + result.errors + result.timeouts,
  ok: result['2xx'],
  stoppedEarly,
  ...(options.readCounts ? { repeatedCounts: repeated } : {}),
};
process.stdout.write(JSON.stringify(output) + '\n');
