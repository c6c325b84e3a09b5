import { timingSafeEqual } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import type { PurgeFunction } from '../gaesession/purge.js';
import { purgeHandler } from '../gaesession/purge.js';
import type { Logger } from '../session/logger.js';
import { StoreUnavailableError } from '../session/store.js';
import { rejectCrossSite } from './security.js';

/** What the demo keeps in a session: the user name never changes, the count does. */
export type DemoConstants = { userName: string };
export type DemoVariables = { count: number };

/** Longer user names are refused with 400: nobody types them, and they would bloat sessions. */
export const MAX_USER_NAME_LENGTH = 100;

/** The demo's default password; shown as a tip on the page (a password you chose is not). */
export const DEFAULT_DEMO_PASSWORD = 'a';

export interface DemoOptions {
  password: string;
  purge: PurgeFunction | undefined;
  purgeDeadlineSeconds: number;
  logger: Logger;
}

/** The demo: a visit counter behind a login, and the cron purge. Mounted at /demo. */
export function demoRouter(options: DemoOptions): Router {
  const router = Router();
  const forms = [express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 }), rejectCrossSite()];

  router.get('/', async (req, res) => {
    const session = await req.sessions.get<DemoConstants, DemoVariables>();
    if (!session) {
      renderDemoPage(res, options.password, { unavailable: req.sessions.unavailable });
      return;
    }
    // `update` (not get + set) so that concurrent views of one session are all counted: if
    // another view saved first, the store replays the increment on its count. Saving before
    // rendering (instead of leaving it to the middleware) shows the count as it was stored.
    session.update('count', (c) => (c ?? 0) + 1);
    await req.sessions.save();
    renderDemoPage(res, options.password, { userName: session.constant('userName'), count: session.get('count') ?? 0 });
  });

  router.post('/login', ...forms, async (req, res) => {
    const userName = field(req, 'username').trim();
    const password = field(req, 'password');
    if (userName.length > MAX_USER_NAME_LENGTH) {
      res.status(400);
      renderDemoPage(res, options.password, {
        error: `The user name is longer than ${MAX_USER_NAME_LENGTH} characters.`,
      });
      return;
    }
    if (userName === '' || !samePassword(password, options.password)) {
      res.status(401);
      renderDemoPage(res, options.password, { error: 'Wrong user name or password.', userNameInput: userName });
      return;
    }
    // A login always starts a new session with a new ID, so an ID planted in the browser
    // before login (session fixation) is worth nothing afterwards.
    const previous = await req.sessions.get();
    if (previous) await req.sessions.remove(previous);
    const session = req.sessions.create<DemoConstants, DemoVariables>({ userName }, { count: 0 });
    await req.sessions.add(session);
    res.redirect(303, '/demo');
  });

  router.post('/logout', ...forms, async (req, res) => {
    const session = await req.sessions.get();
    // The store could not say whether the cookie names a session: claiming a logout here
    // would leave the session alive behind the user's back. 503, and the cookie stays for a retry.
    if (!session && req.sessions.unavailable) throw new StoreUnavailableError('could not reach the session store');
    if (session) await req.sessions.remove(session);
    res.redirect(303, '/demo');
  });

  router.get(
    '/purge',
    purgeHandler(options.purge, { deadlineSeconds: options.purgeDeadlineSeconds, logger: options.logger }),
  );

  return router;
}

/** What the demo page shows: the greeting and count, or the login form with an error or notice. */
export interface DemoPageState {
  userName?: string | undefined;
  count?: number | undefined;
  error?: string;
  userNameInput?: string;
  unavailable?: boolean;
}

/** Renders views/demo.ejs (the benchmark's reference servers render it the same way). */
export function renderDemoPage(res: Response, password: string, state: DemoPageState): void {
  res.render('demo', {
    userName: undefined,
    count: undefined,
    error: undefined,
    userNameInput: '',
    unavailable: false,
    passwordTip: password === DEFAULT_DEMO_PASSWORD ? password : undefined,
    maxUserNameLength: MAX_USER_NAME_LENGTH,
    ...state,
  });
}

function field(req: Request, name: string): string {
  const value: unknown = (req.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

function samePassword(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
