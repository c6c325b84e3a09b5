import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express, type Response } from 'express';
import { DEFAULT_DEMO_PASSWORD } from '../../src/app/config.js';
import { renderDemoPage } from '../../src/app/demo.js';

/** The demo's password: the reference servers accept the same logins as the app. */
export const PASSWORD = process.env['DEMO_PASSWORD'] ?? DEFAULT_DEMO_PASSWORD;

const views = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

/**
 * An Express app that renders views/demo.ejs exactly as the demo does. Every reference
 * server starts from it, so the page (and its cost) is the same in every variant.
 */
export function pageApp(): Express {
  const app = express();
  app.set('x-powered-by', false);
  app.set('view engine', 'ejs');
  app.set('views', views);
  return app;
}

/**
 * The logged-in page (userName set) or the login form, rendered as the demo renders it: with
 * the same session facts (one browser, idle end, deadline), so the page costs the same.
 */
export function renderPage(res: Response, state: { userName?: string; count?: number } = {}): void {
  if (state.userName === undefined) {
    renderDemoPage(res, PASSWORD, state);
    return;
  }
  const now = Date.now();
  const expires = new Date(now + 1800_000);
  const deadline = new Date(now + 86_400_000);
  const created = new Date(now);
  const sessions = [{ label: 'abcdef…', created, accessed: created, expires, deadline, current: true }];
  renderDemoPage(res, PASSWORD, { ...state, sessions, expires, deadline, storeDescription: 'elsewhere' });
}

/** The form fields of a login post. */
export const loginForm = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });

export function field(body: unknown, name: string): string {
  const value: unknown = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}
