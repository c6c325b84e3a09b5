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
