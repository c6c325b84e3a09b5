import http, { type RequestListener, type Server } from 'node:http';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, onGoogleCloud } from './logging.js';
import { createSessionBackend, type SessionBackend } from './sessions.js';
import type { Logger } from '../session/logger.js';

/** Starts the demo server from the environment; resolves once it listens. */
export async function start(env: Record<string, string | undefined> = process.env): Promise<Server> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`Configuration error: ${error.message}\n`);
    process.exit(1);
  }
  const logger = createLogger({
    json: onGoogleCloud(env),
    level: config.logLevel,
    projectId: env['GOOGLE_CLOUD_PROJECT'],
  });
  const backend = createSessionBackend(config, logger);
  const { app } = createApp({ config, logger, ...backend });
  const server = createHttpServer(app, config.http);
  server.listen(config.port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  // Handlers first: whoever waits for the "listening" line may signal at once.
  stopOnSignals(server, backend, config.shutdownGraceSeconds, logger);
  logger.info(`listening on http://localhost:${port}/demo`, { port, sessions: backend.storeDescription });
  return server;
}

/**
 * An HTTP server whose connections cannot be held open for free. Behind App Engine only its
 * front end connects, and it reuses each connection for many requests:
 *
 * - keep-alive: Google's front ends keep an idle connection to a backend for 600 s (fixed;
 *   documented for Cloud Load Balancing, whose docs tell backends to wait longer; App Engine's
 *   docs give no figure, so the same is assumed). Closing sooner races the front end reusing
 *   the connection: a request sent as the socket closes fails with a 502. So the instance waits
 *   longer (620 s by default) and the front end closes first. Node's default, 5 s, invites
 *   exactly that race.
 * - a whole request (head and body) must arrive within the request timeout (30 s by default,
 *   Node's is 300 s): a client that dribbles its body or headers is answered 408 and cut off.
 *   Only receiving counts: a slow answer (the purge runs for minutes) is not cut.
 * - a connection that sends nothing at all is closed after the same time: Node's own header
 *   timer starts only with a request's first byte.
 *
 * Node's header limits (16 KB, 2,000 headers) stay as they are.
 */
export function createHttpServer(listener: RequestListener, timeouts: Config['http']): Server {
  const requestTimeout = timeouts.requestTimeoutSeconds * 1000;
  const server = http.createServer(
    {
      requestTimeout,
      headersTimeout: requestTimeout,
      // How often Node looks for requests past their timeout (30 s by default).
      connectionsCheckingInterval: Math.min(30_000, requestTimeout / 2),
    },
    listener,
  );
  server.keepAliveTimeout = timeouts.keepAliveTimeoutSeconds * 1000;
  server.on('connection', (socket) => socket.setTimeout(requestTimeout));
  // The request is in: from here Node's own timers (keep-alive, after the answer) apply.
  server.on('request', (req: http.IncomingMessage) => req.socket.setTimeout(0));
  return server;
}

/**
 * App Engine sends SIGTERM before it stops an instance. Stop taking connections, let
 * in-flight requests finish, then close the store (which waits for pending asynchronous
 * writes), all within the grace period, and exit 0.
 */
function stopOnSignals(server: Server, backend: SessionBackend, graceSeconds: number, logger: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal} received, shutting down`);
    const deadline = setTimeout(() => {
      logger.warn('shutdown grace period over, closing remaining connections');
      server.closeAllConnections();
    }, graceSeconds * 1000);
    deadline.unref();
    // server.close() drops the connections idle at this moment only; one busy now would stay
    // open for the keep-alive timeout after its answer and hold the exit (and the store's
    // final writes) back. Close each as soon as its answer is out.
    const idleCloser = setInterval(() => server.closeIdleConnections(), 50);
    idleCloser.unref();
    server.close(() => {
      clearTimeout(deadline);
      clearInterval(idleCloser);
      backend.close().then(
        () => {
          logger.info('shut down cleanly');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error('store did not close cleanly', { error: String(error) });
          process.exit(1);
        },
      );
    });
  };
  // `on`, not `once`: a second signal during the drain must not kill the process by default.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// Run when started as a program (node dist/app/server.js), not when imported by tests.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  start().catch((error: unknown) => {
    process.stderr.write(`Could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
