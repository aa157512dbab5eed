/** Messages between the TFTP engine (main thread) and its worker thread. */
import type { TransferEvent } from "./engine.ts";
import type { TftpTiming } from "./rto.ts";

export interface WorkerStart {
  type: "start";
  id: number;
  host: string;
  client: { address: string; port: number };
  file: string;
  size: number;
  /** Where the blocks come from: a window of a local file (mapped once), or bytes shared with the worker (never written). */
  source: { kind: "file"; path: string; fileSize: number; offset: number } | { kind: "bytes"; buffer: SharedArrayBuffer };
  blksize: number;
  windowsize: number;
  timeout: number | undefined;
  /** Encoded OACK packet, when options were acknowledged. */
  oack: ArrayBuffer | undefined;
  /** The OACK carries tsize: an error 8 answer is a size query, not a refusal. */
  sizeQuery: boolean;
  timing: TftpTiming;
  mac: string | undefined;
}

export type ToWorker = { type: "init"; wakeFd: number } | WorkerStart | { type: "close" };

export type FromWorker =
  | { type: "ready" }
  | { type: "started"; id: number }
  | { type: "error"; id: number; message: string }
  | { type: "end"; id: number; event: TransferEvent }
  /** Bytes acknowledged so far, [id, bytes] per running transfer, about once a second. */
  | { type: "progress"; items: Array<[number, number]> };
