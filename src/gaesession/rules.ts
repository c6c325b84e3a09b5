import type { SessionRecord } from '../session/session.js';

/**
 * The rules the store's modules share, each stated once: when an unchanged session's expiry
 * is worth refreshing, and which of two states of a session is the newer. (When a session
 * expires is `expiresAt` / `isExpired` in src/session/session.ts, shared by every store.)
 */

/**
 * An unchanged session is written again only once a quarter of its timeout has passed since
 * `accessed`: its expiry then moves forward, and no view in between costs a write.
 */
export function refreshDue(accessed: number, timeoutSeconds: number, now: number): boolean {
  return now - accessed > (timeoutSeconds * 1000) / 4;
}

/** Whether state `a` is at least as new as `b`: a higher version, or the same one accessed later or at once. */
export function isNewer(a: SessionRecord, b: SessionRecord): boolean {
  return a.version > b.version || (a.version === b.version && a.accessed >= b.accessed);
}

/** Two states with the same attributes (states of one version that differ come from diverging writers). */
export function sameState(a: SessionRecord, b: SessionRecord): boolean {
  return JSON.stringify([a.constants, a.variables]) === JSON.stringify([b.constants, b.variables]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
