/** A Set-Cookie header taken apart, for assertions on each attribute. */
export interface SetCookie {
  name: string;
  value: string;
  /** Attribute names lower-cased; flags map to ''. */
  attributes: Map<string, string>;
}

/** Splits a Set-Cookie header into its name=value and its attributes. */
export function parseSetCookie(header: string): SetCookie {
  const [pair = '', ...rest] = header.split(';').map((part) => part.trim());
  const eq = pair.indexOf('=');
  const attributes = new Map<string, string>();
  for (const part of rest) {
    const at = part.indexOf('=');
    attributes.set((at < 0 ? part : part.slice(0, at)).toLowerCase(), at < 0 ? '' : part.slice(at + 1));
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
}
