import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import { Redis } from 'iovalkey';
import { field, loginForm, PASSWORD, pageApp, renderPage } from './page.js';

interface Stored {
  userName: string;
  count: number;
}

const TIMEOUT_SECONDS = 1800;
const COOKIE = /(?:^|;\s*)sessid=([A-Za-z0-9_-]{24})(?:;|$)/;

/**
 * The hand-written lower bound of a Valkey session, as bench/reference/memjs-lower-bound.ts is
 * for memcache: a cookie holding a random ID, one iovalkey GET and one SET … EX per view,
 * nothing else (no conflict handling, no validation beyond the cookie's shape, no backup).
 */
export function iovalkeyApp(url: string): { app: Express; close: () => Promise<void> } {
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000, commandTimeout: 1000 });
  const app = pageApp();
  app.get('/demo', async (req, res, next) => {
    try {
      const id = COOKIE.exec(req.headers.cookie ?? '')?.[1];
      const value = id ? await client.get(id) : null;
      if (!id || !value) {
        renderPage(res);
        return;
      }
      const stored = JSON.parse(value) as Stored;
      stored.count++;
      await client.set(id, JSON.stringify(stored), 'EX', TIMEOUT_SECONDS);
      renderPage(res, { userName: stored.userName, count: stored.count });
    } catch (error) {
      next(error);
    }
  });
  app.post('/demo/login', loginForm, async (req, res, next) => {
    try {
      const userName = field(req.body, 'username').trim();
      if (userName === '' || field(req.body, 'password') !== PASSWORD) {
        res.status(401);
        renderPage(res);
        return;
      }
      const id = randomBytes(18).toString('base64url');
      await client.set(id, JSON.stringify({ userName, count: 0 } satisfies Stored), 'EX', TIMEOUT_SECONDS);
      res.setHeader('Set-Cookie', `sessid=${id}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax`);
      res.redirect(303, '/demo');
    } catch (error) {
      next(error);
    }
  });
  return { app, close: async () => void (await client.quit()) };
}
