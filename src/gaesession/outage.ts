import type { LogFields, Logger } from '../session/logger.js';
import { StoreUnavailableError } from '../session/store.js';

export interface OutageOptions {
  /** The backend's name in log lines and errors ("memcache", "Datastore"). */
  backend: string;
  /** After a failure, how long calls fail at once instead of each waiting (ms, default 3000). */
  retryAfterMs?: number | undefined;
  logger: Logger;
  /** Called when the backend answers again after an outage. */
  onRecovered?: (() => void) | undefined;
}

/**
 * One backend's health, as both tiers track it. After a failure, calls fail at once for a
 * short window, so a hung server costs one bounded wait per window rather than one per
 * request; an outage is logged once when it starts and once when it ends, not per call.
 */
export class Outage {
  readonly #backend: string;
  readonly #retryAfterMs: number;
  readonly #logger: Logger;
  readonly #onRecovered: (() => void) | undefined;
  #down = false;
  #downUntil = 0;

  constructor(options: OutageOptions) {
    this.#backend = options.backend;
    this.#retryAfterMs = options.retryAfterMs ?? 3000;
    this.#logger = options.logger;
    this.#onRecovered = options.onRecovered;
  }

  /** False within the window after a failure. */
  get available(): boolean {
    return !this.#down || Date.now() >= this.#downUntil;
  }

  /** Throws while within the window after a failure. */
  check(): void {
    if (!this.available) {
      throw new StoreUnavailableError(`${this.#backend} unavailable (recent failure; retrying shortly)`);
    }
  }

  /** A call failed: opens (or extends) the window; logs only the first failure of an outage. */
  failed(message: string, fields: LogFields = {}): void {
    if (!this.#down) this.#logger.warn(`${this.#backend} unavailable`, { ...fields, error: message });
    this.#down = true;
    this.#downUntil = Date.now() + this.#retryAfterMs;
  }

  /** A call succeeded: ends an outage, if there was one. */
  succeeded(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#logger.info(`${this.#backend} reachable again`);
    this.#onRecovered?.();
  }
}
