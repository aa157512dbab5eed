/**
 * Main-thread side of the TFTP worker engine (Linux, Bun): hands transfers to ffi-worker.ts and relays their
 * end events. A byte on a pipe wakes the worker out of poll() when a transfer is handed over.
 */
import { statSync } from "node:fs";
import type { Logger } from "../log.ts";
import { C, libc } from "../net/libc.ts";
import { Opcode } from "./constants.ts";
import type { TransferEngine, TransferEvent, TransferSpec } from "./engine.ts";
import type { FromWorker, ToWorker, WorkerStart } from "./ffi-protocol.ts";
import { encodeTftpPacket } from "./packet.ts";

export interface FfiEngine extends TransferEngine {
  accepts(spec: TransferSpec): boolean;
}

/** The worker's copy of each byte array handed over, made once; it lives as long as the array does. */
const shared = new WeakMap<Uint8Array, SharedArrayBuffer>();
function sharedCopy(bytes: Uint8Array): SharedArrayBuffer {
  let sab = shared.get(bytes);
  if (!sab) {
    sab = new SharedArrayBuffer(bytes.length);
    new Uint8Array(sab).set(bytes);
    shared.set(bytes, sab);
  }
  return sab;
}

/** Files larger than this that are not windows of a local file stay on the event loop (no copy to the worker). */
const MAX_HANDOVER = 64 * 1024 * 1024;

export async function createFfiEngine(log: Logger): Promise<FfiEngine> {
  const pipe = new Int32Array(new ArrayBuffer(8));
  if (libc.pipe2(pipe, C.O_NONBLOCK | C.O_CLOEXEC) !== 0) throw new Error("pipe2 failed");
  const [wakeR, wakeW] = [pipe[0]!, pipe[1]!];
  const one = new Uint8Array(new ArrayBuffer(1));
  // In a compiled binary the worker is a second entry point of the build (scripts/build.ts), stored under
  // the entry points' common root (src/), while this module is bundled into the main entry at that root.
  const compiled = import.meta.url.includes("$bunfs");
  const worker = new Worker(new URL(compiled ? "./tftp/ffi-worker.ts" : "./ffi-worker.ts", import.meta.url).href);
  const pending = new Map<number, { started: (err?: Error) => void; onEnd: (e: TransferEvent) => void; spec: TransferSpec; bytes: number }>();
  const sizes = new Map<string, number>();
  let nextId = 1;
  let alive = true;

  // The byte goes first: the worker may be blocked in poll(), and once it is awake the message is there to
  // read; a message handled before the byte is read leaves a byte that only causes one extra loop turn.
  const send = (m: ToWorker, transfer: ArrayBuffer[] = []) => {
    libc.write(wakeW, one, 1);
    worker.postMessage(m, transfer);
  };

  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("TFTP worker did not start")), 5000);
    worker.onerror = (e) => {
      clearTimeout(t);
      reject(new Error(`TFTP worker failed: ${e.message}`));
    };
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      if (e.data.type === "ready") {
        clearTimeout(t);
        resolve();
      }
    };
    send({ type: "init", wakeFd: wakeR });
  });

  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "ready") return;
    if (m.type === "progress") {
      for (const [id, bytes] of m.items) {
        const p = pending.get(id);
        if (p) p.bytes = bytes;
      }
      return;
    }
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === "started") p.started();
    else if (m.type === "error") {
      pending.delete(m.id);
      p.started(new Error(m.message));
    } else if (m.type === "end") {
      pending.delete(m.id);
      p.onEnd(m.event);
    }
  };
  worker.onerror = (e) => {
    alive = false;
    log.error(`TFTP worker crashed: ${e.message}`);
    for (const [id, p] of pending) {
      pending.delete(id);
      p.onEnd({ client: "?", file: "?", outcome: "failed", reason: "worker crashed", sizeProbe: false, bytes: 0, blksize: 0, windowsize: 0, seconds: 0, retransmits: 0, mac: undefined, engine: "worker" });
    }
  };
  worker.unref();

  const fileSize = (path: string) => {
    let s = sizes.get(path);
    if (s === undefined) {
      s = statSync(path).size;
      sizes.set(path, s);
    }
    return s;
  };

  return {
    name: "worker",
    get active() {
      return pending.size;
    },
    progress: () => [...pending.values()].map((p) => ({ spec: p.spec, bytes: p.bytes })),
    accepts(spec) {
      return alive && (spec.data.local !== undefined || (spec.bytes !== undefined && spec.bytes.length <= MAX_HANDOVER));
    },
    start(spec, onEnd) {
      const id = nextId++;
      const g = spec.granted;
      let source: WorkerStart["source"];
      const transfer: ArrayBuffer[] = [];
      if (spec.data.local && spec.bytes === undefined) {
        // A window of a local file: the worker maps the file once and sends from it, nothing is copied.
        const local = spec.data.local;
        source = { kind: "file", path: local.path, fileSize: fileSize(local.path), offset: local.offset };
      } else {
        // Bytes in memory (an iPXE binary, a generated file): one shared copy per byte array, posted to the
        // worker without copying (a 1,000-machine storm held a 173 KB copy of iPXE per running transfer).
        source = { kind: "bytes", buffer: sharedCopy(spec.bytes!) };
      }
      const oack = g.oack.size ? (encodeTftpPacket({ op: Opcode.OACK, options: g.oack }).slice().buffer as ArrayBuffer) : undefined;
      if (oack) transfer.push(oack);
      return new Promise<void>((resolve, reject) => {
        pending.set(id, { started: (err) => (err ? reject(err) : resolve()), onEnd, spec, bytes: 0 });
        send(
          {
            type: "start",
            id,
            host: spec.host,
            client: spec.client,
            file: spec.file,
            size: spec.data.size,
            source,
            blksize: g.blksize,
            windowsize: g.windowsize,
            timeout: g.timeout,
            oack,
            sizeQuery: g.oack.has("tsize"),
            timing: spec.timing,
            mac: spec.mac,
          },
          transfer,
        );
      });
    },
    async close() {
      if (!alive) return;
      alive = false;
      send({ type: "close" });
      await new Promise((r) => setTimeout(r, 50));
      worker.terminate();
      libc.close(wakeR);
      libc.close(wakeW);
    },
  };
}
