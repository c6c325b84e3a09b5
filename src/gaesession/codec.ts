import { parseRecord, serializeRecord, type SessionRecord } from '../session/record.js';

/**
 * Turns a session record into the bytes a backend stores, and back. The same bytes go into
 * the cache item and the Datastore entity's `val`, so the tiers always agree. Swap in another
 * codec (compressed, encrypted, MessagePack) by passing it to the store.
 */
export interface Codec {
  encode(record: SessionRecord): Buffer;
  /** Throws when `data` is not a session this codec wrote. */
  decode(data: Buffer): SessionRecord;
}

/**
 * Stored bytes that are not a session this store's codec can read: a codec changed by a
 * deploy, or another app's item in a cache shared without a key prefix.
 */
export class UndecodableSessionError extends Error {
  override name = 'UndecodableSessionError';
}

/** Decodes with `codec` and checks the record is the one asked for; any failure is UndecodableSessionError. */
export function decodeWith(codec: Codec, data: Buffer, id: string): SessionRecord {
  let record: SessionRecord;
  try {
    record = codec.decode(data);
  } catch (error) {
    throw new UndecodableSessionError(error instanceof Error ? error.message : String(error));
  }
  // A key maps to one session; anything else there is corruption, and must not be served.
  if (record.id !== id) throw new UndecodableSessionError('the stored item holds another session');
  return record;
}

/** The default: UTF-8 JSON with ISO-8601 dates, readable in a cache console or the Datastore viewer. */
export const jsonCodec: Codec = {
  encode(record: SessionRecord): Buffer {
    return Buffer.from(JSON.stringify(serializeRecord(record)), 'utf8');
  },
  decode(data: Buffer): SessionRecord {
    return parseRecord(data.toString('utf8'));
  },
};
