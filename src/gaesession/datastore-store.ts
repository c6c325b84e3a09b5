import type { SessionRecord } from '../session/record.js';
import type { Loaded, RemoveResult, Store, StoreToken, WriteResult } from '../session/store.js';
import type { DatastoreTier } from './datastore.js';

/** A Datastore-only token: Datastore's version of the entity the record was read from or written as. */
interface DatastoreToken {
  version: string;
}

/**
 * Sessions in Datastore only (`SESSION_STORE=datastore`). A load is one lookup; the write of a
 * changed view is one commit, based on the entity version that lookup returned, so Datastore
 * itself refuses it when another request wrote the session in between. A view that writes
 * nothing costs the lookup alone.
 */
export class DatastoreStore implements Store {
  readonly tier: DatastoreTier;

  constructor(tier: DatastoreTier) {
    this.tier = tier;
  }

  async load(id: string): Promise<Loaded | undefined> {
    const found = await this.tier.bounded('read', () => this.tier.find(id));
    const record = this.tier.live(id, found?.entity);
    if (!found || !record) return undefined;
    return { record, token: { version: found.version } satisfies DatastoreToken };
  }

  async write(record: SessionRecord, token: StoreToken | undefined): Promise<WriteResult> {
    const entity = this.tier.entity(record);
    const base = (token as DatastoreToken | undefined)?.version;
    const version = await this.tier.bounded('write', () => this.tier.commit(this.tier.put(record.id, entity, base)));
    if (version !== undefined) return { status: 'stored', token: { version } satisfies DatastoreToken };
    // Refused: another write came first, or (with a token) the session ended meanwhile.
    if (base !== undefined && !(await this.tier.lookup(record.id))) return { status: 'gone' };
    return { status: 'conflict' };
  }

  async remove(id: string, token?: StoreToken): Promise<RemoveResult> {
    if (token === undefined) {
      await this.tier.delete(id);
      return 'removed';
    }
    const base = (token as DatastoreToken).version;
    if ((await this.tier.bounded('remove', () => this.tier.commit(this.tier.deletion(id, base)))) !== undefined) {
      return 'removed';
    }
    return (await this.tier.lookup(id)) ? 'conflict' : 'gone';
  }

  owned(owner: string, known?: SessionRecord): Promise<SessionRecord[]> {
    return this.tier.owned(owner, known);
  }

  /** Nothing is pending: every write was made before its response. The app closes the client it made. */
  async close(): Promise<void> {}
}
