/** When the session cookie gets the Secure attribute. */
export type SecurePolicy = 'auto' | 'always' | 'never';

export interface CookieOptions {
  name: string;
  /** Max-Age of the cookie, in seconds. */
  maxAgeSeconds: number;
  /** `auto`: Secure when the request came over HTTPS (App Engine's front end says so). */
  secure: SecurePolicy;
}

/** RFC 6265 token characters: what a cookie name may contain. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function isValidCookieName(name: string): boolean {
  return COOKIE_NAME.test(name);
}

/** The Set-Cookie header that hands the client a session ID. */
export function sessionCookie(options: CookieOptions, value: string, requestIsSecure: boolean): string {
  return serialize(options.name, value, options.maxAgeSeconds, isSecure(options.secure, requestIsSecure));
}

/** The Set-Cookie header that makes the client forget its session cookie. */
export function clearingCookie(options: CookieOptions, requestIsSecure: boolean): string {
  return (
    serialize(options.name, '', 0, isSecure(options.secure, requestIsSecure)) +
    '; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
  );
}

function isSecure(policy: SecurePolicy, requestIsSecure: boolean): boolean {
  return policy === 'always' || (policy === 'auto' && requestIsSecure);
}

// The value is always a base64url session ID (or empty), so it needs no encoding.
function serialize(name: string, value: string, maxAge: number, secure: boolean): string {
  const attributes = [`${name}=${value}`, `Max-Age=${maxAge}`, 'Path=/', 'HttpOnly', 'SameSite=Lax'];
  if (secure) attributes.push('Secure');
  return attributes.join('; ');
}

/**
 * The session cookie's value in a raw Cookie header, read strictly: `undefined` when the
 * header has no cookie of that name, `null` when it has one that must not be used as is (two
 * cookies of the name: one tossed in by a sibling subdomain, or with a longer Path, and no way
 * to know which the user's browser meant; or spaces before `=`, which no browser sends), else
 * the value exactly as sent, spaces around it dropped. Nothing is decoded: a quoted,
 * percent-encoded or `j:` form of a session ID is not a session ID.
 */
export function sessionCookieValue(header: string, name: string): string | null | undefined {
  let value: string | null | undefined;
  for (let at = header.indexOf(name); at >= 0; at = header.indexOf(name, at + name.length)) {
    // A match counts only as a whole name at the start of a pair (`xsessid=` is another
    // cookie), followed by `=` after optional spaces.
    let before = at - 1;
    while (before >= 0 && header.charCodeAt(before) === 32) before--;
    if (before >= 0 && header.charCodeAt(before) !== 59) continue;
    let equals = at + name.length;
    while (header.charCodeAt(equals) === 32) equals++;
    if (header.charCodeAt(equals) !== 61) continue;
    if (value !== undefined || equals !== at + name.length) return null;
    const end = header.indexOf(';', equals + 1);
    value = header.slice(equals + 1, end < 0 ? header.length : end).trim();
  }
  return value;
}
