/**
 * Per-MAC answer rate limit: a token bucket per client, so one client stuck in a DISCOVER loop gets a few
 * answers a second and everyone else keeps theirs. Firmware, iPXE and the installer together send a few
 * packets a second at most (DISCOVER, REQUEST, port 4011, BSDP LIST/SELECT, retransmissions), far below
 * the burst. Pure, with an injected clock; the bucket table is bounded (idle buckets are full anyway, so
 * the oldest is dropped first).
 */
import { LIMITS } from "../config.ts";
export interface RateLimitOptions {
  /** Answers a client may have at once. */
  burst: number;
  /** Answers a second after the burst. */
  perSecond: number;
  /** Clients tracked at most (a flood of made-up MACs cannot grow the table past it). */
  maxClients: number;
}

export const DHCP_RATE: RateLimitOptions = LIMITS.dhcp.rate;

export class RateLimiter {
  readonly #opts: RateLimitOptions;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(opts: RateLimitOptions = DHCP_RATE, now: () => number = Date.now) {
    this.#opts = opts;
    this.#now = now;
  }

  /** True when `key` may be answered now (and one answer is counted). */
  take(key: string): boolean {
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.#opts.burst, b.tokens + ((now - b.at) / 1000) * this.#opts.perSecond);
      b.at = now;
      // Most recently used last: the first key is the one idle longest.
      this.#buckets.delete(key);
    } else {
      b = { tokens: this.#opts.burst, at: now };
      if (this.#buckets.size >= this.#opts.maxClients) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.#buckets.size;
  }
}
