import { PASSWORD } from './reference/page.js';

/** Logs in through the page's form, as a browser would; returns the session cookie (`name=value`). */
export async function logIn(baseUrl: string, userName: string): Promise<string> {
  const response = await fetch(`${baseUrl}/demo/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: userName, password: PASSWORD }).toString(),
    redirect: 'manual',
  });
  await response.arrayBuffer();
  const cookie = response.headers
    .getSetCookie()
    .map((header) => header.split(';')[0] ?? '')
    .find((pair) => pair.startsWith('sessid=') && pair.length > 'sessid='.length);
  if (response.status !== 303 || !cookie)
    throw new Error(`login at ${baseUrl} answered ${response.status} without a cookie`);
  return cookie;
}

/** What the counter page shows: the visit count when logged in, undefined for the login form. */
export async function visitCount(url: string, cookie?: string): Promise<number | undefined> {
  const response = await fetch(url, { headers: cookie ? { cookie } : {} });
  const html = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
  const match = /data-testid="visit-count">(\d+)</.exec(html);
  if (match) return Number(match[1]);
  if (!html.includes('action="/demo/login"')) throw new Error(`${url} shows neither the count nor the login form`);
  return undefined;
}
