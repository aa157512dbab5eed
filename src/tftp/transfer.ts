/**
 * One read transfer as a pure state machine: events (start, ACK, timeout) in, what to send out. No socket,
 * no clock, no file. Blocks are numbered from 1 without limit here; on the wire they wrap past 65535 to 0
 * (as tftp-hpa and dnsmasq do), and an ACK is mapped back to the only block in flight with that number.
 * Events return a step kind and leave the window to send in `from`/`to`: nothing is allocated per block,
 * which matters at a hundred thousand blocks a second.
 */

export interface TransferParams {
  size: number;
  blksize: number;
  /** RFC 7440: blocks sent before waiting for an ACK (1 = RFC 1350 lock-step). */
  windowsize: number;
  /** Options were acknowledged: the client answers the OACK with ACK 0 before any data. */
  oack: boolean;
}

export const Step = {
  /** A duplicate or stale ACK, or nothing to do: send nothing (no Sorcerer's Apprentice). */
  Ignore: 0,
  /** Send the OACK (again). */
  Oack: 1,
  /** Send blocks `from`..`to` (inclusive, absolute numbers). */
  Send: 2,
  /** The client acknowledged the last block. */
  Done: 3,
} as const;
export type Step = (typeof Step)[keyof typeof Step];

export class TransferState {
  readonly params: TransferParams;
  /** RFC 1350: the last block is the first one shorter than blksize (zero bytes when size divides evenly). */
  readonly totalBlocks: number;
  /** Highest block the client acknowledged (0 before any). */
  acked = 0;
  /** Highest block sent so far. */
  sent = 0;
  oackPending: boolean;
  /** The window of the last Send step. */
  from = 0;
  to = 0;

  constructor(params: TransferParams) {
    this.params = params;
    this.totalBlocks = Math.floor(params.size / params.blksize) + 1;
    this.oackPending = params.oack;
  }

  start(): Step {
    return this.oackPending ? Step.Oack : this.#window(1);
  }

  /** An ACK with its 16-bit block number from the wire. */
  ack(wire: number): Step {
    if (this.oackPending) {
      // RFC 2347: the client confirms the OACK with ACK 0; anything else is stale.
      if (wire !== 0) return Step.Ignore;
      this.oackPending = false;
      return this.#window(1);
    }
    const n = this.#unwrap(wire);
    if (n === 0) return Step.Ignore;
    this.acked = n;
    if (n >= this.totalBlocks) return Step.Done;
    // RFC 7440 §4: an ACK inside the window means the blocks after it were lost; start the next window there.
    return this.#window(n + 1);
  }

  /** Our timer ran out: resend from the last acknowledged block (RFC 7440 §4), or the OACK. */
  timeout(): Step {
    if (this.oackPending) return Step.Oack;
    if (this.acked >= this.totalBlocks) return Step.Done;
    return this.#window(this.acked + 1);
  }

  get done(): boolean {
    return this.acked >= this.totalBlocks;
  }

  /** Byte range of an absolute block. */
  blockRange(n: number): { offset: number; length: number } {
    const offset = (n - 1) * this.params.blksize;
    return { offset, length: Math.max(0, Math.min(this.params.blksize, this.params.size - offset)) };
  }

  // --- internal ---

  #window(from: number): Step {
    this.from = from;
    this.to = Math.min(from + this.params.windowsize - 1, this.totalBlocks);
    if (this.to > this.sent) this.sent = this.to;
    return Step.Send;
  }

  /** The block in (acked, sent] whose low 16 bits are `wire`; 0 for duplicates and strays. */
  #unwrap(wire: number): number {
    const lo = this.acked + 1;
    const hi = this.sent;
    if (hi < lo) return 0;
    // Candidates differ by 65536; the window is far smaller, so at most one fits.
    const n = lo - (lo & 0xffff) + wire;
    if (n >= lo && n <= hi) return n;
    const m = n + 0x10000;
    return m >= lo && m <= hi ? m : 0;
  }
}

/** Wire block number for an absolute block: wraps 65535 → 0. */
export function wireBlock(n: number): number {
  return n & 0xffff;
}
