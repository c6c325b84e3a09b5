import type { SessionCache } from './cache.js';

/** How many IDs are remembered; forgetting the oldest only loses the fast path below. */
const MAX_IDS = 10_000;

/**
 * Sessions this instance wrote (or removed) in Datastore while the cache was unreachable.
 * The cache may still hold an older copy of them (a paused server comes back with its
 * contents), so before the cache is trusted with one again its copy is deleted, and the next
 * read takes Datastore's. Another instance's writes are caught by the version check of the
 * backup instead (`newer`), at the cost of one retry.
 */
export class StaleCopies {
  readonly #ids = new Set<string>();
  /** Deletions under way, shared by every request that needs one to finish. */
  readonly #dropping = new Map<string, Promise<void>>();

  note(id: string): void {
    this.#ids.delete(id);
    if (this.#ids.size >= MAX_IDS) this.#ids.delete(this.#ids.values().next().value ?? '');
    this.#ids.add(id);
  }

  /** Whether the cache copy of `id` may be stale: checked first, so the usual case awaits nothing. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Deletes the cache copy of `id` if it may be stale; throws if the cache is unreachable. */
  async drop(cache: SessionCache, id: string): Promise<void> {
    if (!this.#ids.has(id)) return;
    let dropping = this.#dropping.get(id);
    if (!dropping) {
      dropping = cache
        .delete(id)
        .then(() => void this.#ids.delete(id))
        .finally(() => this.#dropping.delete(id));
      this.#dropping.set(id, dropping);
    }
    await dropping;
  }
}
