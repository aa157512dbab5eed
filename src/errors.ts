/**
 * Typed errors with stable codes: the one hierarchy. Library code throws these; only the CLI turns them into
 * one line and the exit code each class carries (README, "Exit codes"):
 *
 *   ConfigError   2   bad input: a flag, a lab file, a kickstart template, a path netboot cannot use
 *   NetbootError  1   everything else that is known and said in words: a source, a store, a service, a
 *                     packet, a client's answer
 *
 * Anything else thrown is a bug, and keeps its stack.
 */

export class NetbootError extends Error {
  readonly code: string;
  /** What the process exits with when this ends a command. */
  readonly exitCode: number = 1;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A packet (DHCP, TFTP, BSDP) that does not decode. Servers drop it and go on. */
export class PacketError extends NetbootError {}

/** An ISO 9660 image that cannot be read: not an ISO, truncated, loops, absurd lengths. */
export class IsoError extends NetbootError {}

/** A source (file, directory, URL, zip) that is missing, unreadable or not what it claims. */
export class SourceError extends NetbootError {}

/** The host store (its files, or its database) cannot be read, written or reached. */
export class StoreError extends NetbootError {}

/** Bad configuration or command-line input: the CLI prints the message and exits 2. */
export class ConfigError extends NetbootError {
  override readonly exitCode: number = 2;
}

/** A service that could not start (port in use, no permission, no such interface); `hint` says what to do. */
export class ServiceError extends NetbootError {
  readonly hint: string | undefined;
  constructor(code: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.hint = hint;
  }
}

/** A port that could not be bound, and why (the callers that react to a held port test `why`, not the message). */
export class PortError extends ServiceError {
  readonly why: "in-use" | "denied" | "no-address";
  constructor(why: PortError["why"], code: string, message: string, hint: string) {
    super(code, message, hint);
    this.why = why;
  }
}

/** Why binding a port failed, from a runtime's error (Node's code, an FFI errno, or only its words); undefined: another reason. */
export function bindFailure(err: unknown): PortError["why"] | undefined {
  const e = err as { code?: string; errno?: number };
  const code = e.code ?? "";
  const msg = errorMessage(err);
  if (code === "EADDRINUSE" || e.errno === 98 || e.errno === 48 || /in use/i.test(msg)) return "in-use"; // Linux, darwin
  if (code === "EACCES" || code === "EPERM" || e.errno === 13 || e.errno === 1 || /permission|access/i.test(msg)) return "denied";
  if (code === "EADDRNOTAVAIL" || /not available|cannot assign/i.test(msg)) return "no-address";
  return undefined;
}

/** What another server answered, as one of netboot's clients saw it (HTTP, TFTP, a DHCP peer). */
export class PeerError extends NetbootError {}

/** A BMC (Redfish, IPMI) that refused, or did not answer; `answer` is what it said last, for the one line and the report. */
export class BmcError extends NetbootError {
  readonly answer: string;
  constructor(code: string, message: string, answer: string = message) {
    super(code, message);
    this.answer = answer;
  }
}

/** Message of any thrown value, for logs. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A file system error in words: "ENOENT: no such file or directory, mkdir '/x'" → "no such file or directory". */
export function fsReason(err: unknown): string {
  return errorMessage(err).replace(/^[A-Z]+: /, "").split(",")[0]!;
}
