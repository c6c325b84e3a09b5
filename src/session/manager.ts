/**
 * The part of an HTTP exchange a Manager uses, so the core depends on no web framework.
 * The Express middleware (src/express/) provides one per request.
 */
export interface HttpExchange {
  /** The raw Cookie header, if the request has one. */
  readonly cookieHeader: string | undefined;
  /** Whether the request reached the front end over HTTPS. */
  readonly secure: boolean;
  /** Appends a Set-Cookie header to the response (replacing one of the same cookie). */
  setCookie(header: string): void;
}

/** What a page may show of one of a user's sessions: never its ID, which is a credential. */
export interface SessionSummary {
  /** A short, non-secret label (the ID's first characters), to tell sessions apart. */
  label: string;
  created: Date;
  /** Last write: the last view that changed the session, or refreshed it. */
  accessed: Date;
  /** When it idles out (never after `deadline`). */
  expires: Date;
  deadline: Date;
  /** True for the session of the request that asked. */
  current: boolean;
}
