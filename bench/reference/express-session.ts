import { Datastore } from '@google-cloud/datastore';
import { DatastoreStore } from '@google-cloud/connect-datastore';
import connectMemcached from 'connect-memcached';
import { RedisStore } from 'connect-redis';
import type { Express } from 'express';
import session from 'express-session';
import { Redis } from 'iovalkey';
import { field, loginForm, PASSWORD, pageApp, renderPage } from './page.js';

declare module 'express-session' {
  interface SessionData {
    userName: string;
    count: number;
  }
}

export type ExpressSessionStore = 'memory' | 'memcached' | 'datastore' | 'redis';

/** Where the stores that need a server find it. */
export interface Backends {
  memcacheServers: string;
  valkeyUrl: string;
}

/**
 * What a user would otherwise write: express-session with one of its usual stores, configured
 * as its README recommends (no resave, no empty sessions), the same page and login.
 */
export function expressSessionApp(kind: ExpressSessionStore, backends: Backends): Express {
  const app = pageApp();
  app.use(
    session({
      name: 'sessid',
      secret: 'benchmark secret, not for production',
      resave: false,
      saveUninitialized: false,
      store: store(kind, backends),
      cookie: { maxAge: 2_592_000_000, httpOnly: true, sameSite: 'lax', path: '/' },
    }),
  );
  app.get('/demo', (req, res) => {
    const { userName } = req.session;
    if (userName === undefined) {
      renderPage(res);
      return;
    }
    req.session.count = (req.session.count ?? 0) + 1;
    renderPage(res, { userName, count: req.session.count });
  });
  app.post('/demo/login', loginForm, (req, res, next) => {
    const userName = field(req.body, 'username').trim();
    if (userName === '' || field(req.body, 'password') !== PASSWORD) {
      res.status(401);
      renderPage(res);
      return;
    }
    req.session.regenerate((error) => {
      if (error) return next(error);
      req.session.userName = userName;
      req.session.count = 0;
      res.redirect(303, '/demo');
    });
  });
  return app;
}

function store(kind: ExpressSessionStore, backends: Backends): session.Store {
  switch (kind) {
    case 'memory':
      return new session.MemoryStore();
    case 'memcached': {
      const MemcachedStore = connectMemcached(session);
      return new MemcachedStore({ hosts: backends.memcacheServers.split(','), ttl: 1800 });
    }
    case 'redis':
      // connect-redis 8 is the last major that takes an ioredis-style client such as iovalkey
      // (9 and later take only node-redis ≥ 5, and 10 and later need Node.js 22); its default
      // prefix `sess:`, TTL from the cookie's expiry.
      return new RedisStore({ client: new Redis(backends.valkeyUrl, { maxRetriesPerRequest: 1 }) });
    case 'datastore':
      // Reads DATASTORE_EMULATOR_HOST and DATASTORE_PROJECT_ID like the app's client.
      return new DatastoreStore({ dataset: new Datastore(), kind: 'express-sessions' });
  }
}
