/**
 * Requests' view of a store, for store tests: the core's save loop and drafts behind the
 * handler-facing `Session`, without HTTP. One client is one app instance.
 */
import { SessionCommitter } from '../../src/session/commit.js';
import { SessionDraft } from '../../src/session/draft.js';
import { newSessionId } from '../../src/session/id.js';
import { ownerHash, type Attributes } from '../../src/session/record.js';
import { Session } from '../../src/session/session.js';
import type { Store } from '../../src/session/store.js';

/** Every client's sessions: one made by one instance's client may be saved through another's. */
const drafts = new WeakMap<Session, SessionDraft>();

export class SessionClient {
  readonly #committer: SessionCommitter;
  readonly #now: () => number;

  constructor(
    readonly store: Store,
    now: () => number = Date.now,
  ) {
    this.#committer = new SessionCommitter(store, now);
    this.#now = now;
  }

  /** A new session, not stored yet. */
  create(
    timeoutSeconds = 1800,
    constants: Attributes = { userName: 'alice' },
    variables: Attributes = { count: 0 },
    owner?: string,
  ): Session {
    const draft = SessionDraft.create({
      id: newSessionId(),
      timeoutSeconds,
      lifetimeSeconds: Math.max(86_400, timeoutSeconds),
      constants,
      variables,
      owner: owner === undefined ? undefined : ownerHash(owner),
      now: this.#now(),
    });
    return this.#wrap(draft);
  }

  async add(session: Session): Promise<void> {
    const draft = this.#draft(session);
    const record = draft.next(this.#now());
    const result = await this.store.write(record, undefined);
    if (result.status !== 'stored') throw new Error(`add: ${result.status}`);
    draft.committed(record, result.token);
    await result.durable;
  }

  async get(id: string): Promise<Session | undefined> {
    const found = await this.store.load(id);
    return found && this.#wrap(new SessionDraft(found.record, found.token, false, found.source));
  }

  /** True when saved, false when the session had ended (its changes refused). */
  async save(session: Session): Promise<boolean> {
    return (await this.#committer.save(this.#draft(session))) === 'saved';
  }

  async remove(id: string): Promise<void> {
    await this.store.remove(id);
  }

  /** The stored version the session was read at or last written as. */
  version(session: Session): number {
    return this.#draft(session).base.version;
  }

  #wrap(draft: SessionDraft): Session {
    const session = new Session(draft);
    drafts.set(session, draft);
    return session;
  }

  #draft(session: Session): SessionDraft {
    const draft = drafts.get(session);
    if (!draft) throw new Error('not a session of this client');
    return draft;
  }
}
