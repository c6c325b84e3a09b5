/**
 * Starts the demo app on a free loopback port with an in-memory store, and small helpers to
 * talk to it the way a browser or an attacker would.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import express, {
  type Express,
  type NextFunction,
  type Request as ExpressRequest,
  type Response as ExpressResponse,
} from 'express';
import { createApp, createCookieManager } from '../../src/app/app.js';
import { loadConfig, type Config } from '../../src/app/config.js';
import { rejectCrossSite } from '../../src/app/security.js';
import { sessionMiddleware } from '../../src/express/middleware.js';
import type { CookieManager } from '../../src/session/cookie-manager.js';
import { sessionIdValidator } from '../../src/session/id.js';
import { silentLogger, type Logger } from '../../src/session/logger.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { StoreUnavailableError } from '../../src/session/store.js';
import { SpyStore } from '../support/spy-store.js';
import { parseSetCookie, type SetCookie } from '../support/set-cookie.js';

export interface TestApp {
  base: string;
  port: number;
  config: Config;
  /** The in-memory store behind the app. */
  memory: MemoryStore;
  /** The same store as the app sees it: records every ID it is asked about. */
  store: SpyStore;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Environment variables, as the server would read them. */
  env?: Record<string, string>;
  /** The sessions' clock (idle expiry, absolute lifetime), for both the store and the cookie manager. */
  now?: () => number;
  logger?: Logger;
}

export async function startApp(options: StartOptions = {}): Promise<TestApp> {
  const config = loadConfig({ PORT: '0', ...options.env });
  const logger = options.logger ?? silentLogger;
  const memory = new MemoryStore({ maxSessions: config.memoryMaxSessions, now: options.now, logger });
  const store = new SpyStore(memory);
  const { app, manager } = createApp({ config, store, logger, now: options.now });
  return listen(app, { config, memory, store }, () => manager.close());
}

/**
 * An app of the test's own routes behind the session middleware, over a SpyStore around a
 * MemoryStore: for what the middleware promises any route, not only the demo's. Form bodies
 * are parsed, and cross-site posts refused, as in the demo.
 */
export async function startSessionApp(
  routes: (app: Express) => void,
  options: StartOptions = {},
): Promise<TestApp & { manager: CookieManager }> {
  const config = loadConfig({ PORT: '0', ...options.env });
  const logger = options.logger ?? silentLogger;
  const memory = new MemoryStore({ maxSessions: config.memoryMaxSessions, now: options.now, logger });
  const store = new SpyStore(memory);
  const manager = createCookieManager(config, store, logger, options.now);
  const app = express();
  app.use(express.urlencoded({ extended: false }), rejectCrossSite());
  app.use(sessionMiddleware(manager, { logger }));
  routes(app);
  app.use(storeErrors);
  return { ...(await listen(app, { config, memory, store }, () => manager.close())), manager };
}

/** What the app's error handler does with store errors: 503 for an outage, 500 for the rest. */
function storeErrors(error: unknown, _req: ExpressRequest, res: ExpressResponse, next: NextFunction): void {
  if (res.headersSent) {
    next(error);
    return;
  }
  const status = error instanceof StoreUnavailableError ? 503 : 500;
  res
    .status(status)
    .type('text/plain')
    .send(`${error instanceof Error ? error.name : 'Error'}\n`);
}

async function listen(
  app: Express,
  parts: { config: Config; memory: MemoryStore; store: SpyStore },
  closeStore: () => Promise<void>,
): Promise<TestApp> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    ...parts,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await closeStore();
    },
  };
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

export const isValidId = sessionIdValidator();

/** GET without following redirects. */
export function get(app: TestApp, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(app.base + path, { redirect: 'manual', headers });
}

/** POSTs a form (urlencoded) without following redirects. */
export function post(
  app: TestApp,
  path: string,
  fields: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(app.base + path, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: typeof fields === 'string' ? fields : new URLSearchParams(fields).toString(),
  });
}

export type { SetCookie };

/** Every Set-Cookie header of a response, parsed. */
export function setCookies(response: Response): SetCookie[] {
  return response.headers.getSetCookie().map(parseSetCookie);
}

/** The one session cookie a response sets (fails when it sets none or several). */
export function sessionCookieOf(response: Response, name = 'sessid'): SetCookie {
  const cookies = setCookies(response).filter((cookie) => cookie.name === name);
  if (cookies.length !== 1)
    throw new Error(`expected one ${name} cookie, got ${JSON.stringify(response.headers.getSetCookie())}`);
  return cookies[0] as SetCookie;
}

/** True when the response tells the browser to drop the cookie. */
export function clearsCookie(cookie: SetCookie): boolean {
  const expires = cookie.attributes.get('expires');
  return (
    cookie.value === '' &&
    cookie.attributes.get('path') === '/' &&
    (cookie.attributes.get('max-age') === '0' || (expires !== undefined && Date.parse(expires) < Date.now()))
  );
}

/** Logs in and returns the new session ID. */
export async function login(app: TestApp, userName: string, cookie?: string): Promise<string> {
  const response = await post(
    app,
    '/demo/login',
    { username: userName, password: 'a' },
    cookie ? { Cookie: cookie } : {},
  );
  await response.text();
  if (response.status !== 303) throw new Error(`login answered ${response.status}`);
  return sessionCookieOf(response).value;
}

/** The page as a browser with this session ID sees it. */
export async function view(app: TestApp, id: string): Promise<{ response: Response; html: string }> {
  const response = await get(app, '/demo', { Cookie: `sessid=${id}` });
  return { response, html: await response.text() };
}

/** POSTs an empty form (rotate, logout, logout-all) with this session ID. */
export async function postWith(app: TestApp, path: string, id: string): Promise<Response> {
  const response = await post(app, path, {}, { Cookie: `sessid=${id}` });
  await response.arrayBuffer();
  return response;
}

/** The text of the element with this `data-testid`, HTML entities decoded; undefined if absent. */
export function testId(html: string, id: string): string | undefined {
  const match = new RegExp(`<[a-z]+[^>]*\\sdata-testid="${id}"[^>]*>([^<]*)<`).exec(html);
  return match ? decodeEntities(match[1] ?? '') : undefined;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos);/gi, (_, entity: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (entity.startsWith('#x') || entity.startsWith('#X')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number(entity.slice(1)));
    return named[entity.toLowerCase()] ?? '';
  });
}

export const LOGIN_FORM = /<form[^>]*action="\/demo\/login"/;
export const LOGOUT_FORM = /<form[^>]*action="\/demo\/logout"/;

/** A GET over a connection of its own (no keep-alive pool), as separate browser tabs would. */
export function getOnNewConnection(
  app: TestApp,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port: app.port, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

/**
 * Sends bytes exactly as given (duplicated headers, characters fetch would refuse) and
 * returns the status code and the raw response head. Send `Connection: close`: the answer
 * ends when the server closes. The socket is not half-closed, as no browser does that (Node's
 * server drops a request whose client half-closes before the answer is written).
 */
export function rawRequest(
  app: TestApp,
  request: string | Buffer,
  timeoutMs = 10_000,
): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(app.port, '127.0.0.1', () => socket.write(request));
    const chunks: Buffer[] = [];
    let failure: Error | undefined;
    socket.setTimeout(timeoutMs, () => {
      failure = new Error(`no answer within ${timeoutMs} ms`);
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may answer (413, 400) and close before reading everything: a reset after an
    // answer is fine, a reset without one is not.
    socket.on('error', (error) => (failure ??= error));
    socket.on('close', () => {
      if (chunks.length === 0) {
        reject(failure ?? new Error('connection closed without an answer'));
        return;
      }
      const text = Buffer.concat(chunks).toString('latin1');
      const head = text.split('\r\n\r\n')[0] ?? '';
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head });
    });
  });
}
