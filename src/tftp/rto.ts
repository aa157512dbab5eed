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
  /** The first wait for ACK 0 after an OACK, when the client negotiated no timeout. */
  oackMs: number;
  /** With a negotiated timeout: the first wait for ACK 0 is twice that timeout plus this. */
  oackSlackMs: number;
}

/**
 * Back-off doubles to 8 s: a client that only re-acknowledges after its own timeout (atftp 0.8 with
 * windowsize waits 5 s of silence) must get that silence, or neither side ever moves. Ten timeouts in a
 * row (about 40 s of silence) end the transfer; three when the client never answered at all (3.5 s, or
 * 44 s after an OACK; the figures: LIMITS.tftp.timing).
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
  /** The wait for ACK 0 while the OACK is unanswered (grows with each resend, as #rto does). */
  #oackWait: number | undefined;
  /** When the current wait ends (same clock as the caller's `now`). */
  deadline = Infinity;
  /** Timeouts in a row. */
  timeouts = 0;

  /**
   * `oack`: the transfer opens with an OACK. Until the client acknowledges it, the wait is two of the
   * client's own timers: a client whose ACK 0 was lost sends it again itself, and one that never got the
   * OACK sends its RRQ again; a second OACK is what some clients cannot take (atftp aborts).
   */
  constructor(timing: TftpTiming, negotiatedSeconds: number | undefined, oack = false) {
    this.#timing = timing;
    this.#fixed = negotiatedSeconds !== undefined;
    this.#rto = negotiatedSeconds !== undefined ? negotiatedSeconds * 1000 : timing.initialMs;
    if (oack) this.#oackWait = negotiatedSeconds !== undefined ? 2 * negotiatedSeconds * 1000 + timing.oackSlackMs : timing.oackMs;
  }

  get ms(): number {
    return this.#rto;
  }

  /** The client has acknowledged something. */
  get answered(): boolean {
    return this.#answered;
  }

  /**
   * Something was sent at `now` (a resend when it follows a timeout). `delivered` false: the kernel did not
   * take it (ENOBUFS), so the client cannot have it and the short timer applies even to an OACK.
   */
  sent(now: number, resend: boolean, delivered = true): void {
    this.#sentAt = now;
    this.#resent = resend;
    this.deadline = now + (this.#oackWait !== undefined && !this.#answered && delivered ? this.#oackWait : this.#rto);
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
    if (this.#oackWait !== undefined && !this.#answered) this.#oackWait = Math.max(this.#oackWait, Math.min(this.#timing.maxMs, this.#oackWait * 2));
    return true;
  }

  stop(): void {
    this.deadline = Infinity;
  }
}
