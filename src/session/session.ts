/** A value that survives a JSON round trip: what a session attribute may hold. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A session's attributes. Declare them with a `type` alias, e.g. `{ count: number }`. */
export type Attributes = { [key: string]: Json | undefined };

/** The stored form of a session: what every Store persists, through a codec. */
export interface SessionRecord {
  id: string;
  /** Creation time, epoch milliseconds. */
  created: number;
  /** Last time the session was saved, epoch milliseconds; idle expiry counts from here. */
  accessed: number;
  /** Idle timeout in seconds. */
  timeout: number;
  /** Incremented by every saved change; lets a store detect, and a write refuse, stale state. */
  version: number;
  /** Fixed at creation (the user name). */
  constants: Attributes;
  /** Changed by requests (the visit count). */
  variables: Attributes;
}

/** When a session expires if nothing touches it, in epoch ms (Datastore's `exp`). */
export function expiresAt(record: SessionRecord): number {
  return record.accessed + record.timeout * 1000;
}

/** Idle for its whole timeout: every store treats such a session as gone. */
export function isExpired(record: SessionRecord, now: number): boolean {
  return now >= expiresAt(record);
}

/** How a request changed one variable; kept so it can be replayed on a newer state. */
interface Change {
  key: string;
  apply(current: Json | undefined): Json | undefined;
}

export interface NewSessionOptions<C extends Attributes, V extends Attributes> {
  id: string;
  timeoutSeconds: number;
  constants?: C;
  variables?: Partial<V>;
  now?: number;
}

/**
 * One user's session: constant attributes set at creation, variable attributes changed by
 * requests. A Session object belongs to one request. It records its changes rather than just
 * their result, so a store that finds another request saved first can replay them on the
 * newer state instead of overwriting it (`update` is the operation that needs this).
 *
 * Records are immutable: a session never changes a record it was given or handed out, so a
 * store may share its own with the session, copy-free. The variables are copied (shallowly)
 * only at the first change, and an object value never leaves or enters the session without
 * being copied (`get`, `constant`, `set`, `update`): no caller can change stored state behind
 * the session's back. Numbers, strings and booleans cost no copy.
 */
export class Session<C extends Attributes = Attributes, V extends Attributes = Attributes> {
  #base: SessionRecord;
  /** `#base.variables` until the first change, then this session's own copy. */
  #variables: Attributes;
  #ownsVariables = false;
  #changes: Change[] = [];
  #isNew: boolean;

  private constructor(record: SessionRecord, isNew: boolean) {
    this.#base = record;
    this.#variables = record.variables;
    this.#isNew = isNew;
  }

  /** A brand-new session, not yet stored. */
  static create<C extends Attributes, V extends Attributes>(options: NewSessionOptions<C, V>): Session<C, V> {
    const now = options.now ?? Date.now();
    const record: SessionRecord = {
      id: options.id,
      created: now,
      accessed: now,
      timeout: options.timeoutSeconds,
      version: 1,
      constants: structuredClone(options.constants ?? {}),
      variables: structuredClone(options.variables ?? {}),
    };
    return new Session<C, V>(record, true);
  }

  /** A session loaded from a store. The session never changes the record: the store may keep it too, unchanged. */
  static fromRecord<C extends Attributes = Attributes, V extends Attributes = Attributes>(
    record: SessionRecord,
  ): Session<C, V> {
    return new Session<C, V>(record, false);
  }

  /** Parses what `JSON.stringify(session)` produced. */
  static fromJSON<C extends Attributes = Attributes, V extends Attributes = Attributes>(json: string): Session<C, V> {
    return Session.fromRecord<C, V>(parseRecord(json));
  }

  get id(): string {
    return this.#base.id;
  }
  get created(): Date {
    return new Date(this.#base.created);
  }
  /** When the session was last saved. */
  get accessed(): Date {
    return new Date(this.#base.accessed);
  }
  get timeoutSeconds(): number {
    return this.#base.timeout;
  }
  /** When the session expires if nothing touches it. */
  get expires(): Date {
    return new Date(expiresAt(this.#base));
  }
  get version(): number {
    return this.#base.version;
  }
  /** True until the session is first stored. */
  get isNew(): boolean {
    return this.#isNew;
  }
  /** True when this request changed a variable. */
  get changed(): boolean {
    return this.#changes.length > 0;
  }

  isExpired(now = Date.now()): boolean {
    return isExpired(this.#base, now);
  }

  /** A constant; an object value is a copy. */
  constant<K extends keyof C & string>(key: K): C[K] {
    return copyOf(this.#base.constants[key]) as C[K];
  }

  /** A variable; an object value is a copy (change it, then `set` it, or use `update`). */
  get<K extends keyof V & string>(key: K): V[K] | undefined {
    return copyOf(this.#variables[key]) as V[K] | undefined;
  }

  /** Sets a variable to (a copy of) `value`. */
  set<K extends keyof V & string>(key: K, value: V[K]): void {
    const copy = copyOf(value);
    this.#change({ key, apply: () => copy });
  }

  delete<K extends keyof V & string>(key: K): void {
    this.#change({ key, apply: () => undefined });
  }

  /**
   * Changes a variable by a function of its current value, e.g. `update('count', c => (c ?? 0) + 1)`.
   * If another request saves this session first, the store re-runs `fn` on the newer value,
   * so concurrent updates are all counted. `fn` must depend on nothing but `current` (a copy,
   * which it may change and return).
   */
  update<K extends keyof V & string>(key: K, fn: (current: V[K] | undefined) => V[K]): V[K] {
    this.#change({ key, apply: (current) => copyOf(fn(copyOf(current) as V[K] | undefined)) });
    return copyOf(this.#variables[key]) as V[K];
  }

  /** A copy of all variables. */
  variables(): Partial<V> {
    return structuredClone(this.#variables) as Partial<V>;
  }

  /** A copy of all constants. */
  constants(): C {
    return structuredClone(this.#base.constants) as C;
  }

  /**
   * The record a store should write now: this request's changes applied, `accessed` = now.
   * It shares the variables with the session, which copies them before its next change.
   */
  toRecord(now = Date.now()): SessionRecord {
    const base = this.#base;
    this.#ownsVariables = false;
    return {
      ...base,
      accessed: now,
      version: this.#isNew || !this.changed ? base.version : base.version + 1,
      variables: this.#variables,
    };
  }

  /** The store saved `record` (and will not change it): it becomes the new base, and the changes are done. */
  markSaved(record: SessionRecord): void {
    this.#setBase(record);
    this.#changes = [];
    this.#isNew = false;
  }

  /** Another request saved first: replay this request's changes on its state. */
  rebase(latest: SessionRecord): void {
    this.#setBase(latest);
    for (const change of this.#changes) this.#applyChange(change);
  }

  toJSON(): SerializedSession {
    const record = { ...this.#base, variables: this.#variables };
    return {
      ...record,
      created: new Date(record.created).toISOString(),
      accessed: new Date(record.accessed).toISOString(),
    };
  }

  #change(change: Change): void {
    this.#changes.push(change);
    this.#applyChange(change);
  }

  #applyChange(change: Change): void {
    const next = change.apply(this.#variables[change.key]);
    // Copy on (first) write: the record the variables came from stays as it was.
    if (!this.#ownsVariables) {
      this.#variables = { ...this.#variables };
      this.#ownsVariables = true;
    }
    if (next === undefined) delete this.#variables[change.key];
    else this.#variables[change.key] = next;
  }

  #setBase(record: SessionRecord): void {
    this.#base = record;
    this.#variables = record.variables;
    this.#ownsVariables = false;
  }
}

/**
 * Object values are copied on their way into and out of a session, so nothing outside it
 * holds one of its values (a shallow copy of the variables is then a safe copy-on-write).
 */
function copyOf<T extends Json | undefined>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

/** A session as JSON: a SessionRecord with ISO-8601 dates. */
export type SerializedSession = Omit<SessionRecord, 'created' | 'accessed'> & {
  created: string;
  accessed: string;
};

/** Parses and checks a serialized session; throws on anything that is not one. */
export function parseRecord(json: string): SessionRecord {
  const value: unknown = JSON.parse(json);
  if (!isObject(value)) throw new TypeError('session JSON is not an object');
  const { id, created, accessed, timeout, version, constants, variables } = value;
  const createdMs = typeof created === 'string' ? Date.parse(created) : NaN;
  const accessedMs = typeof accessed === 'string' ? Date.parse(accessed) : NaN;
  if (
    typeof id !== 'string' ||
    !Number.isFinite(createdMs) ||
    !Number.isFinite(accessedMs) ||
    typeof timeout !== 'number' ||
    typeof version !== 'number' ||
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
    version,
    constants: constants as Attributes,
    variables: variables as Attributes,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
