import type { Express } from 'express';
import { loginForm, pageApp, renderPage } from './page.js';

/**
 * The ceiling: Express + ejs and no session at all. A "returning visitor" (any request with
 * a cookie) gets the logged-in page with a process-wide count, so it renders the same HTML
 * as the session variants without keeping anything.
 */
export function bareApp(): Express {
  const app = pageApp();
  let count = 0;
  app.get('/demo', (req, res) => {
    if (req.headers.cookie) renderPage(res, { userName: 'bench', count: ++count });
    else renderPage(res);
  });
  app.post('/demo/login', loginForm, (_req, res) => {
    res.setHeader('Set-Cookie', 'sessid=bare; Path=/; HttpOnly; SameSite=Lax');
    res.redirect(303, '/demo');
  });
  return app;
}
