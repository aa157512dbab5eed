/**
 * TFTP worker thread: every transfer handed to it runs in one epoll loop of direct system calls (bun:ffi):
 * epoll_wait, recv, sendmmsg, with the blocks sent straight from a read-only mapping of the image (or from bytes
 * handed over). No event-loop turn per block, which is what lock-step TFTP costs most in JavaScript.
 * The state machine is the same pure one the event-loop engine uses.
 */
import { ptr } from "bun:ffi";
import { C, EPOLL_DATA_AT, EPOLL_EVENT_SIZE, SIZEOF_IOVEC, SIZEOF_MMSGHDR, SIZEOF_SOCKADDR_IN, libc, writePtr, writeSockaddrIn } from "../net/libc.ts";
import { ErrorCode, Opcode } from "./constants.ts";
import type { FromWorker, ToWorker, WorkerStart } from "./ffi-protocol.ts";
import { refusalReason } from "./engine.ts";
import { Rto } from "./rto.ts";
import { Step, TransferState } from "./transfer.ts";

declare const self: { onmessage: ((e: MessageEvent<ToWorker>) => void) | null; postMessage(m: FromWorker): void };

const post = (m: FromWorker) => self.postMessage(m);
const transfers = new Map<number, WT>();
const maps = new Map<string, { base: number; size: number }>();
let wakeFd = -1;
let running = false;
let closing = false;
// Typed arrays go to libc as themselves (bun:ffi keeps them alive for the call); a pointer number is kept
// only into memory a live object owns (a transfer's arena, the mapped image). A number taken from a
// buffer nothing references any more points into freed memory: writing there corrupted the heap.
const scratch = new Uint8Array(new ArrayBuffer(64));

self.onmessage = (e) => {
  const m = e.data;
  // One wake-up byte was written for each message, before it was posted: take this message's one. A byte
  // still in the pipe means a message not delivered yet, and the loop below yields to the event loop for it
  // (draining them all here left later messages waiting behind epoll_wait() until every transfer ended).
  if (m.type === "init") wakeFd = m.wakeFd;
  if (wakeFd >= 0) libc.read(wakeFd, scratch, 1);
  try {
    if (m.type === "init") {
      post({ type: "ready" });
    } else if (m.type === "start") {
      try {
        const t = new WT(m);
        transfers.set(m.id, t);
        t.begin();
        post({ type: "started", id: m.id });
      } catch (err) {
        post({ type: "error", id: m.id, message: (err as Error).message });
      }
    } else if (m.type === "close") {
      closing = true;
      for (const t of transfers.values()) t.fail("server stopping");
      for (const [, mm] of maps) libc.munmap(mm.base as never, mm.size);
      maps.clear();
    }
  } finally {
    if (!running && transfers.size > 0) run();
  }
};

/** epoll set: the wake-up pipe (data 0) and every transfer's socket (data = transfer id). */
let epfd = -1;
const MAX_EVENTS = 64;
const events = new Uint8Array(new ArrayBuffer(EPOLL_EVENT_SIZE * MAX_EVENTS));
const eventsView = new DataView(events.buffer);
const ctlEvent = new Uint8Array(new ArrayBuffer(16));
const ctlView = new DataView(ctlEvent.buffer);
/** Retransmission deadlines are checked this often (RTOs are 10 ms and more), not on every packet. */
const SCAN_MS = 5;
/** Earliest deadline known: exact after a scan, lowered by every send in between. */
let soonest = Infinity;

function watch(fd: number, id: number): void {
  if (epfd < 0) {
    epfd = libc.epoll_create1(C.EPOLL_CLOEXEC);
    if (epfd < 0) throw new Error("epoll_create1 failed");
    watch(wakeFd, 0);
  }
  ctlView.setUint32(0, C.EPOLLIN, true);
  ctlView.setUint32(EPOLL_DATA_AT, id, true);
  ctlView.setUint32(EPOLL_DATA_AT + 4, 0, true);
  if (libc.epoll_ctl(epfd, C.EPOLL_CTL_ADD, fd, ctlEvent) !== 0) throw new Error("epoll_ctl failed");
}

/**
 * The loop: block in epoll_wait() until client packets, a wake-up from the main thread, or the next deadline
 * check. Work per wake-up is proportional to the packets that arrived, not to the number of transfers.
 */
/** How often the main thread hears how far each transfer is (the operator's progress bars). */
const PROGRESS_MS = 1000;
let nextProgress = 0;

function run(): void {
  running = true;
  let nextScan = 0;
  try {
    while (transfers.size > 0 && !closing) {
      let now = performance.now();
      if (now >= nextProgress) {
        nextProgress = now + PROGRESS_MS;
        post({ type: "progress", items: [...transfers.values()].map((t) => [t.id, t.acknowledged()]) });
      }
      if (now >= nextScan) {
        soonest = Infinity;
        for (const t of transfers.values()) {
          if (now >= t.rto.deadline) t.timedOut(now);
          if (!t.ended && t.rto.deadline < soonest) soonest = t.rto.deadline;
        }
        nextScan = now + SCAN_MS;
        if (transfers.size === 0) break;
      }
      // Sleep until the earliest deadline (checked again at the scan after it), at most a second.
      const wait = Math.max(0, Math.min(1000, Math.ceil(Math.max(soonest, nextScan) - now)));
      const n = libc.epoll_wait(epfd, events, MAX_EVENTS, wait);
      if (n <= 0) {
        nextScan = 0; // woke for a deadline: check now
        continue;
      }
      now = performance.now();
      let woken = false;
      for (let i = 0; i < n; i++) {
        const id = eventsView.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_AT, true);
        if (id === 0) woken = true;
        else transfers.get(id)?.readable(now);
      }
      if (woken) {
        // A message is on its way: let the event loop deliver it (its handler takes the byte and restarts
        // the loop; the timer covers any other order of events).
        setTimeout(() => !running && transfers.size > 0 && run(), 0);
        break;
      }
    }
  } finally {
    running = false;
  }
}

/** One transfer: its socket, its pre-built send structures, its state machine. */
class WT {
  readonly id: number;
  readonly fd: number;
  readonly rto: Rto;
  readonly #m: WorkerStart;
  readonly #state: TransferState;
  readonly #payload: number;
  readonly #keep: Uint8Array | undefined;
  readonly #arena: ArrayBuffer;
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  readonly #base: number;
  readonly #recvAt: number;
  readonly #hdrAt: number;
  readonly #iovAt: number;
  readonly #mmsgAt: number;
  readonly #oackAt: number;
  readonly #oackLen: number;
  readonly #started = performance.now();
  #retransmits = 0;
  ended = false;

  constructor(m: WorkerStart) {
    this.id = m.id;
    this.#m = m;
    this.#state = new TransferState({ size: m.size, blksize: m.blksize, windowsize: m.windowsize, oack: m.oack !== undefined });
    this.rto = new Rto(m.timing, m.timeout, m.oack !== undefined);

    // Where block bytes live: the mapped image, or the handed-over buffer (an ArrayBuffer never moves).
    if (m.source.kind === "file") {
      if (m.source.offset + m.size > m.source.fileSize) throw new Error("file window reaches past the end of the image");
      this.#payload = mapFile(m.source.path, m.source.fileSize) + m.source.offset;
      this.#keep = undefined;
    } else {
      this.#keep = new Uint8Array(m.source.buffer); // the shared bytes, referenced for as long as the transfer lives
      this.#payload = this.#keep.length ? ptr(this.#keep) : 0;
    }

    // Arena: sockaddr, receive buffer, headers, iovecs and mmsghdrs for one window, the OACK.
    const w = m.windowsize;
    this.#recvAt = 64;
    this.#hdrAt = this.#recvAt + 1024;
    this.#iovAt = align(this.#hdrAt + 4 * w, 16);
    this.#mmsgAt = align(this.#iovAt + 2 * SIZEOF_IOVEC * w, 16);
    this.#oackAt = this.#mmsgAt + SIZEOF_MMSGHDR * w;
    const oack = m.oack ? new Uint8Array(m.oack) : new Uint8Array(0);
    this.#oackLen = oack.length;
    this.#arena = new ArrayBuffer(this.#oackAt + oack.length + 8);
    this.#view = new DataView(this.#arena);
    this.#bytes = new Uint8Array(this.#arena);
    this.#base = ptr(this.#bytes);
    this.#bytes.set(oack, this.#oackAt);
    for (let k = 0; k < w; k++) {
      const hdr = this.#hdrAt + 4 * k;
      this.#bytes[hdr + 1] = Opcode.DATA;
      const iov = this.#iovAt + 2 * SIZEOF_IOVEC * k;
      writePtr(this.#view, iov, this.#base + hdr);
      writePtr(this.#view, iov + 8, 4);
      const mm = this.#mmsgAt + SIZEOF_MMSGHDR * k;
      writePtr(this.#view, mm + 16, this.#base + iov); // msg_iov
      writePtr(this.#view, mm + 24, 2); // msg_iovlen
    }

    const fd = libc.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error("socket() failed");
    this.fd = fd;
    writeSockaddrIn(this.#view, 0, m.host, 0);
    if (libc.bind(fd, this.#base, SIZEOF_SOCKADDR_IN) !== 0) {
      libc.close(fd);
      throw new Error(`bind to ${m.host} failed`);
    }
    writeSockaddrIn(this.#view, 0, m.client.address, m.client.port);
    if (libc.connect(fd, this.#base, SIZEOF_SOCKADDR_IN) !== 0) {
      libc.close(fd);
      throw new Error(`connect to ${m.client.address}:${m.client.port} failed`);
    }
    try {
      watch(fd, m.id);
    } catch (err) {
      libc.close(fd);
      throw err;
    }
  }

  /** Sends the first packet (OACK or DATA 1). */
  begin(): void {
    this.#do(this.#state.start(), performance.now(), false);
  }

  readable(now: number): void {
    // One datagram per readiness; poll reports the socket again if more are queued.
    const r = libc.recv(this.fd, this.#base + this.#recvAt, 1024, C.MSG_DONTWAIT);
    if (r < 4 || this.ended) return;
    const b = this.#bytes;
    const at = this.#recvAt;
    const op = (b[at]! << 8) | b[at + 1]!;
    if (op === Opcode.ACK) {
      const before = this.#state.acked;
      const pendingOack = this.#state.oackPending;
      const step = this.#state.ack((b[at + 2]! << 8) | b[at + 3]!);
      if (step === Step.Ignore) return;
      if (this.#state.acked > before || (pendingOack && !this.#state.oackPending)) this.rto.progress(now);
      this.#do(step, now, false);
    } else if (op === Opcode.ERROR) {
      const code = (b[at + 2]! << 8) | b[at + 3]!;
      let msg = "";
      for (let i = at + 4; i < at + r && b[i] !== 0; i++) msg += String.fromCharCode(b[i]!);
      const refused = code === ErrorCode.OptionRefused && this.#state.oackPending;
      const probe = refused && this.#m.sizeQuery;
      this.#end(refused ? "refused" : "failed", refused ? refusalReason(probe, msg) : `client sent error ${code}: ${msg}`, probe);
    }
    // anything else from the client is dropped; the transfer goes on
  }

  timedOut(now: number): void {
    if (!this.rto.expired()) {
      if (this.#state.sent >= this.#state.totalBlocks && this.#state.totalBlocks - this.#state.acked <= this.#m.windowsize) {
        return this.#end("sent", "final ACK not received");
      }
      return this.fail(this.rto.answered ? `timed out after ${this.#m.timing.retries} retries` : `no answer from the client after ${this.rto.timeouts - 1} retries`);
    }
    const step = this.#state.timeout();
    this.#retransmits += step === Step.Send ? this.#state.to - this.#state.from + 1 : 1;
    this.#do(step, now, true);
  }

  fail(reason: string): void {
    if (this.ended) return;
    const msg = new TextEncoder().encode(reason.slice(0, 200));
    const pkt = new Uint8Array(new ArrayBuffer(msg.length + 5));
    pkt[1] = Opcode.ERROR;
    pkt.set(msg, 4);
    libc.send(this.fd, pkt, pkt.length, C.MSG_DONTWAIT);
    this.#end("failed", reason);
  }

  // --- internal ---

  #do(step: Step, now: number, resend: boolean): void {
    if (this.ended) return;
    if (step === Step.Done) return this.#end("sent", undefined);
    if (step === Step.Ignore) return;
    // An OACK the kernel did not take (a full buffer) never reached the client: resend it on the short timer.
    let delivered = true;
    if (step === Step.Oack) delivered = Number(libc.send(this.fd, this.#base + this.#oackAt, this.#oackLen, C.MSG_DONTWAIT)) === this.#oackLen;
    else this.#sendWindow(this.#state.from, this.#state.to);
    this.rto.sent(now, resend, delivered);
    if (this.rto.deadline < soonest) soonest = this.rto.deadline;
  }

  #sendWindow(from: number, to: number): void {
    const v = this.#view;
    const bs = this.#m.blksize;
    const size = this.#m.size;
    let k = 0;
    for (let n = from; n <= to; n++, k++) {
      const offset = (n - 1) * bs;
      const len = Math.max(0, Math.min(bs, size - offset));
      const hdr = this.#hdrAt + 4 * k;
      this.#bytes[hdr + 2] = (n >>> 8) & 0xff;
      this.#bytes[hdr + 3] = n & 0xff;
      const iov = this.#iovAt + 2 * SIZEOF_IOVEC * k + SIZEOF_IOVEC;
      writePtr(v, iov, this.#payload + offset);
      v.setUint32(iov + 8, len, true);
    }
    // A full kernel buffer sends fewer (or none): the missing blocks count as lost and the timer resends them.
    // struct mmsghdr starts with a struct msghdr: one block goes out by sendmsg, a window by sendmmsg.
    if (k === 1) libc.sendmsg(this.fd, this.#base + this.#mmsgAt, 0);
    else libc.sendmmsg(this.fd, this.#base + this.#mmsgAt, k, 0);
  }

  acknowledged(): number {
    return Math.min(this.#m.size, this.#state.acked * this.#m.blksize);
  }

  #end(outcome: "sent" | "failed" | "refused", reason: string | undefined, sizeProbe = false): void {
    if (this.ended) return;
    this.ended = true;
    this.rto.stop();
    libc.close(this.fd);
    transfers.delete(this.id);
    if (this.#keep) this.#keep[0] = this.#keep[0]!; // the bytes stay referenced until the socket is closed
    const m = this.#m;
    post({
      type: "end",
      id: m.id,
      event: {
        client: `${m.client.address}:${m.client.port}`,
        file: m.file,
        outcome,
        reason,
        sizeProbe,
        bytes: outcome === "sent" ? m.size : Math.min(m.size, this.#state.acked * m.blksize),
        blksize: m.blksize,
        windowsize: m.windowsize,
        seconds: (performance.now() - this.#started) / 1000,
        retransmits: this.#retransmits,
        mac: m.mac,
        engine: "worker",
      },
    });
  }
}

/** Maps a whole image read-only, once per path. The kernel copies from it on send; JS never reads it. */
function mapFile(path: string, size: number): number {
  const hit = maps.get(path);
  if (hit && hit.size === size) return hit.base;
  const name = new TextEncoder().encode(path + "\0");
  const buf = new Uint8Array(new ArrayBuffer(name.length));
  buf.set(name);
  const fd = libc.open(buf, C.O_RDONLY | C.O_CLOEXEC);
  if (fd < 0) throw new Error(`cannot open ${path}`);
  const base = libc.mmap(null, Math.max(1, size), C.PROT_READ, C.MAP_SHARED, fd, 0) as unknown as number;
  libc.close(fd);
  if (!base || base < 0 || base >= 2 ** 52) throw new Error(`cannot map ${path}`);
  maps.set(path, { base, size });
  return base;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

