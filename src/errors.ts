/** Typed errors with stable codes. Library code throws these; only the CLI turns them into messages and exit codes. */

export class NetbootError extends Error {
  readonly code: string;
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

/** Bad configuration or command-line input. The CLI prints the message and exits 1. */
export class ConfigError extends NetbootError {}

/** A service that could not start (port in use, no permission, no such interface). */
export class ServiceError extends NetbootError {
  readonly hint: string | undefined;
  constructor(code: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.hint = hint;
  }
}

/** An HTTP failure with its status; rendered by the HTTP edge. */
export class HttpError extends NetbootError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`E_HTTP_${status}`, message);
    this.status = status;
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
