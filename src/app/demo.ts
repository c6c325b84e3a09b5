import { timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { PurgeFunction } from '../gaesession/purge.js';
import { purgeHandler } from '../gaesession/purge.js';
import type { Logger } from '../session/logger.js';
import type { SessionSummary } from '../session/manager.js';
import { DEFAULT_DEMO_PASSWORD } from './config.js';
import { rejectCrossSite } from './security.js';

/** What the demo keeps in a session: the user name never changes, the count does. */
export type DemoConstants = { userName: string };
export type DemoVariables = { count: number };

/** Longer user names are refused with 400: nobody types them, and they would bloat sessions. */
export const MAX_USER_NAME_LENGTH = 100;

export interface DemoOptions {
  password: string;
  purge: PurgeFunction | undefined;
  purgeDeadlineSeconds: number;
  /** Where sessions are kept, in words ("in memcache with a Datastore backup"). */
  storeDescription: string;
  logger: Logger;
}

/**
 * The demo: a visit counter behind a login, rotation, log out everywhere, and the cron purge,
 * under /demo. The routes go on the app itself rather than on a mounted sub-router: a nested
 * router walks its own stack on every view, for nothing a handful of routes needs.
 */
export function addDemoRoutes(router: Router, options: DemoOptions): void {
  const forms = [express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 }), rejectCrossSite()];
  const page = (res: Response, state: DemoPageState): void =>
    renderDemoPage(res, options.password, { storeDescription: options.storeDescription, ...state });

  router.get('/demo', async (req, res) => {
    // The one page that may render as "logged out" when the store is down, and says so.
    const session = await req.sessions.get<DemoConstants, DemoVariables>({ allowUnavailable: true });
    if (!session) {
      page(res, { unavailable: req.sessions.unavailable });
      return;
    }
    // `update` (not get + set) so that concurrent views of one session are all counted: if
    // another view saved first, its increment is replayed on the newer count. Saving before
    // rendering shows the count as it was stored; the listing of the user's sessions (this
    // session's owner) goes out with the save (one cache write) and shows this one as saved.
    session.update('count', (c) => (c ?? 0) + 1);
    const userName = session.constant('userName');
    const [outcome, sessions] = await Promise.all([req.sessions.save(), req.sessions.sessionsOf()]);
    if (outcome === 'gone') {
      page(res, { ended: true });
      return;
    }
    page(res, {
      userName,
      count: session.get('count') ?? 0,
      sessions,
      source: session.source,
      expires: session.expires,
      deadline: session.deadline,
    });
  });

  router.post('/demo/login', ...forms, async (req, res) => {
    const userName = field(req, 'username').trim();
    const password = field(req, 'password');
    if (userName.length > MAX_USER_NAME_LENGTH) {
      res.status(400);
      page(res, { error: `The user name is longer than ${MAX_USER_NAME_LENGTH} characters.` });
      return;
    }
    if (userName === '' || !samePassword(password, options.password)) {
      res.status(401);
      page(res, { error: 'Wrong user name or password.', userNameInput: userName });
      return;
    }
    // A login always starts a new session with a new ID, so an ID planted in the browser
    // before login (session fixation) is worth nothing afterwards.
    const previous = await req.sessions.get();
    if (previous) await req.sessions.remove(previous);
    const session = req.sessions.create<DemoConstants, DemoVariables>({ userName }, { count: 0 }, { owner: userName });
    await req.sessions.add(session);
    res.redirect(303, '/demo');
  });

  // get() answers 503 when the store cannot say whether the cookie names a session: claiming a
  // logout then would leave the session alive behind the user's back.
  router.post('/demo/logout', ...forms, async (req, res) => {
    const session = await req.sessions.get();
    if (session) await req.sessions.remove(session);
    res.redirect(303, '/demo');
  });

  // After a privilege change (a second factor, a new password) an app rotates the ID like this.
  router.post('/demo/rotate', ...forms, async (req, res) => {
    const session = await req.sessions.get();
    if (session) await req.sessions.rotate(session);
    res.redirect(303, '/demo');
  });

  router.post('/demo/logout-all', ...forms, async (req, res) => {
    const session = await req.sessions.get<DemoConstants, DemoVariables>();
    if (session) await req.sessions.removeSessionsOf(session.constant('userName'));
    res.redirect(303, '/demo');
  });

  router.get(
    '/demo/purge',
    purgeHandler(options.purge, { deadlineSeconds: options.purgeDeadlineSeconds, logger: options.logger }),
  );
}

/** What the demo page shows: the greeting and count, or the login form with an error or notice. */
export interface DemoPageState {
  userName?: string | undefined;
  count?: number | undefined;
  /** The user's live sessions (this one marked `current`). */
  sessions?: SessionSummary[] | undefined;
  /** Which tier served this view. */
  source?: string | undefined;
  expires?: Date | undefined;
  deadline?: Date | undefined;
  storeDescription?: string | undefined;
  error?: string;
  userNameInput?: string;
  unavailable?: boolean;
  /** The session ended (elsewhere) while this view was changing it. */
  ended?: boolean;
}

/** Renders views/demo.ejs (the benchmark's reference servers render it the same way). */
export function renderDemoPage(res: Response, password: string, state: DemoPageState): void {
  res.render('demo', {
    userName: undefined,
    count: undefined,
    sessions: [],
    source: undefined,
    expires: undefined,
    deadline: undefined,
    storeDescription: undefined,
    ended: false,
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
