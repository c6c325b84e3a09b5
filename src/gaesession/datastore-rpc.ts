import { DatastoreClient, type Datastore } from '@google-cloud/datastore';
import type { google } from '@google-cloud/datastore/build/protos/protos.js';
import type { CallOptions, ClientOptions, ClientStub } from 'google-gax';
import { SessionContentionError } from '../session/store.js';

/** The stored entity: SPEC's layout. */
export interface SessionEntity {
  /** When the session ends (idle end, never past its deadline); indexed, so the purge finds expired ones. */
  exp: Date;
  /** The encoded session; unindexed (a blob, up to the entity limit). */
  val: Buffer;
  /** The owner's hash, indexed: "log out everywhere" finds a user's sessions by it. */
  own?: string;
}

/** An entity as a lookup found it, with Datastore's version of it: the base of a conditional write. */
export interface Found {
  entity: SessionEntity;
  version: string;
}

/** One write of a commit: an insert, an upsert or a delete, maybe based on a version. */
export type Mutation = google.datastore.v1.IMutation;
type KeyProto = google.datastore.v1.IKey;
type EntityProto = google.datastore.v1.IEntity;

/** gRPC status codes worth telling apart. */
export const GRPC = { ALREADY_EXISTS: 6, ABORTED: 10 } as const;

export function grpcCode(error: unknown): number | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}

/** An entity of the owner query, under its session ID. */
export interface Owned {
  id: string;
  entity: SessionEntity;
}

/**
 * The Datastore calls sessions need — a lookup, a commit of one write, the owner query — made
 * on the library's gRPC client, one level below its entity API. That level has what the
 * entity API leaves out: the version a lookup returns with each entity, and the base version
 * a write can be made conditional on. It also costs less CPU per call: no entity conversion
 * and no deep copy of every request (the entity API's query costs twice as much).
 */
export class DatastoreRpc {
  readonly datastore: Datastore;
  readonly kind: string;
  /**
   * Per RPC: a short deadline, within which the client retries what it may. No `maxRetries`:
   * google-gax writes it into the client's shared defaults, and every later call made without
   * it, by anyone, then fails ("Cannot set both totalTimeoutMillis and maxRetries").
   */
  readonly gax: CallOptions;
  /** The client's namespace, if it has one; keys and queries name it. */
  readonly #partitionId: google.datastore.v1.IPartitionId | undefined;
  /** Named in every request; the client finds the project ID (asked once). */
  #projectId: string | undefined;
  /** Entity reads (lookups) and queries, for tests and benchmarks. */
  reads = 0;
  /** Entity writes and deletes committed, for tests and benchmarks. */
  writes = 0;

  constructor(datastore: Datastore, kind: string, timeoutMs: number) {
    this.datastore = datastore;
    this.kind = kind;
    this.gax = { timeout: timeoutMs };
    this.#partitionId = datastore.namespace ? { namespaceId: datastore.namespace } : undefined;
  }

  key(id: string): KeyProto {
    const path = [{ kind: this.kind, name: id }];
    return this.#partitionId ? { partitionId: this.#partitionId, path } : { path };
  }

  /** The entity and its version (one strongly consistent lookup), or undefined. */
  async find(id: string): Promise<Found | undefined> {
    this.reads++;
    const [response] = await this.#client().lookup(await this.#addressed({ keys: [this.key(id)] }), this.gax);
    if (response.deferred?.length) throw new Error('Datastore deferred the lookup');
    const found = response.found?.[0];
    return found?.entity ? { entity: fromProto(found.entity), version: String(found.version) } : undefined;
  }

  /** The write of `entity`: over the version `baseVersion` if given, else only where there is none. */
  put(id: string, entity: SessionEntity, baseVersion?: string): Mutation {
    const proto = toProto(this.key(id), entity);
    return baseVersion === undefined ? { insert: proto } : { upsert: proto, baseVersion };
  }

  /** The delete of an entity: if it is still at `baseVersion`, or unconditionally. */
  deletion(id: string, baseVersion?: string): Mutation {
    return baseVersion === undefined ? { delete: this.key(id) } : { delete: this.key(id), baseVersion };
  }

  /**
   * Commits one write on its own. Resolves the entity's new version, or undefined when
   * Datastore refused it as a conflict: its base version was no longer current, or an insert
   * found the key taken. Aborted by contention, a write with no base version throws
   * SessionContentionError: nothing was decided for its caller to reload.
   */
  async commit(mutation: Mutation): Promise<string | undefined> {
    let result: google.datastore.v1.IMutationResult | undefined;
    try {
      const request = await this.#addressed({ mode: 'NON_TRANSACTIONAL' as const, mutations: [mutation] });
      const [response] = await this.#client().commit(request, this.gax);
      result = response.mutationResults?.[0];
    } catch (error) {
      const code = grpcCode(error);
      if (code === GRPC.ALREADY_EXISTS) return undefined;
      if (code === GRPC.ABORTED) {
        if (mutation.baseVersion !== undefined) return undefined;
        throw new SessionContentionError(`Datastore write aborted by contention: ${String(error)}`);
      }
      throw error;
    }
    if (result?.conflictDetected) return undefined;
    this.writes++;
    return String(result?.version);
  }

  /** Every entity whose `own` is `owner`: one query on that index, paged (no composite index needed). */
  async ownedBy(owner: string): Promise<Owned[]> {
    const query: google.datastore.v1.IQuery = {
      kind: [{ name: this.kind }],
      filter: { propertyFilter: { property: { name: 'own' }, op: 'EQUAL', value: { stringValue: owner } } },
    };
    const owned: Owned[] = [];
    for (;;) {
      this.reads++;
      const request = await this.#addressed({ partitionId: this.#partitionId, query });
      const [{ batch }] = await this.#client().runQuery(request, this.gax);
      for (const { entity } of batch?.entityResults ?? []) {
        const id = entity?.key?.path?.at(-1)?.name;
        if (entity && id) owned.push({ id, entity: fromProto(entity) });
      }
      // A batch can stop short of the end (the emulator's hold 300): go on from where it stopped.
      if (batch?.moreResults !== 'NOT_FINISHED' || !batch.endCursor) return owned;
      query.startCursor = batch.endCursor;
    }
  }

  /** The library's gRPC client, made as the library makes it and kept where it keeps it (so closed with it). */
  #client(): DatastoreClient {
    const clients = this.datastore.clients_;
    let client = clients.get('DatastoreClient') as DatastoreClient | undefined;
    if (!client) {
      client = new DatastoreClient(this.datastore.options as ClientOptions);
      clients.set('DatastoreClient', client as unknown as ClientStub);
    }
    return client;
  }

  /** `request` with the project and database it is for. */
  async #addressed<T extends object>(request: T): Promise<T & { projectId: string; databaseId?: string }> {
    this.#projectId ??= await this.datastore.getProjectId();
    const databaseId = this.datastore.options.databaseId;
    return databaseId
      ? { ...request, projectId: this.#projectId, databaseId }
      : { ...request, projectId: this.#projectId };
  }
}

function toProto(key: KeyProto, entity: SessionEntity): EntityProto {
  const ms = entity.exp.getTime();
  const properties: Record<string, google.datastore.v1.IValue> = {
    exp: { timestampValue: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } },
    val: { blobValue: entity.val, excludeFromIndexes: true },
  };
  if (entity.own !== undefined) properties['own'] = { stringValue: entity.own };
  return { key, properties };
}

function fromProto(proto: EntityProto): SessionEntity {
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
