/**
 * Retransmission timeout for one transfer, fed with the clock by the caller (pure). RFC 1350 leaves the
 * timer to the implementation; this one adapts to the measured round trip (RFC 6298 smoothing, Karn's rule:
 * no sample from a resent window) and doubles on each timeout in a row. When the client negotiated a
 * timeout (RFC 2349), that value is used as it is.
 */
import { LIMITS } from "../config.ts";

export interface TftpTiming {
  /** Timeout before the first round trip was measured. */
  initialMs: number;
  minMs: number;
  maxMs: number;
  /** Timeouts in a row before the transfer is given up. */
  retries: number;
  /**
   * The same before the client answered anything: a client that never acknowledged the OACK or DATA 1 is
   * gone, or was never there (a stray or forged RRQ); one that lost our answer sends its RRQ again.
   */
  firstRetries: number;
}

/**
 * Back-off doubles to 8 s: a client that only re-acknowledges after its own timeout (atftp 0.8 with
 * windowsize waits 5 s of silence) must get that silence, or neither side ever moves. Ten timeouts in a
 * row (about 40 s of silence) end the transfer; four, 7.5 s, when the client never answered at all
 * (the figures: LIMITS.tftp.timing).
 */
export const DEFAULT_TIMING: TftpTiming = LIMITS.tftp.timing;

export class Rto {
  readonly #timing: TftpTiming;
  readonly #fixed: boolean;
  #rto: number;
  #srtt = 0;
  #rttvar = 0;
  #sentAt = 0;
  #resent = false;
  #answered = false;
  /** When the current wait ends (same clock as the caller's `now`). */
  deadline = Infinity;
  /** Timeouts in a row. */
  timeouts = 0;

  constructor(timing: TftpTiming, negotiatedSeconds: number | undefined) {
    this.#timing = timing;
    this.#fixed = negotiatedSeconds !== undefined;
    this.#rto = negotiatedSeconds !== undefined ? negotiatedSeconds * 1000 : timing.initialMs;
  }

  get ms(): number {
    return this.#rto;
  }

  /** The client has acknowledged something. */
  get answered(): boolean {
    return this.#answered;
  }

  /** Something was sent at `now` (a resend when it follows a timeout). */
  sent(now: number, resend: boolean): void {
    this.#sentAt = now;
    this.#resent = resend;
    this.deadline = now + this.#rto;
  }

  /**
   * The client acknowledged something new. The back-off ends here: the next window waits the measured
   * round trip again, not the doubled timeout of the losses before (under steady loss nearly every window
   * has been resent once, and Karn's rule alone would leave the timer at its ceiling for good).
   */
  progress(now: number): void {
    this.timeouts = 0;
    this.#answered = true;
    if (this.#fixed) return;
    if (this.#resent) {
      this.#rto = this.#base();
      return;
    }
    const rtt = now - this.#sentAt;
    if (this.#srtt === 0) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    this.#rto = Math.min(this.#timing.maxMs, Math.max(this.#timing.minMs, this.#srtt + 4 * this.#rttvar));
  }

  /** The timeout the measurements give, without back-off. */
  #base(): number {
    if (this.#srtt === 0) return this.#timing.initialMs;
    return Math.min(this.#timing.maxMs, Math.max(this.#timing.minMs, this.#srtt + 4 * this.#rttvar));
  }

  /** The deadline passed: true when the caller should resend, false when it should give up. */
  expired(): boolean {
    this.timeouts++;
    if (this.timeouts > (this.#answered ? this.#timing.retries : Math.min(this.#timing.retries, this.#timing.firstRetries))) return false;
    if (!this.#fixed) this.#rto = Math.min(this.#timing.maxMs, this.#rto * 2);
    return true;
  }

  stop(): void {
    this.deadline = Infinity;
  }
}
