import type { SessionDraft } from './draft.js';
import { deadline, expiresAt, serializeRecord, type Attributes, type Json, type SerializedRecord } from './record.js';

/**
 * One user's session as a request handler sees it: constant attributes set at creation,
 * variable attributes changed by requests. Changes are saved by the middleware (or
 * `req.sessions.save()`), conflict-safe: see `update`.
 *
 * An object value never leaves or enters the session without being copied, so no caller can
 * change stored state behind its back; numbers, strings and booleans cost no copy.
 */
export class Session<C extends Attributes = Attributes, V extends Attributes = Attributes> {
  readonly #draft: SessionDraft;

  /** Made by the session manager; handlers get one from `req.sessions`. */
  constructor(draft: SessionDraft) {
    this.#draft = draft;
  }

  get id(): string {
    return this.#draft.base.id;
  }
  get created(): Date {
    return new Date(this.#draft.base.created);
  }
  /** When the session was last written. */
  get accessed(): Date {
    return new Date(this.#draft.base.accessed);
  }
  get timeoutSeconds(): number {
    return this.#draft.base.timeout;
  }
  /** When the session ends if nothing touches it (never after `deadline`). */
  get expires(): Date {
    return new Date(expiresAt(this.#draft.base));
  }
  /** When the session ends for good, however active: creation + absolute lifetime. */
  get deadline(): Date {
    return new Date(deadline(this.#draft.base));
  }
  /** Which tier served the session, when the store has tiers (the demo shows it). */
  get source(): string | undefined {
    return this.#draft.source;
  }
  /** True until the session is first stored. */
  get isNew(): boolean {
    return this.#draft.isNew;
  }
  /** True when this request changed a variable that is not saved yet. */
  get changed(): boolean {
    return this.#draft.changed;
  }

  /** A constant; an object value is a copy. */
  constant<K extends keyof C & string>(key: K): C[K] {
    return copyOf(this.#draft.base.constants[key]) as C[K];
  }

  /** A variable; an object value is a copy (change it, then `set` it, or use `update`). */
  get<K extends keyof V & string>(key: K): V[K] | undefined {
    return copyOf(this.#draft.variables[key]) as V[K] | undefined;
  }

  /** Sets a variable to (a copy of) `value`. */
  set<K extends keyof V & string>(key: K, value: V[K]): void {
    const copy = copyOf(value);
    this.#draft.change(key, () => copy);
  }

  delete<K extends keyof V & string>(key: K): void {
    this.#draft.change(key, () => undefined);
  }

  /**
   * Changes a variable by a function of its current value, e.g. `update('count', c => (c ?? 0) + 1)`.
   * If another request saves this session first, the store re-runs `fn` on the newer value,
   * so concurrent updates are all counted. `fn` must depend on nothing but `current` (a copy,
   * which it may change and return).
   */
  update<K extends keyof V & string>(key: K, fn: (current: V[K] | undefined) => V[K]): V[K] {
    this.#draft.change(key, (current) => copyOf(fn(copyOf(current) as V[K] | undefined)));
    return this.get(key) as V[K];
  }

  /** A copy of all variables. */
  variables(): Partial<V> {
    return structuredClone(this.#draft.variables) as Partial<V>;
  }

  /** A copy of all constants. */
  constants(): C {
    return structuredClone(this.#draft.base.constants) as C;
  }

  toJSON(): SerializedRecord {
    return serializeRecord({ ...this.#draft.base, variables: this.#draft.variables });
  }
}

function copyOf<T extends Json | undefined>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}
