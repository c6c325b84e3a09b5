import type { LogFields, Logger } from '../session/logger.js';
import { StoreUnavailableError } from '../session/store.js';

export interface CircuitBreakerOptions {
  /** The backend's name in log lines and errors ("memcache", "Valkey", "Datastore"). */
  backend: string;
  /** After a failure, how long calls fail at once instead of each waiting (ms, default 3000). */
  openMs?: number | undefined;
  logger: Logger;
  /** The clock (epoch ms), for tests. */
  now?: (() => number) | undefined;
  /** Called when the backend answers again after an outage. */
  onRecovered?: (() => void) | undefined;
}

/**
 * One backend's health. After a failure the breaker opens: calls fail at once for a short
 * window, so a hung server costs one bounded wait per window rather than one per request.
 * An outage is logged once when it starts and once when it ends, not once per call.
 */
export class CircuitBreaker {
  readonly #backend: string;
  readonly #openMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #onRecovered: (() => void) | undefined;
  #down = false;
  #openUntil = 0;

  constructor(options: CircuitBreakerOptions) {
    this.#backend = options.backend;
    this.#openMs = options.openMs ?? 3000;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#onRecovered = options.onRecovered;
  }

  /** False within the window after a failure. */
  get closed(): boolean {
    return !this.#down || this.#now() >= this.#openUntil;
  }

  /** Throws StoreUnavailableError while within the window after a failure. */
  check(): void {
    if (!this.closed) {
      throw new StoreUnavailableError(`${this.#backend} unavailable (recent failure; retrying shortly)`);
    }
  }

  /** A call failed: opens (or extends) the window; logs only the first failure of an outage. */
  failed(message: string, fields: LogFields = {}): void {
    if (!this.#down) this.#logger.warn(`${this.#backend} unavailable`, { ...fields, error: message });
    this.#down = true;
    this.#openUntil = this.#now() + this.#openMs;
  }

  /** A call succeeded: ends an outage, if there was one. */
  succeeded(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#logger.info(`${this.#backend} reachable again`);
    this.#onRecovered?.();
  }
}
