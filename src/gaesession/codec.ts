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
