/**
 * TFTP edge: port 69 takes read requests; each transfer runs on its own ephemeral socket bound to the server
 * address, driven by the pure state machine (transfer.ts). Two engines move the blocks: on Linux under Bun
 * a worker thread doing the system calls itself (ffi-engine.ts, no event loop per block), elsewhere the
 * event loop (loop-engine.ts). Blocks are read on demand or from the shared hot-file cache, so memory stays
 * bounded whatever the number of transfers. Each transfer is on the bus: tftp.start, tftp.progress about
 * once a second while it runs, tftp.end (and bootcfg.served for a boot.cfg), with the kind of file the
 * boot namespace resolved.
 */
import type { BootFiles, ClientHint, FileKind } from "../boot/files.ts";
import { LIMITS } from "../config.ts";
import { requester, type EventSink } from "../events.ts";
import type { ContentCache } from "../files/cache.ts";
import { checkRequestPath, tftpPathRules } from "../files/paths.ts";
import type { FileData } from "../files/tree.ts";
import { memoryData } from "../files/tree.ts";
import { ThrottledNotice, type Logger } from "../log.ts";
import { growReceiveBuffer } from "../net/device.ts";
import { openUdp } from "../net/udp.ts";
import type { Mac } from "../wire/mac.ts";
import { ErrorCode, MAX_BLKSIZE, Opcode } from "./constants.ts";
import { transferLine, type TransferEngine, type TransferEvent, type TransferSpec } from "./engine.ts";
import { createLoopEngine } from "./loop-engine.ts";
import { toNetascii } from "./netascii.ts";
import { negotiate, platformMaxBlksize } from "./negotiate.ts";
import { decodeTftpPacket, errorPacket } from "./packet.ts";
import { DEFAULT_TIMING, type TftpTiming } from "./rto.ts";

export type { TransferEvent } from "./engine.ts";

export interface TftpClientInfo {
  mac?: Mac | undefined;
  /** Cap for this client (Mac firmware: 1460). */
  maxBlksize?: number | undefined;
}

export interface TftpServerOptions {
  /** The boot namespace; without it the socket is bound and requests wait for `serve`. */
  files?: BootFiles | undefined;
  host: string;
  port: number;
  log: Logger;
  /** --tftp-max-blksize */
  maxBlksize?: number;
  maxWindowsize?: number;
  /** What the server knows about a client address from its own DHCP/BSDP traffic. */
  clientInfo?: (address: string) => TftpClientInfo | undefined;
  cache?: ContentCache | undefined;
  timing?: Partial<TftpTiming>;
  maxTransfers?: number;
  /** Transfers at once for one client address (default 16). */
  maxPerClient?: number;
  runtime?: "bun" | "node";
  /** "auto" (default): the worker engine where it runs (Linux, Bun), else the event loop. */
  engine?: "auto" | "event-loop" | "worker";
  /** Where the transfers go as events (tftp.start, tftp.progress, tftp.end, bootcfg.served). */
  events?: EventSink | undefined;
  /** The OS whose socket limits apply (tests); process.platform by default. */
  platform?: string;
  /** Socket factory for the event-loop engine (tests hand in sockets whose sends fail). */
  openSocket?: typeof openUdp;
}

export interface TftpServerHandle {
  readonly port: number;
  /** Transfers in progress. */
  readonly active: number;
  /** Each running transfer and the bytes acknowledged so far. */
  transfers(): Array<{ client: string; file: string; mac: Mac | undefined; bytes: number; size: number }>;
  readonly engine: string;
  /** Starts answering (when bound without files): requests that arrived meanwhile go on. */
  serve(files: BootFiles): void;
  close(): Promise<void>;
}

export async function startTftpServer(opts: TftpServerOptions): Promise<TftpServerHandle> {
  const maxTransfers = opts.maxTransfers ?? LIMITS.tftp.maxTransfers;
  const maxPerClient = opts.maxPerClient ?? LIMITS.tftp.maxPerClient;
  const busy = new ThrottledNotice((line) => opts.log.warn(line));
  const waits = new ThrottledNotice((line) => opts.log.info(line));
  /**
   * Requests waiting for a transfer slot, by client address:port, oldest first (a retransmission of one
   * keeps its place and proves its client is still there).
   */
  const queued = new Map<string, { at: number; run: () => void }>();
  /** Transfers past the caps' check, starting or running (released when they end or are refused). */
  let held = 0;
  const perClient = new Map<string, number>();
  const timing = { ...DEFAULT_TIMING, ...opts.timing };
  const loop = createLoopEngine(opts.runtime, opts.openSocket);
  const fast = await pickFastEngine(opts);
  let closed = false;
  const emit = opts.events;
  let serve!: (files: BootFiles) => void;
  const filesReady = opts.files ? Promise.resolve(opts.files) : new Promise<BootFiles>((resolve) => (serve = resolve));
  /** What each running transfer is, for its events: the kind of file and whether its address is the host's. */
  const about = new Map<TransferSpec, { kind: FileKind | undefined; ip: string | undefined; elsewhere: true | undefined }>();

  const listener = await openUdp({
    address: opts.host,
    port: opts.port,
    service: "TFTP",
    portFlag: "--tftp-port",
    runtime: opts.runtime,
    onMessage: (data, address, port) => {
      if (closed) return;
      void onRequest(data, address, port).catch((err) => opts.log.warn(`request from ${address}:${port} failed: ${(err as Error).message}`));
    },
    onHandlerError: (err) => opts.log.warn(`TFTP request handler failed: ${(err as Error).message}`),
  });
  // Room for a rack's read requests at once.
  const room = await growReceiveBuffer(listener.fd, LIMITS.listenReceiveBuffer);
  if (!room.ok) opts.log.debug(`TFTP receive buffer left as it is: ${room.why}`);

  let ready = opts.files !== undefined;
  void filesReady.then(() => (ready = true));
  /** Clients (address:port) whose request waits for the server to serve: a retransmission of it is dropped. */
  const waiting = new Set<string>();

  async function onRequest(raw: Uint8Array, address: string, port: number): Promise<void> {
    // Nothing is answered before the server serves (run as root, it drops privileges in between): a
    // request waits for it, one per client and LIMITS.heldBeforeReady in all (clients send theirs again).
    if (!ready) {
      const key = `${address}:${port}`;
      if (waiting.has(key) || waiting.size >= LIMITS.heldBeforeReady) return;
      waiting.add(key);
      await filesReady.finally(() => waiting.delete(key));
    }
    let pkt;
    try {
      pkt = decodeTftpPacket(raw);
    } catch (err) {
      opts.log.debug(`dropped malformed packet from ${address}:${port}: ${(err as Error).message}`);
      return;
    }
    const client = `${address}:${port}`;
    if (pkt.op !== Opcode.RRQ && pkt.op !== Opcode.WRQ) {
      opts.log.debug(`dropped opcode ${pkt.op} on the request port from ${client}`);
      return;
    }
    const info = opts.clientInfo?.(address);
    const kind = pkt.op === Opcode.WRQ ? "WRQ" : "RRQ";
    const reject = async (code: number, message: string, reason: string, quiet = false, fileKind?: FileKind) => {
      if (!quiet) opts.log.info(`${client} ${kind} ${pkt.filename}: ${reason}`);
      emit?.({ type: "tftp.end", mac: info?.mac, ip: address, client, file: pkt.filename, kind: fileKind, outcome: "rejected", sizeProbe: false, reason, bytes: 0, seconds: 0, retransmits: 0 });
      await replyOnce(opts, address, port, errorPacket(code, message));
    };
    if (pkt.op === Opcode.WRQ) return reject(ErrorCode.AccessViolation, "read-only server", "write request refused");
    if (pkt.mode !== "octet" && pkt.mode !== "netascii") return reject(ErrorCode.IllegalOperation, `unsupported mode ${pkt.mode}`, `mode ${pkt.mode} refused`);
    // Caps, counted from the request on (a burst of RRQs all pass a check made only when transfers start):
    // all transfers, and one address's, so that one client (a loop, a fuzzer) cannot take every slot.
    // Refusals past a cap are said once a second at most (a flood would drown the log).
    if (held >= maxTransfers) {
      const key = `${address}:${port}`;
      const known = queued.get(key);
      if (known) {
        known.at = Date.now();
        return;
      }
      if (queued.size < LIMITS.tftp.maxQueued) {
        queued.set(key, { at: Date.now(), run: () => void onRequest(raw, address, port).catch((err) => opts.log.warn(`request from ${key} failed: ${(err as Error).message}`)) });
        waits.note(address, (n, from) => `${n} request${n === 1 ? "" : "s"} from ${from.size} address${from.size === 1 ? "" : "es"} wait for a slot: ${maxTransfers} transfers running`);
        return;
      }
      busy.note(address, (n, from) => `refused ${n} request${n === 1 ? "" : "s"} from ${from.size} address${from.size === 1 ? "" : "es"} ("server busy"): ${maxTransfers} transfers running and ${queued.size} waiting`);
      return reject(ErrorCode.Undefined, "server busy, try again", `refused: ${maxTransfers} transfers running and ${queued.size} waiting`, true);
    }
    const mine = perClient.get(address) ?? 0;
    if (mine >= maxPerClient) {
      busy.note(address, (n, from) => `refused ${n} request${n === 1 ? "" : "s"} from ${from.size <= 3 ? [...from].join(", ") : `${from.size} addresses`} ("server busy"): ${maxPerClient} transfers already running for one address`);
      return reject(ErrorCode.Undefined, "server busy, try again", `refused: ${maxPerClient} transfers already running for ${address}`, true);
    }
    held++;
    perClient.set(address, mine + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      held--;
      const n = (perClient.get(address) ?? 1) - 1;
      if (n > 0) perClient.set(address, n);
      else perClient.delete(address);
      // The slot goes to the oldest request still waiting (one whose client has since given up is dropped).
      for (const [key, w] of queued) {
        queued.delete(key);
        if (Date.now() - w.at > LIMITS.tftp.queuedMs) continue;
        if (!closed) w.run();
        break;
      }
    };
    let started = false;
    try {
      started = await startTransfer(pkt, address, port, client, info, reject, release);
    } finally {
      if (!started) release();
    }
  }

  /** Resolves the file, agrees the options and hands the transfer to an engine; false when it was refused. */
  async function startTransfer(
    pkt: { filename: string; mode: string; options: Map<string, string> },
    address: string,
    port: number,
    client: string,
    info: TftpClientInfo | undefined,
    reject: (code: number, message: string, reason: string, quiet?: boolean, kind?: FileKind) => Promise<void>,
    release: () => void,
  ): Promise<boolean> {
    const rejected = async (code: number, message: string, reason: string, kind?: FileKind) => {
      await reject(code, message, reason, false, kind);
      return false;
    };

    const files = await filesReady;
    const name = ownUrlPath(pkt.filename, files.config.httpBase);
    if (name === undefined) return rejected(ErrorCode.FileNotFound, "file not found", "a URL of another server (only this server's own http:// URLs are mapped to its files)");
    const checked = checkRequestPath(name, tftpPathRules);
    if (!checked.ok) return rejected(ErrorCode.AccessViolation, "access violation", checked.reason);
    const hint: ClientHint = { address, mac: info?.mac, via: "tftp" };
    const resolved = await files.resolve(checked.parts, hint);
    if (resolved.result === "missing") return rejected(ErrorCode.FileNotFound, "file not found", `not found (${resolved.reason})`, resolved.kind);
    if (resolved.result === "directory") return rejected(ErrorCode.FileNotFound, "file not found", "is a directory");
    if (resolved.result === "forbidden") return rejected(ErrorCode.AccessViolation, "access violation", `refused: ${resolved.reason}`, resolved.kind);

    let data: FileData = resolved.data;
    let bytes: Uint8Array | undefined;
    if (pkt.mode === "netascii") {
      if (data.size > LIMITS.tftp.maxNetascii) return rejected(ErrorCode.Undefined, "file too large for netascii, use octet mode", "netascii refused: file too large");
      bytes = toNetascii(await data.read(0, data.size));
      data = memoryData(bytes, data.mtime);
    } else if (data.bytes) {
      bytes = data.bytes;
    } else if (!data.local) {
      // Generated or remote bytes: from the shared cache when they fit (read once for every client).
      const cached = opts.cache?.get(data.etag, data.size, () => data.read(0, data.size));
      if (cached) bytes = await cached;
    }
    const granted = negotiate(pkt.options, data.size, {
      maxBlksize: Math.min(opts.maxBlksize ?? MAX_BLKSIZE, info?.maxBlksize ?? MAX_BLKSIZE, platformMaxBlksize(opts.platform ?? process.platform)),
      maxWindowsize: opts.maxWindowsize,
    });
    const spec: TransferSpec = { client: { address, port }, host: opts.host, file: pkt.filename, data, bytes, granted, timing, mac: resolved.mac ?? info?.mac };
    const engine = fast && fast.accepts(spec) ? fast : loop;
    opts.log.info(
      `${client} RRQ ${pkt.filename}: ${data.size} bytes, blksize ${granted.blksize}, windowsize ${granted.windowsize}` +
        (granted.oack.size ? ` (OACK ${[...granted.oack].map(([k, v]) => `${k}=${v}`).join(" ")})` : ""),
    );
    // The host's address only when the address is known to be that MAC's (a path may name another host).
    const { ip, elsewhere } = requester(resolved.mac, info?.mac, address);
    const kind = resolved.kind;
    about.set(spec, { kind, ip, elsewhere });
    emit?.({ type: "tftp.start", mac: spec.mac, ip, elsewhere, client, file: spec.file, kind, size: data.size, blksize: granted.blksize, windowsize: granted.windowsize });
    await engine.start(spec, (e) => {
      release();
      about.delete(spec);
      if (e.outcome === "failed") opts.log.warn(transferLine(e));
      else opts.log.info(transferLine(e));
      emit?.({ type: "tftp.end", mac: spec.mac, ip, elsewhere, client: e.client, file: e.file, kind, outcome: e.outcome, sizeProbe: e.sizeProbe, reason: e.reason, bytes: e.bytes, seconds: e.seconds, retransmits: e.retransmits });
      if (kind === "bootcfg" && e.outcome === "sent" && spec.mac && resolved.image) emit?.({ type: "bootcfg.served", mac: spec.mac, ip, elsewhere, image: resolved.image.name, via: "tftp" });
    });
    return true;
  }

  // How far each running transfer is, about once a second: the operator's progress bars move during a big module.
  const reported = new Map<TransferSpec, number>();
  const progress = emit
    ? setInterval(() => {
        const running = [...loop.progress(), ...(fast?.progress() ?? [])];
        const seen = new Set<TransferSpec>();
        for (const { spec, bytes } of running) {
          seen.add(spec);
          if (reported.get(spec) === bytes) continue;
          reported.set(spec, bytes);
          const a = about.get(spec);
          emit({ type: "tftp.progress", mac: spec.mac, ip: a?.ip, elsewhere: a?.elsewhere, client: `${spec.client.address}:${spec.client.port}`, file: spec.file, kind: a?.kind, bytes, size: spec.data.size });
        }
        for (const s of reported.keys()) if (!seen.has(s)) reported.delete(s);
      }, LIMITS.tftp.progressMs)
    : undefined;
  progress?.unref?.();

  return {
    port: listener.port,
    get active() {
      return loop.active + (fast?.active ?? 0);
    },
    transfers: () =>
      [...loop.progress(), ...(fast?.progress() ?? [])].map(({ spec, bytes }) => ({ client: `${spec.client.address}:${spec.client.port}`, file: spec.file, mac: spec.mac, bytes, size: spec.data.size })),
    engine: fast ? `${fast.name} (event loop for the rest)` : loop.name,
    serve: (files) => serve?.(files),
    async close() {
      closed = true;
      queued.clear();
      if (progress) clearInterval(progress);
      listener.close();
      await loop.close();
      await fast?.close();
    },
  };
}

/**
 * The TFTP name a loader means. ESXi's loader sends whatever path it built as the TFTP file name, a URL too
 * (esx-boot tftpfile.c): a boot.cfg with prefix=http://<us>/NAME/ read by a TFTP-booted loader makes it
 * ask TFTP for "http://<us>/NAME/b.b00", which is NAME/b.b00 here. Another server's URL: undefined.
 */
export function ownUrlPath(filename: string, httpBase: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)(\/.*)?$/i.exec(filename);
  if (!m) return filename;
  const base = /^http:\/\/([^/]+)$/i.exec(httpBase)?.[1]?.toLowerCase();
  const host = m[1]!.toLowerCase();
  const ours = base !== undefined && /^http:/i.test(filename) && (host === base || host === `${base}:80` || `${host}:80` === base);
  return ours ? (m[2] ?? "/") : undefined;
}

// --- internal ---

interface FastEngine extends TransferEngine {
  /** The worker serves windows of local files and in-memory bytes; anything else stays on the event loop. */
  accepts(spec: TransferSpec): boolean;
}

async function pickFastEngine(opts: TftpServerOptions): Promise<FastEngine | undefined> {
  const forced = process.env.NETBOOT_TFTP_ENGINE;
  const want = opts.engine ?? (forced === "event-loop" || forced === "worker" ? forced : "auto");
  if (want === "event-loop" || opts.runtime === "node" || typeof Bun === "undefined") return undefined;
  try {
    const { createFfiEngine } = await import("./ffi-engine.ts");
    return await createFfiEngine(opts.log);
  } catch (err) {
    if (want === "worker") throw err;
    opts.log.debug(`TFTP worker engine unavailable (${(err as Error).message}); using the event loop`);
    return undefined;
  }
}

/** Errors for a request go out from a fresh port (a new TID), as a transfer would. */
async function replyOnce(opts: TftpServerOptions, address: string, port: number, packet: Uint8Array): Promise<void> {
  const s = await openUdp({ address: opts.host, port: 0, service: "TFTP", runtime: opts.runtime, onMessage: () => {} });
  try {
    s.send(packet, port, address);
  } catch (err) {
    opts.log.debug(`error reply to ${address}:${port} not sent: ${(err as Error).message}`);
  }
  setTimeout(() => s.close(), 200);
}
