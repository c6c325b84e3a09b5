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
}

export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx, plus connection errors and timeouts. */
  failures: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
const latencies: number[] = [];
let next = 0;

const result = await new Promise<autocannon.Result>((resolve, reject) => {
  const instance = autocannon(
    {
      url: options.url,
      connections: options.connections,
      duration: options.durationSeconds,
      requests: [
        {
          method: 'GET',
          // Called before every request; hands out the sessions in turn, so with as many sessions
          // as connections the requests in flight at one time hardly ever share a session.
          setupRequest: (request) => {
            const cookie = options.cookies[next++ % options.cookies.length];
            return cookie ? { ...request, headers: { ...request.headers, cookie } } : request;
          },
        },
      ],
    },
    (error: unknown, done) => {
      if (error) reject(error instanceof Error ? error : new Error('autocannon failed'));
      else resolve(done);
    },
  );
  instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
});

latencies.sort((a, b) => a - b);
const percentile = (p: number): number =>
  latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
const seconds = result.duration;
const output: LoadResult = {
  requests: result.requests.total,
  seconds,
  requestsPerSecond: result.requests.total / seconds,
  p50Ms: percentile(0.5),
  p99Ms: percentile(0.99),
  failures: result.non2xx + result.errors + result.timeouts,
};
process.stdout.write(JSON.stringify(output) + '\n');
