import type { google } from '@google-cloud/datastore/build/protos/protos.js';
import type { SessionEntity } from './datastore.js';

/*
 * SPEC's session entity in Datastore's wire format. The tier works one level below the
 * library's entity API because it needs what that API leaves out: the version a lookup
 * returns with each entity, and the base version a write can be made conditional on.
 */

export type EntityProto = google.datastore.v1.IEntity;
export type KeyProto = google.datastore.v1.IKey;
export type Mutation = google.datastore.v1.IMutation;

export function entityToProto(key: KeyProto, entity: SessionEntity): EntityProto {
  const ms = entity.exp.getTime();
  const properties: Record<string, google.datastore.v1.IValue> = {
    exp: { timestampValue: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } },
    val: { blobValue: entity.val, excludeFromIndexes: true },
  };
  if (entity.own !== undefined) properties['own'] = { stringValue: entity.own };
  return { key, properties };
}

export function entityFromProto(proto: EntityProto): SessionEntity {
  const properties = proto.properties ?? {};
  const exp = properties['exp']?.timestampValue;
  const val = properties['val']?.blobValue;
  const own = properties['own']?.stringValue;
  const entity: SessionEntity = {
    // An entity without a timestamp reads as long expired, and so is deleted.
    exp: new Date(exp ? Number(String(exp.seconds)) * 1000 + Math.floor((exp.nanos ?? 0) / 1_000_000) : 0),
    val:
      typeof val === 'string'
        ? Buffer.from(val, 'base64')
        : val
          ? Buffer.from(val.buffer, val.byteOffset, val.byteLength)
          : Buffer.alloc(0),
  };
  if (typeof own === 'string') entity.own = own;
  return entity;
}
