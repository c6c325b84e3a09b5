import { hash } from 'node:crypto';

/** A value that survives a JSON round trip: what a session attribute may hold. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A session's attributes. Declare them with a `type` alias, e.g. `{ count: number }`. */
export type Attributes = { [key: string]: Json | undefined };

/** The stored form of a session: what every Store keeps, through a codec. */
export interface SessionRecord {
  id: string;
  /** Creation time, epoch ms. Rotation keeps it, so the absolute lifetime counts from here. */
  created: number;
  /** Last write, epoch ms; idle expiry counts from here. */
  accessed: number;
  /** Idle timeout, seconds. */
  timeout: number;
  /** Absolute lifetime from `created`, seconds. */
  lifetime: number;
  /** One more with every write: a conditional write compares it, a reader can tell old from new. */
  version: number;
  /** Hash of the owner key the app set (see `ownerHash`); indexes find a user's sessions by it. */
  owner?: string | undefined;
  /** Fixed at creation (the user name). */
  constants: Attributes;
  /** Changed by requests (the visit count). */
  variables: Attributes;
}

/** When a session ends (epoch ms): after its idle timeout, and never past its absolute lifetime. */
export function expiresAt(record: SessionRecord): number {
  return Math.min(record.accessed + record.timeout * 1000, deadline(record));
}

/** The end of a session's absolute lifetime (epoch ms); no access moves it. */
export function deadline(record: SessionRecord): number {
  return record.created + record.lifetime * 1000;
}

export function isExpired(record: SessionRecord, now: number): boolean {
  return now >= expiresAt(record);
}

/** Whole seconds a cache should keep an item read or written now: to its idle end, at most to its deadline. */
export function cacheTtlSeconds(record: SessionRecord, now: number): number {
  return Math.max(1, Math.ceil((Math.min(now + record.timeout * 1000, deadline(record)) - now) / 1000));
}

/**
 * An unchanged session is written again only once a quarter of its timeout has passed since
 * `accessed`: its expiry then moves forward, and no view in between costs a write.
 */
export function refreshDue(record: SessionRecord, now: number): boolean {
  return now - record.accessed > (record.timeout * 1000) / 4;
}

/**
 * What indexes keep instead of the owner key itself (a user name): a log, a cache dump or a
 * Datastore export of an index then names nobody.
 */
export function ownerHash(ownerKey: string): string {
  return hash('sha256', ownerKey, 'base64url').slice(0, 22);
}

/** A session as JSON: a SessionRecord with ISO-8601 dates, readable in a cache console or the Datastore viewer. */
export interface SerializedRecord {
  id: string;
  created: string;
  accessed: string;
  timeout: number;
  lifetime: number;
  version: number;
  owner?: string | undefined;
  constants: Attributes;
  variables: Attributes;
}

export function serializeRecord(record: SessionRecord): SerializedRecord {
  const { id, created, accessed, timeout, lifetime, version, owner, constants, variables } = record;
  // An undefined owner is left out by JSON.stringify, so no spread (slow) is needed to omit it.
  return {
    id,
    created: new Date(created).toISOString(),
    accessed: new Date(accessed).toISOString(),
    timeout,
    lifetime,
    version,
    owner,
    constants,
    variables,
  };
}

/** Parses and checks a serialized session; throws on anything that is not one. */
export function parseRecord(json: string): SessionRecord {
  const value: unknown = JSON.parse(json);
  if (!isObject(value)) throw new TypeError('session JSON is not an object');
  const { id, created, accessed, timeout, lifetime, version, owner, constants, variables } = value;
  const createdMs = typeof created === 'string' ? Date.parse(created) : NaN;
  const accessedMs = typeof accessed === 'string' ? Date.parse(accessed) : NaN;
  if (
    typeof id !== 'string' ||
    !Number.isFinite(createdMs) ||
    !Number.isFinite(accessedMs) ||
    typeof timeout !== 'number' ||
    typeof lifetime !== 'number' ||
    typeof version !== 'number' ||
    (owner !== undefined && typeof owner !== 'string') ||
    !isObject(constants) ||
    !isObject(variables)
  ) {
    throw new TypeError('session JSON lacks a field or has one of the wrong type');
  }
  return {
    id,
    created: createdMs,
    accessed: accessedMs,
    timeout,
    lifetime,
    version,
    owner,
    constants: constants as Attributes,
    variables: variables as Attributes,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
