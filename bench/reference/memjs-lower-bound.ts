import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import memjs from 'memjs';
import { field, loginForm, PASSWORD, pageApp, renderPage } from './page.js';

interface Stored {
  userName: string;
  count: number;
}

const TIMEOUT_SECONDS = 1800;
const COOKIE = /(?:^|;\s*)sessid=([A-Za-z0-9_-]{24})(?:;|$)/;

/**
 * The hand-written lower bound of a memcache session: a cookie holding a random ID, one
 * memjs get and one set per view, nothing else (no conflict handling, no validation beyond
 * the cookie's shape, no backup).
 */
export function memjsApp(servers: string): { app: Express; close: () => void } {
  const client = memjs.Client.create(servers, { timeout: 1, retries: 0, keepAlive: true });
  const app = pageApp();
  app.get('/demo', async (req, res, next) => {
    try {
      const id = COOKIE.exec(req.headers.cookie ?? '')?.[1];
      const { value } = id ? await client.get(id) : { value: null };
      if (!id || !value) {
        renderPage(res);
        return;
      }
      const stored = JSON.parse(value.toString()) as Stored;
      stored.count++;
      await client.set(id, JSON.stringify(stored), { expires: TIMEOUT_SECONDS });
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
      await client.set(id, JSON.stringify({ userName, count: 0 } satisfies Stored), { expires: TIMEOUT_SECONDS });
      res.setHeader('Set-Cookie', `sessid=${id}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax`);
      res.redirect(303, '/demo');
    } catch (error) {
      next(error);
    }
  });
  return { app, close: () => client.close() };
}
