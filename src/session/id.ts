import { randomBytes } from 'node:crypto';

/** Bytes of randomness in a session ID: 18 bytes give 24 base64url characters. */
export const DEFAULT_ID_BYTES = 18;

/** A new session ID: `bytes` from the CSPRNG, base64url-encoded (no padding). */
export function newSessionId(bytes = DEFAULT_ID_BYTES): string {
  return randomBytes(bytes).toString('base64url');
}

/** The length of the base64url text of `bytes` bytes, without padding. */
export function idLength(bytes = DEFAULT_ID_BYTES): number {
  return Math.ceil((bytes * 4) / 3);
}

/**
 * Builds a validator that accepts exactly what `newSessionId(bytes)` can produce, so that a
 * forged or garbled cookie is rejected before any store is asked about it.
 */
export function sessionIdValidator(bytes = DEFAULT_ID_BYTES): (value: string) => boolean {
  const length = idLength(bytes);
  // When the bit count is not a multiple of 6 the last character carries padding bits that
  // the encoder always leaves at zero; a value with them set was not made by us.
  const spareBits = (length * 6) % 8 === 0 ? 0 : length * 6 - bytes * 8;
  const pattern = new RegExp(`^[A-Za-z0-9_-]{${length}}$`);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  return (value: string): boolean => {
    if (!pattern.test(value)) return false;
    if (spareBits === 0) return true;
    const last = alphabet.indexOf(value.charAt(length - 1));
    return (last & ((1 << spareBits) - 1)) === 0;
  };
}
