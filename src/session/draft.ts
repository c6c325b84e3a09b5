import type { Attributes, Json, SessionRecord } from './record.js';
import { refreshDue } from './record.js';
import type { StoreToken } from './store.js';

/** How a request changed one variable; kept so it can be replayed on a newer state. */
interface Change {
  key: string;
  apply: (current: Json | undefined) => Json | undefined;
}

export interface NewRecordOptions {
  id: string;
  timeoutSeconds: number;
  lifetimeSeconds: number;
  constants?: Attributes | undefined;
  variables?: Attributes | undefined;
  owner?: string | undefined;
  now: number;
}

/**
 * One request's working copy of a session: the record it was loaded from (with the store's
 * token for a conditional write), and the changes the request made, kept as operations so they
 * can be replayed on a newer record when another request wrote first. Only the core's save
 * loop (commit.ts) and the request's `Session` use it; handlers see the `Session`.
 *
 * Records are immutable: the draft never changes one it was given, so a store may hand out
 * its own. The variables are copied (shallowly) at the first change only.
 */
export class SessionDraft {
  #base: SessionRecord;
  #token: StoreToken | undefined;
  #isNew: boolean;
  #variables: Attributes;
  #ownsVariables = false;
  #changes: Change[] = [];

  /** Where the store found the session, when it says (see `Loaded.source`). */
  readonly source: string | undefined;
  /** The last write's durable part while it is landing: a response waits for it. */
  landing: Promise<void> | undefined;

  constructor(base: SessionRecord, token: StoreToken | undefined, isNew: boolean, source?: string) {
    this.source = source;
    this.#base = base;
    this.#token = token;
    this.#isNew = isNew;
    this.#variables = base.variables;
  }

  /** A session not stored yet: version 0, so its first write is version 1. */
  static create(options: NewRecordOptions): SessionDraft {
    const record: SessionRecord = {
      id: options.id,
      created: options.now,
      accessed: options.now,
      timeout: options.timeoutSeconds,
      lifetime: options.lifetimeSeconds,
      version: 0,
      owner: options.owner,
      constants: structuredClone(options.constants ?? {}),
      variables: structuredClone(options.variables ?? {}),
    };
    return new SessionDraft(record, undefined, true);
  }

  /** The record this draft was loaded from or last wrote. */
  get base(): SessionRecord {
    return this.#base;
  }
  /** What a conditional write of this draft presents; undefined until first stored. */
  get token(): StoreToken | undefined {
    return this.#token;
  }
  get isNew(): boolean {
    return this.#isNew;
  }
  get changed(): boolean {
    return this.#changes.length > 0;
  }
  /** The variables with this request's changes (do not modify). */
  get variables(): Attributes {
    return this.#variables;
  }

  /** Whether the store must be written: new, changed, or unchanged for a quarter of its timeout. */
  due(now: number): boolean {
    return this.#isNew || this.#changes.length > 0 || refreshDue(this.#base, now);
  }

  change(key: string, apply: (current: Json | undefined) => Json | undefined): void {
    this.#changes.push({ key, apply });
    this.#apply(key, apply);
  }

  /** The record to write now: the changes applied, `accessed` = now, the next version. */
  next(now: number, id = this.#base.id): SessionRecord {
    // The record shares the variables: the draft copies them again before its next change.
    this.#ownsVariables = false;
    return { ...this.#base, id, accessed: now, version: this.#base.version + 1, variables: this.#variables };
  }

  /**
   * The store took `record`: it becomes the base, and the changes are done. `durable`: the
   * store's write to its durable tier, still landing (see `WriteResult`).
   */
  committed(record: SessionRecord, token: StoreToken, durable?: Promise<void>): void {
    this.#setBase(record, token);
    this.#changes = [];
    this.#isNew = false;
    if (!durable) return;
    this.landing = durable;
    const landed = (): void => {
      if (this.landing === durable) this.landing = undefined;
    };
    durable.then(landed, landed);
  }

  /** Another request wrote first: replay this request's changes on its record. */
  rebase(latest: SessionRecord, token: StoreToken): void {
    this.#setBase(latest, token);
    for (const change of this.#changes) this.#apply(change.key, change.apply);
  }

  #apply(key: string, apply: Change['apply']): void {
    const next = apply(this.#variables[key]);
    if (!this.#ownsVariables) {
      this.#variables = { ...this.#variables };
      this.#ownsVariables = true;
    }
    if (next === undefined) delete this.#variables[key];
    else this.#variables[key] = next;
  }

  #setBase(record: SessionRecord, token: StoreToken): void {
    this.#base = record;
    this.#token = token;
    this.#variables = record.variables;
    this.#ownsVariables = false;
  }
}
