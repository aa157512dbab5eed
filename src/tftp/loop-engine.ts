/**
 * Event-loop transfer engine: one connected UDP socket per transfer, driven by the pure state machine with a
 * lazily re-armed timer. Runs on Bun and Node; blocks come from the whole file in memory or from read-ahead
 * chunks (bounded per transfer).
 */
import { openUdp, UdpSendError, type UdpSocket } from "../net/udp.ts";
import { ErrorCode, Opcode } from "./constants.ts";
import { refusalReason, type TransferEngine, type TransferEvent, type TransferSpec } from "./engine.ts";
import { decodeTftpPacket, encodeTftpPacket, errorPacket } from "./packet.ts";
import { Rto } from "./rto.ts";
import { Step, TransferState, wireBlock } from "./transfer.ts";

/** `open` is the socket factory (tests hand in sockets whose sends fail). */
export function createLoopEngine(runtime?: "bun" | "node", open: typeof openUdp = openUdp): TransferEngine {
  const live = new Set<LoopTransfer>();
  return {
    name: "event-loop",
    get active() {
      return live.size;
    },
    progress: () => [...live].map((t) => t.progress()),
    async start(spec, onEnd) {
      let t: LoopTransfer | undefined;
      // Connected to the client: the kernel keeps other senders out (RFC 1350 §4's "unknown TID" never
      // reaches the transfer) and each send skips the route lookup.
      const sock = await open({
        address: spec.host,
        port: 0,
        service: "TFTP",
        runtime,
        connect: { address: spec.client.address, port: spec.client.port },
        onMessage: (d, a, p) => t?.onPacket(d, a, p),
        onDrain: () => t?.onDrain(),
        onHandlerError: (err) => t?.abort(`internal error: ${(err as Error).message}`),
        // An ICMP "port unreachable" for the client's port: it went away.
        onSocketError: (err) => t?.gone(err.code === "ECONNREFUSED" ? "the client's port is closed (ICMP port unreachable)" : `socket error: ${err.message}`),
      });
      const transfer = new LoopTransfer(spec, sock, (e) => {
        live.delete(transfer);
        onEnd(e);
      });
      t = transfer;
      live.add(transfer);
      transfer.start();
    },
    async close() {
      for (const t of live) t.abort("server stopping");
    },
  };
}

class LoopTransfer {
  readonly #spec: TransferSpec;
  readonly #sock: UdpSocket;
  readonly #onEnd: (e: TransferEvent) => void;
  readonly #state: TransferState;
  readonly #rto: Rto;
  readonly #started = performance.now();
  #retransmits = 0;
  #ended = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // Data: the whole file in memory, or read-ahead chunks.
  readonly #whole: Uint8Array | undefined;
  #chunks = new Map<number, Promise<Uint8Array>>();
  readonly #chunkSize: number;
  /** A window waiting for its bytes to be read: [from, to], or undefined. */
  #wanted: [number, number] | undefined;
  #busy = false;
  /** DATA packet buffers, one per window slot, reused: the runtime copies a datagram into the kernel on send. */
  #pool: Uint8Array[] = [];
  #unsent: Uint8Array[] = [];

  constructor(spec: TransferSpec, sock: UdpSocket, onEnd: (e: TransferEvent) => void) {
    this.#spec = spec;
    this.#sock = sock;
    this.#onEnd = onEnd;
    const g = spec.granted;
    this.#state = new TransferState({ size: spec.data.size, blksize: g.blksize, windowsize: g.windowsize, oack: g.oack.size > 0 });
    this.#rto = new Rto(spec.timing, g.timeout, g.oack.size > 0);
    this.#whole = spec.bytes;
    this.#chunkSize = Math.max(128 * 1024, g.blksize * g.windowsize * 2);
  }

  start(): void {
    this.#do(this.#state.start());
  }

  progress(): { spec: TransferSpec; bytes: number } {
    return { spec: this.#spec, bytes: Math.min(this.#spec.data.size, this.#state.acked * this.#spec.granted.blksize) };
  }

  onPacket(data: Uint8Array, address: string, port: number): void {
    if (this.#ended) return;
    // The socket is connected to the client; this only guards a runtime that would not filter.
    if (port !== this.#spec.client.port || address !== this.#spec.client.address) return;
    // Fast path: an ACK is 4 bytes, opcode 4.
    if (data.length >= 4 && data[0] === 0 && data[1] === Opcode.ACK) {
      const before = this.#state.acked;
      const pendingOack = this.#state.oackPending;
      const step = this.#state.ack((data[2]! << 8) | data[3]!);
      if (step === Step.Ignore) return;
      if (this.#state.acked > before || (pendingOack && !this.#state.oackPending)) this.#rto.progress(performance.now());
      this.#do(step);
      return;
    }
    let pkt;
    try {
      pkt = decodeTftpPacket(data);
    } catch {
      return; // malformed: dropped, the transfer goes on
    }
    if (pkt.op === Opcode.ERROR) {
      const refused = pkt.code === ErrorCode.OptionRefused && this.#state.oackPending;
      const probe = refused && this.#spec.granted.oack.has("tsize");
      this.#end(refused ? "refused" : "failed", refused ? refusalReason(probe, pkt.message) : `client sent error ${pkt.code}: ${pkt.message}`, probe);
    }
  }

  /** The kernel buffer has room again: send what a full buffer held back. */
  onDrain(): void {
    const rest = this.#unsent;
    this.#unsent = [];
    if (rest.length && !this.#ended) this.#sendPackets(rest);
  }

  abort(reason: string): void {
    this.#fail(reason);
  }

  /** The client cannot be reached: end without sending it anything. */
  gone(reason: string): void {
    this.#end("failed", reason);
  }

  // --- internal ---

  #do(step: Step, resend = false): void {
    if (this.#ended) return;
    switch (step) {
      case Step.Ignore:
        return;
      case Step.Done:
        return this.#end("sent", undefined);
      case Step.Oack:
      {
        let delivered = false;
        if (!this.#send(() => (delivered = this.#sock.send(encodeTftpPacket({ op: Opcode.OACK, options: this.#spec.granted.oack }), this.#spec.client.port, this.#spec.client.address)))) return;
        this.#armed(resend, delivered);
        return;
      }
      case Step.Send:
        return this.#sendWindow(this.#state.from, this.#state.to, resend);
    }
  }

  #sendWindow(from: number, to: number, resend: boolean): void {
    if (this.#busy) {
      this.#wanted = [from, to];
      return;
    }
    const packets = this.#packets(from, to);
    if (packets) {
      this.#unsent = [];
      this.#sendPackets(packets);
      this.#armed(resend);
      this.#prefetch(to + 1);
      return;
    }
    // Data not read yet: wait for it, keep only the latest wish.
    this.#busy = true;
    this.#wanted = [from, to];
    const bs = this.#state.params.blksize;
    this.#load((from - 1) * bs, Math.min(this.#state.params.size, to * bs)).then(
      () => {
        this.#busy = false;
        const w = this.#wanted;
        this.#wanted = undefined;
        if (w && !this.#ended) this.#sendWindow(w[0], w[1], resend);
      },
      (err) => this.#fail(`read failed: ${(err as Error).message}`),
    );
  }

  #sendPackets(packets: Uint8Array[]): void {
    const { port, address } = this.#spec.client;
    let n = 0;
    if (!this.#send(() => (n = packets.length === 1 ? (this.#sock.send(packets[0]!, port, address) ? 1 : 0) : this.#sock.sendMany(packets, port, address)))) return;
    if (n < packets.length) this.#unsent = packets.slice(Math.max(0, n));
  }

  /** A send the kernel refuses for good (EMSGSIZE…) ends this transfer, and only this one. */
  #send(fn: () => unknown): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      if (!(err instanceof UdpSendError)) throw err;
      this.#end("failed", `send failed: ${err.code} (${err.message})`);
      return false;
    }
  }

  /** Arms the retransmission timer: one setTimeout re-armed lazily against the deadline (no clear/set per block). */
  #armed(resend: boolean, delivered = true): void {
    this.#rto.sent(performance.now(), resend, delivered);
    if (!this.#timer) this.#timer = setTimeout(() => this.#onTimer(), this.#rto.ms);
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#ended) return;
    const now = performance.now();
    if (now < this.#rto.deadline || this.#busy) {
      this.#timer = setTimeout(() => this.#onTimer(), Math.max(1, Math.min(this.#rto.deadline - now, this.#rto.ms)));
      return;
    }
    if (!this.#rto.expired()) {
      // Everything went out and only the final ACK is missing: the client has the file.
      if (this.#state.sent >= this.#state.totalBlocks && this.#state.totalBlocks - this.#state.acked <= this.#state.params.windowsize) {
        return this.#end("sent", "final ACK not received");
      }
      return this.#fail(this.#rto.answered ? `timed out after ${this.#spec.timing.retries} retries` : `no answer from the client after ${this.#rto.timeouts - 1} retries`);
    }
    const step = this.#state.timeout();
    this.#retransmits += step === Step.Send ? this.#state.to - this.#state.from + 1 : 1;
    this.#do(step, true);
  }

  #packets(from: number, to: number): Uint8Array[] | undefined {
    const out: Uint8Array[] = [];
    const blksize = this.#state.params.blksize;
    const size = this.#state.params.size;
    for (let n = from, slot = 0; n <= to; n++, slot++) {
      const offset = (n - 1) * blksize;
      const length = Math.max(0, Math.min(blksize, size - offset));
      const payload = this.#bytes(offset, length);
      if (!payload) return undefined;
      let buf = this.#pool[slot];
      if (!buf) {
        buf = new Uint8Array(4 + blksize);
        buf[1] = Opcode.DATA;
        this.#pool[slot] = buf;
      }
      const wire = wireBlock(n);
      buf[2] = wire >>> 8;
      buf[3] = wire & 0xff;
      buf.set(payload, 4);
      out.push(length === blksize ? buf : buf.subarray(0, 4 + length));
    }
    return out;
  }

  #bytes(offset: number, length: number): Uint8Array | undefined {
    if (length === 0) return new Uint8Array(0);
    if (this.#whole) return this.#whole.subarray(offset, offset + length);
    const cs = this.#chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    if (first === last) {
      const ready = (this.#chunks.get(first) as { resolved?: Uint8Array } | undefined)?.resolved;
      return ready?.subarray(offset - first * cs, offset - first * cs + length);
    }
    const out = new Uint8Array(length);
    for (let c = first, o = 0; c <= last; c++) {
      const ready = (this.#chunks.get(c) as { resolved?: Uint8Array } | undefined)?.resolved;
      if (!ready) return undefined;
      const start = Math.max(offset, c * cs) - c * cs;
      const end = Math.min(offset + length, (c + 1) * cs) - c * cs;
      out.set(ready.subarray(start, end), o);
      o += end - start;
    }
    return out;
  }

  /** Loads the chunks covering [start, end) and forgets chunks behind them (memory stays bounded). */
  async #load(start: number, end: number): Promise<void> {
    const cs = this.#chunkSize;
    const first = Math.floor(start / cs);
    const last = Math.floor(Math.max(start, end - 1) / cs);
    for (const c of [...this.#chunks.keys()]) if (c < first - 1) this.#chunks.delete(c);
    const waits: Promise<Uint8Array>[] = [];
    for (let c = first; c <= last; c++) waits.push(this.#chunk(c));
    await Promise.all(waits);
  }

  #chunk(c: number): Promise<Uint8Array> {
    let p = this.#chunks.get(c);
    if (!p) {
      const offset = c * this.#chunkSize;
      const length = Math.min(this.#chunkSize, this.#spec.data.size - offset);
      const tagged: Promise<Uint8Array> & { resolved?: Uint8Array } = this.#spec.data.read(offset, length).then((b) => {
        tagged.resolved = b;
        return b;
      });
      p = tagged;
      this.#chunks.set(c, p);
      p.catch(() => this.#chunks.delete(c));
    }
    return p;
  }

  /** Starts reading the chunk the next windows need before the client asks for them. */
  #prefetch(nextBlock: number): void {
    if (this.#whole || nextBlock > this.#state.totalBlocks) return;
    const offset = (nextBlock - 1) * this.#state.params.blksize;
    const c = Math.floor((offset + this.#chunkSize / 2) / this.#chunkSize);
    if (!this.#chunks.has(c) && c * this.#chunkSize < this.#spec.data.size) {
      this.#chunk(c).catch(() => {});
      for (const k of [...this.#chunks.keys()]) if (k < c - 2) this.#chunks.delete(k);
    }
  }

  #fail(reason: string): void {
    if (this.#ended) return;
    try {
      this.#sock.send(errorPacket(ErrorCode.Undefined, reason.startsWith("read failed") ? "read error" : reason), this.#spec.client.port, this.#spec.client.address);
    } catch {
      // The client is told if the kernel lets us; the transfer ends either way.
    }
    this.#end("failed", reason);
  }

  #end(outcome: TransferEvent["outcome"], reason: string | undefined, sizeProbe = false): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    // Let the last packets leave before the socket goes.
    setTimeout(() => this.#sock.close(), 50);
    const g = this.#spec.granted;
    this.#onEnd({
      client: `${this.#spec.client.address}:${this.#spec.client.port}`,
      file: this.#spec.file,
      outcome,
      reason,
      sizeProbe,
      bytes: outcome === "sent" ? this.#spec.data.size : Math.min(this.#spec.data.size, this.#state.acked * g.blksize),
      blksize: g.blksize,
      windowsize: g.windowsize,
      seconds: (performance.now() - this.#started) / 1000,
      retransmits: this.#retransmits,
      mac: this.#spec.mac,
      engine: "event-loop",
    });
  }
}
