/**
 * A TFTP client that asks as UEFI firmware does (edk2 Mtftp4, the transport under ESXi's mboot.efi over
 * PXE): a size query first (RRQ with tsize=0 and blksize, cancelled with error 8 once the OACK says the
 * size), then the read (tsize, blksize, windowsize 4), acknowledging the last block of every window. The
 * file name goes out exactly as given. Used by the mboot walk (demo/mboot.ts) and the tests.
 */
import { PeerError } from "../errors.ts";
import { openUdp, type UdpSocket } from "../net/udp.ts";
import { ErrorCode, Opcode } from "./constants.ts";
import { decodeTftpPacket, encodeTftpPacket, type TftpPacket } from "./packet.ts";

export interface TftpClientOptions {
  server: string;
  port?: number;
  /** Requested blksize (mboot: 1468, or boot.cfg's tftpblksize=). */
  blksize?: number;
  /** Requested windowsize (edk2 asks for 4). */
  windowsize?: number;
  /** Per-packet wait before a retransmission, and how many in a row before giving up. */
  timeoutMs?: number;
  retries?: number;
  runtime?: "bun" | "node";
  /** Local address to send from (a machine's own address when many are simulated from one host). */
  bind?: string;
}

export class TftpClientError extends PeerError {
  /** The TFTP error code the server sent, when it sent one. */
  readonly tftpCode: number | undefined;
  constructor(message: string, tftpCode: number | undefined) {
    super("E_TFTP_PEER", message);
    this.tftpCode = tftpCode;
  }
}

export interface TftpReadResult {
  bytes: Uint8Array;
  /** What the server granted (absent: it sent DATA 1 without an OACK). */
  oack: Map<string, string> | undefined;
  /** Milliseconds from the read request to the server's first answer (OACK or DATA 1), and to DATA 1. */
  firstAnswerMs: number;
  firstDataMs: number;
}

/** The size the server reports for `name` (tsize in its OACK). */
export async function tftpSize(name: string, opts: TftpClientOptions): Promise<number> {
  const options = new Map([["tsize", "0"], ["blksize", String(opts.blksize ?? 1468)]]);
  return withSocket(opts, async (io) => {
    const first = await io.request(name, options);
    if (first.pkt.op === Opcode.OACK) {
      io.sendTo(first.from, { op: Opcode.ERROR, code: ErrorCode.OptionRefused, message: "size query only" });
      const t = first.pkt.options.get("tsize");
      if (t === undefined || !/^\d+$/.test(t)) throw new TftpClientError(`${name}: the server's OACK has no tsize`, undefined);
      return Number(t);
    }
    throw new TftpClientError(`${name}: the server answered the size query without an OACK (no tsize support)`, undefined);
  });
}

/** The whole file, read with blksize and windowsize as asked; checks the OACK's tsize against the bytes. */
export async function tftpRead(name: string, opts: TftpClientOptions): Promise<TftpReadResult> {
  const options = new Map([["tsize", "0"], ["blksize", String(opts.blksize ?? 1468)], ["windowsize", String(opts.windowsize ?? 4)]]);
  return withSocket(opts, async (io) => {
    const t0 = performance.now();
    const first = await io.request(name, options);
    const firstAnswerMs = performance.now() - t0;
    let firstDataMs = first.pkt.op === Opcode.DATA ? firstAnswerMs : -1;
    const peer = first.from;
    let blksize = 512;
    let windowsize = 1;
    let oack: Map<string, string> | undefined;
    const chunks: Uint8Array[] = [];
    let total = 0;
    let expected = 1;
    let pending: TftpPacket | undefined = first.pkt;
    if (first.pkt.op === Opcode.OACK) {
      oack = first.pkt.options;
      blksize = Number(oack.get("blksize") ?? 512);
      windowsize = Number(oack.get("windowsize") ?? 1);
      pending = undefined;
      io.sendTo(peer, { op: Opcode.ACK, block: 0 });
    }
    let inWindow = 0;
    for (;;) {
      const pkt = pending ?? (await io.next(peer, () => io.sendTo(peer, { op: Opcode.ACK, block: (expected - 1) & 0xffff })));
      pending = undefined;
      if (pkt.op === Opcode.ERROR) throw new TftpClientError(`${name}: error ${pkt.code} ${pkt.message}`, pkt.code);
      if (pkt.op !== Opcode.DATA) continue;
      if (pkt.block !== (expected & 0xffff)) {
        // A gap or a stale block: re-acknowledge what we have, the server resends from there (RFC 7440 §4).
        if (pkt.block !== ((expected - 1) & 0xffff)) io.sendTo(peer, { op: Opcode.ACK, block: (expected - 1) & 0xffff });
        inWindow = 0;
        continue;
      }
      if (firstDataMs < 0) firstDataMs = performance.now() - t0;
      chunks.push(pkt.data);
      total += pkt.data.length;
      expected++;
      inWindow++;
      const last = pkt.data.length < blksize;
      if (last || inWindow >= windowsize) {
        io.sendTo(peer, { op: Opcode.ACK, block: pkt.block });
        inWindow = 0;
      }
      if (last) break;
    }
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      bytes.set(c, o);
      o += c.length;
    }
    const tsize = oack?.get("tsize");
    if (tsize !== undefined && Number(tsize) !== total) throw new TftpClientError(`${name}: the OACK said tsize ${tsize}, the transfer had ${total} bytes`, undefined);
    return { bytes, oack, firstAnswerMs, firstDataMs };
  });
}

// --- internal ---

interface Io {
  request(name: string, options: Map<string, string>): Promise<{ pkt: TftpPacket; from: { address: string; port: number } }>;
  next(peer: { address: string; port: number }, onTimeout: () => void): Promise<TftpPacket>;
  sendTo(peer: { address: string; port: number }, pkt: TftpPacket): void;
}

async function withSocket<T>(opts: TftpClientOptions, fn: (io: Io) => Promise<T>): Promise<T> {
  const queue: Array<{ data: Uint8Array; address: string; port: number }> = [];
  let wake: (() => void) | undefined;
  const sock: UdpSocket = await openUdp({
    address: opts.bind ?? "0.0.0.0",
    port: 0,
    service: "TFTP client",
    runtime: opts.runtime,
    onMessage: (data, address, port) => {
      queue.push({ data: new Uint8Array(data), address, port });
      wake?.();
    },
  });
  const timeoutMs = opts.timeoutMs ?? 1000;
  const retries = opts.retries ?? 6;
  const wait = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (queue.length) return resolve(true);
      const t = setTimeout(() => {
        wake = undefined;
        resolve(false);
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve(true);
      };
    });
  const server = { address: opts.server, port: opts.port ?? 69 };
  const io: Io = {
    sendTo(peer, pkt) {
      sock.send(encodeTftpPacket(pkt), peer.port, peer.address);
    },
    async request(name, options) {
      const rrq = encodeTftpPacket({ op: Opcode.RRQ, filename: name, mode: "octet", options });
      for (let i = 0; i <= retries; i++) {
        sock.send(rrq, server.port, server.address);
        while (await wait(timeoutMs)) {
          const m = queue.shift()!;
          if (m.address !== server.address) continue;
          let pkt: TftpPacket;
          try {
            pkt = decodeTftpPacket(m.data);
          } catch {
            continue;
          }
          if (pkt.op === Opcode.ERROR) throw new TftpClientError(`${name}: error ${pkt.code} ${pkt.message}`, pkt.code);
          return { pkt, from: { address: m.address, port: m.port } };
        }
      }
      throw new TftpClientError(`${name}: no answer from ${server.address}:${server.port}`, undefined);
    },
    async next(peer, onTimeout) {
      for (let i = 0; i <= retries; i++) {
        while (await wait(timeoutMs)) {
          const m = queue.shift()!;
          if (m.address !== peer.address || m.port !== peer.port) {
            // RFC 1350: a packet from another TID gets error 5 and changes nothing.
            sock.send(encodeTftpPacket({ op: Opcode.ERROR, code: ErrorCode.UnknownTid, message: "unknown transfer ID" }), m.port, m.address);
            continue;
          }
          try {
            return decodeTftpPacket(m.data);
          } catch {
            continue;
          }
        }
        onTimeout();
      }
      throw new TftpClientError(`transfer from ${peer.address}:${peer.port} timed out`, undefined);
    },
  };
  try {
    return await fn(io);
  } finally {
    // node:dgram sends asynchronously: the last packet (an ACK, error 8) leaves before the socket closes.
    setTimeout(() => sock.close(), 50);
  }
}
