import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Headers every response gets: no MIME sniffing, no framing (clickjacking), no referrer to
 * other sites, a CSP that allows only this origin's own files, and HSTS over HTTPS.
 */
export function securityHeaders(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'same-origin');
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
    );
    if (req.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000');
    next();
  };
}

/**
 * Refuses a state-changing request sent by another site's page (CSRF). Browsers send
 * `Origin` on every cross-origin POST and `Sec-Fetch-Site` on every request, so checking them
 * needs no token in the form; a request with neither did not come from a browser, and a
 * cookie-less script gains nothing from forging one.
 */
export function rejectCrossSite(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (isCrossSite(req)) {
      res.status(403).type('text/plain').send('Cross-site form submission refused.\n');
      return;
    }
    next();
  };
}

function isCrossSite(req: Request): boolean {
  const origin = req.headers['origin'];
  if (origin !== undefined) {
    const own = ownOrigin(req);
    return own === undefined || serializedOrigin(origin) !== own;
  }
  const site = req.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/**
 * An origin as `scheme://host:port`, the port always written out, so `https://example.com`
 * and `https://example.com:443` compare equal; undefined for anything that is not a plain
 * origin (`null`, a path, credentials, garbage): browsers send exactly scheme, host and port.
 */
function serializedOrigin(text: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#@\\]+$/i.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const port = url.port || DEFAULT_PORTS[url.protocol];
  return url.hostname === '' || port === undefined ? undefined : `${url.protocol}//${url.hostname}:${port}`;
}

/**
 * The origin this request was sent to: the scheme App Engine's front end reports in
 * X-Forwarded-Proto (`req.protocol`, with trust proxy 1), the host and port from `Host`.
 */
function ownOrigin(req: Request): string | undefined {
  const host = req.headers['host'];
  // Only a bare host[:port]: a Host header with a path or credentials must not parse into a match.
  if (host === undefined || !/^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i.test(host)) return undefined;
  return serializedOrigin(`${req.protocol}://${host}`);
}
