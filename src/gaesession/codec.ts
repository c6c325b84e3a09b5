import { parseRecord, type SessionRecord } from '../session/session.js';

/**
 * Turns a session record into the bytes a backend stores, and back. The same bytes go into
 * the memcache item and the Datastore entity's `val`, so both tiers always agree. Swap in
 * another codec (compressed, encrypted, MessagePack) by passing it to `GaeStore`.
 */
export interface Codec {
  encode(record: SessionRecord): Buffer;
  /** Throws when `data` is not a session this codec wrote. */
  decode(data: Buffer): SessionRecord;
}

/**
 * Stored bytes that are not a session this store's codec can read: a codec changed by a
 * deploy, or another app's item in a memcached shared without a key prefix.
 */
export class UndecodableSessionError extends Error {
  override name = 'UndecodableSessionError';
}

/** Decodes with `codec`, turning whatever it throws into UndecodableSessionError. */
export function decodeWith(codec: Codec, data: Buffer): SessionRecord {
  try {
    return codec.decode(data);
  } catch (error) {
    throw new UndecodableSessionError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * The default: UTF-8 JSON in the shape of `Session.toJSON()` (dates as ISO-8601 text), so a
 * stored session is readable in the memcached console or the Datastore viewer.
 */
export const jsonCodec: Codec = {
  encode(record: SessionRecord): Buffer {
    const { id, created, accessed, timeout, version, constants, variables } = record;
    const serialized = {
      id,
      created: new Date(created).toISOString(),
      accessed: new Date(accessed).toISOString(),
      timeout,
      version,
      constants,
      variables,
    };
    return Buffer.from(JSON.stringify(serialized), 'utf8');
  },
  decode(data: Buffer): SessionRecord {
    return parseRecord(data.toString('utf8'));
  },
};
