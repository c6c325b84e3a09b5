/**
 * One benchmark server: `node --import tsx bench/server.ts <variant>` with PORT set. Started
 * by bench/run.ts with an IPC channel, over which it says `ready`, answers `stats` (its own
 * CPU time and Datastore calls) and obeys `stop` (a clean exit, so --cpu-prof gets written).
 */
import type { Server } from 'node:http';
import express, { type Express } from 'express';
import { createApp } from '../src/app/app.js';
import { loadConfig } from '../src/app/config.js';
import { createLogger } from '../src/app/logging.js';
import { createSessionBackend } from '../src/app/sessions.js';
import { RequestSession, sessionMiddleware } from '../src/express/middleware.js';
import type { CookieManager } from '../src/session/cookie-manager.js';
import { logId } from '../src/session/logger.js';
import type { SessionSummary } from '../src/session/manager.js';
import { countDatastoreCalls, datastoreCalls } from './datastore-calls.js';
import { bareApp } from './reference/bare.js';
import { expressSessionApp, type ExpressSessionStore } from './reference/express-session.js';
import { memjsApp } from './reference/memjs-lower-bound.js';
import { iovalkeyApp } from './reference/valkey-lower-bound.js';
import { variantNamed } from './variants.js';

export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'stats'; cpu: NodeJS.CpuUsage; datastore: Record<string, number>; clockMicros: number };
export type ParentMessage = { type: 'stats' } | { type: 'stop' };

countDatastoreCalls();
const variant = variantNamed(process.argv[2] ?? '');
const memcacheServers = process.env['MEMCACHE_SERVERS'] ?? '127.0.0.1:11211';
const valkeyUrl = process.env['VALKEY_URL'] ?? 'redis://127.0.0.1:6379';
let close = async (): Promise<void> => {};

async function build(): Promise<Express> {
  switch (variant.kind) {
    case 'bare':
      return bareApp();
    case 'express-session':
      return expressSessionApp(process.env['BENCH_ES_STORE'] as ExpressSessionStore, { memcacheServers, valkeyUrl });
    case 'memjs': {
      const built = memjsApp(memcacheServers);
      close = async () => built.close();
      return built.app;
    }
    case 'iovalkey': {
      const built = iovalkeyApp(valkeyUrl);
      close = built.close;
      return built.app;
    }
    case 'app': {
      // What src/app/server.ts does, minus the signal handling: the parent stops us over IPC.
      const config = loadConfig(process.env);
      const logger = createLogger({ json: false, level: config.logLevel });
      const backend = createSessionBackend(config, logger);
      const { app, manager } = createApp({ config, logger, ...backend });
      close = () => backend.close();
      if (process.env['BENCH_NO_COUNT'] === '1') withoutSessionCount();
      return process.env['BENCH_READ_ROUTE'] === '1' ? withReadRoute(app, manager) : app;
    }
  }
}

/**
 * For the per-view counts only: a page that reads the session and changes nothing (the demo
 * counts every view, so it has none), served by the same manager as the app.
 */
function withReadRoute(app: Express, manager: CookieManager): Express {
  const outer = express();
  outer.get('/bench/read', sessionMiddleware(manager), async (req, res) => {
    const session = await req.sessions.get();
    res.type('text/plain').send(session ? `session ${session.accessed.getTime()}\n` : 'none\n');
  });
  outer.use(app);
  return outer;
}

/**
 * For the variants that measure what the demo's "signed in on N browsers" costs: the listing
 * of the owner's sessions becomes this session alone, read from nowhere. The page is the same
 * (one browser), and so is everything else the view does; only the owner-index read and its
 * handling are gone.
 */
function withoutSessionCount(): void {
  RequestSession.prototype.sessionsOf = async function (this: RequestSession): Promise<SessionSummary[]> {
    const session = await this.get();
    if (!session) return [];
    const { id, created, accessed, expires, deadline } = session;
    return [{ label: logId(id), created, accessed, expires, deadline, current: true }];
  };
}

const app = await build();
const server: Server = app.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1');
server.keepAliveTimeout = 60_000;
server.once('listening', () => {
  const address = server.address();
  send({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
});

process.on('message', (message: ParentMessage) => {
  if (message.type === 'stats') send(stats());
  if (message.type === 'stop') {
    server.closeAllConnections();
    server.close(() => {
      close().then(
        // The final stats include what closing flushed (pending asynchronous writes).
        () => {
          process.send?.(stats(), undefined, {}, () => process.exit(0));
        },
        (error: unknown) => {
          process.stderr.write(`close failed: ${String(error)}\n`);
          process.exit(1);
        },
      );
    });
  }
});

/** CPU time and Datastore calls so far; the clock is V8's profiler clock (monotonic), to cut a profile to the load. */
function stats(): ServerMessage {
  return {
    type: 'stats',
    cpu: process.cpuUsage(),
    datastore: datastoreCalls(),
    clockMicros: Number(process.hrtime.bigint() / 1000n),
  };
}

function send(message: ServerMessage): void {
  process.send?.(message);
}
