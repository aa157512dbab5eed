/** What a transfer engine gets and reports. Two engines: the event loop (any runtime) and the Linux worker. */
import type { TransferOutcome } from "../events.ts";
import type { FileData } from "../files/tree.ts";
import type { Mac } from "../wire/mac.ts";
import type { Granted } from "./negotiate.ts";
import type { TftpTiming } from "./rto.ts";

export interface TransferSpec {
  client: { address: string; port: number };
  /** Local address the transfer's socket is bound to. */
  host: string;
  /** The file name as the client asked for it (for logs). */
  file: string;
  data: FileData;
  /** The whole file, when it is in memory already (hot-file cache, generated files). */
  bytes: Uint8Array | undefined;
  granted: Granted;
  timing: TftpTiming;
  mac: Mac | undefined;
}

export interface TransferEvent {
  client: string;
  file: string;
  outcome: TransferOutcome;
  /** Why, for failed/refused/rejected (or a note on a sent one). */
  reason: string | undefined;
  /** Refused after an OACK that carried tsize: the client asked for the size only (edk2, curl), not a failure. */
  sizeProbe: boolean;
  bytes: number;
  blksize: number;
  windowsize: number;
  seconds: number;
  retransmits: number;
  mac: Mac | undefined;
  engine: string;
}

/** A transfer still running, and the bytes its client has acknowledged so far. */
export interface TransferProgress {
  spec: TransferSpec;
  bytes: number;
}

export interface TransferEngine {
  readonly name: string;
  readonly active: number;
  /** Every running transfer (the worker's figures are at most a second old). */
  progress(): TransferProgress[];
  /** Rejects when the transfer could not be set up (no socket); otherwise reports through onEnd. */
  start(spec: TransferSpec, onEnd: (e: TransferEvent) => void): Promise<void>;
  close(): Promise<void>;
}

export function transferLine(e: TransferEvent): string {
  const verb = e.outcome === "sent" ? `sent ${e.file} to` : `${e.outcome} ${e.file} for`;
  return `${verb} ${e.client}: ${e.bytes} bytes, blksize ${e.blksize}, windowsize ${e.windowsize}, ${e.seconds.toFixed(3)} s, ${e.retransmits} retransmits${e.reason ? ` (${e.reason})` : ""}`;
}

/** Error 8 after our OACK: a real refusal, or (edk2, curl) the answer to a size query made with tsize. */
export function refusalReason(hadTsize: boolean, message: string): string {
  return hadTsize ? `client ended after the OACK: a size query (tsize), as edk2 makes before the download (${message || "error 8"})` : `client refused the options (${message || "error 8"})`;
}
