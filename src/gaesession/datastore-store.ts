import type { Transaction } from '@google-cloud/datastore';
import type { SessionRecord } from '../session/record.js';
import type { Loaded, RemoveResult, Store, StoreToken, WriteResult } from '../session/store.js';
import { grpcCode, GRPC, type DatastoreTier } from './datastore.js';
import { removeIf, writeIf } from './datastore-writes.js';

/** A Datastore-only token: the transaction the load began (until used), and the version read. */
interface DatastoreToken {
  transaction: Transaction | undefined;
  version: number;
}

/**
 * Sessions in Datastore only (`SESSION_STORE=datastore`). A load is the first lookup of a
 * transaction, and the write of a changed view commits that same transaction: one lookup per
 * view, and Datastore itself refuses the commit (ABORTED) when another request wrote the
 * entity in between. A view that writes nothing releases its transaction.
 */
export class DatastoreStore implements Store {
  readonly tier: DatastoreTier;

  constructor(tier: DatastoreTier) {
    this.tier = tier;
  }

  async load(id: string): Promise<Loaded | undefined> {
    const transaction = this.tier.datastore.transaction();
    const entity = await this.tier
      .bounded('read', () => this.tier.read(transaction, id))
      .catch((error: unknown) => {
        this.#rollback(transaction);
        throw error;
      });
    const record = this.tier.live(id, entity);
    if (!record) {
      this.#rollback(transaction);
      return undefined;
    }
    return { record, token: { transaction, version: record.version } satisfies DatastoreToken };
  }

  async write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult> {
    const entity = this.tier.entity(record);
    if (token === undefined) {
      try {
        await this.tier.bounded('insert', () =>
          this.tier.datastore.save({ ...entity, method: 'insert' }, this.tier.gax),
        );
      } catch (error) {
        if (grpcCode(error) === GRPC.ALREADY_EXISTS) return { status: 'conflict' };
        throw error;
      }
      this.tier.writes++;
      return { status: 'stored', token: { transaction: undefined, version: record.version } };
    }
    const { transaction, version } = token as DatastoreToken;
    (token as DatastoreToken).transaction = undefined;
    try {
      if (transaction) {
        transaction.save(entity);
        await this.tier.bounded('write', () => this.tier.commit(transaction));
      } else {
        // A second write in one request: its own read-compare-write transaction.
        const outcome = await writeIf(this.tier, record, version);
        if (outcome !== 'stored') return { status: outcome };
      }
    } catch (error) {
      if (transaction) this.#rollback(transaction);
      if (grpcCode(error) === GRPC.ABORTED) return { status: 'conflict' };
      throw error;
    }
    return { status: 'stored', token: { transaction: undefined, version: record.version } };
  }

  async remove(id: string, token?: StoreToken): Promise<RemoveResult> {
    if (token === undefined) {
      await this.tier.delete(id);
      return 'removed';
    }
    const { version, transaction } = token as DatastoreToken;
    if (transaction) this.#rollback(transaction);
    (token as DatastoreToken).transaction = undefined;
    return removeIf(this.tier, id, version);
  }

  owned(owner: string): Promise<SessionRecord[]> {
    return this.tier.owned(owner);
  }

  release(token: StoreToken): void {
    const held = token as DatastoreToken;
    if (held.transaction) this.#rollback(held.transaction);
    held.transaction = undefined;
  }

  /** Nothing is pending: every write was made before its response. The app closes the client it made. */
  async close(): Promise<void> {}

  #rollback(transaction: Transaction): void {
    // Nobody waits for it: a view that changed nothing must not pay for ending its transaction.
    transaction.rollback(this.tier.gax).catch(() => {});
  }
}
