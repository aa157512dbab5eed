/**
 * What the two HTTP edges share (bun-edge.ts, node-edge.ts): their options, the caps, the access log and
 * the events each finished request puts on the bus (http.start, http.end, http.abort, bootcfg.served),
 * set here from the app's typed answer: the kind of file, the MAC it was for, whether that MAC is the
 * client's own.
 */
import { LIMITS, type HttpLimits } from "../config.ts";
import { bindFailure, errorMessage, PortError, ServiceError } from "../errors.ts";
import { requester, type EventSink } from "../events.ts";
import type { ContentCache } from "../files/cache.ts";
import type { FileData } from "../files/tree.ts";
import { ThrottledNotice, type Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import { isOperatorPath, type HttpBody, type HttpRequest, type HttpResponse } from "./handler.ts";

export interface HttpServerOptions {
  app: (req: HttpRequest) => Promise<HttpResponse>;
  /** Address to listen on ("0.0.0.0" for all). */
  host: string;
  port: number;
  log: Logger;
  /** Force the node:http edge even under Bun (tests run both). */
  runtime?: "bun" | "node";
  /**
   * Where the requests of booting clients go as events (the operator's own, the status page and the API,
   * do not). Bun's edge reports a request when its answer starts (Bun.serve says nothing when a body has
   * gone out) and adds http.abort when that client goes away before the end; node:http reports at the end,
   * with the bytes sent and `aborted`.
   */
  events?: EventSink | undefined;
  /** Which MAC is behind a client address (DHCP, ARP), for requests whose path names none. */
  macOf?: ((address: string) => Mac | undefined) | undefined;
  /** Hot small files answered from memory (see files/cache.ts). */
  cache?: ContentCache | undefined;
  limits?: Partial<HttpLimits> | undefined;
  /** Settles when the server serves (bound before a privilege drop): even a 503 waits for it. */
  ready?: Promise<unknown> | undefined;
}

export interface AccessEntry {
  client: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  response: Pick<HttpResponse, "mac" | "kind" | "image">;
  note: string | undefined;
  /** How the body was delimited when it was not by Content-Length (never, for our own answers). */
  framing?: "chunked" | "close-delimited" | undefined;
  /** The client went away before the end of the body (node:http: known at the end). */
  aborted?: boolean | undefined;
}

export interface HttpServerHandle {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

export const BUSY_HEADERS = { "content-type": "text/plain; charset=utf-8", "retry-after": String(LIMITS.http.busyRetryAfterSeconds), connection: "close" };
export const busyText = (max: number) => `server busy: ${max} answers already being sent; try again\n`;

/** 503 with the source's one-line reason (a URL source that went away or changed), for both edges. */
export const UNAVAILABLE_HEADERS = { "content-type": "text/plain; charset=utf-8", "retry-after": String(LIMITS.http.unavailableRetryAfterSeconds) };
export const unavailableText = (err: unknown) => `image source unavailable: ${(err as Error).message}\n`;

export function limitsOf(opts: HttpServerOptions): HttpLimits {
  return { ...LIMITS.http, ...opts.limits };
}

/** Counts requests per connection (client address and port), bounded: the oldest entries go first. */
export class PerConnection {
  readonly #counts = new Map<string, number>();
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  /** True when this request is the connection's last. */
  last(key: string): boolean {
    const n = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.delete(key);
    if (n >= this.max) return true;
    if (this.#counts.size >= LIMITS.http.connectionsCounted) this.#counts.delete(this.#counts.keys().next().value!);
    this.#counts.set(key, n);
    return false;
  }
}

export function busyNotice(opts: HttpServerOptions, limits: HttpLimits): (client: string) => void {
  const n = new ThrottledNotice((l) => opts.log.warn(l));
  return (client) => n.note(client, (count, clients) => `refused ${count} request${count === 1 ? "" : "s"} from ${clients.size} client${clients.size === 1 ? "" : "s"} with 503: ${limits.maxActive} answers already being sent`);
}

export function accessLine(e: AccessEntry): string {
  const mac = e.response.mac;
  return `${e.client} "${e.method} ${e.path}" ${e.status} ${e.bytes}${mac ? ` mac=${mac}` : ""}${e.note ? ` (${e.note})` : ""}`;
}

/** A request reaches the app: said on the bus (a booting client's only). */
export function requestStarted(opts: HttpServerOptions, client: string | undefined, method: string, target: string): void {
  const path = target.split("?")[0]!;
  if (!opts.events || isOperatorPath(path)) return;
  const mac = client ? opts.macOf?.(client) : undefined;
  opts.events({ type: "http.start", mac, ip: client, client: client ?? "?", method, path });
}

/** A finished request (node:http) or one whose answer starts (Bun): the access line and the events. */
export function logAccess(opts: HttpServerOptions, e: AccessEntry): void {
  logAt(opts, e, accessLine(e));
  if (!opts.events || isOperatorPath(e.path)) return;
  const who = identify(opts, e);
  const { kind, image } = e.response;
  opts.events({ type: "http.end", ...who, client: e.client, method: e.method, path: e.path, status: e.status, bytes: e.bytes, kind, note: e.note, aborted: e.aborted || undefined });
  if (kind === "bootcfg" && e.status === 200 && who.mac && image) opts.events({ type: "bootcfg.served", ...who, image, via: "http" });
}

/** Bun's edge: the client went away before the end of an answer already reported. */
export function cutOff(opts: HttpServerOptions, e: AccessEntry): void {
  logAt(opts, e, `${e.client} "${e.method} ${e.path}" cut off: the client went away before the end of the ${e.bytes} bytes${e.response.mac ? ` mac=${e.response.mac}` : ""}`);
  if (!opts.events || isOperatorPath(e.path)) return;
  opts.events({ type: "http.abort", ...identify(opts, e), client: e.client, method: e.method, path: e.path, bytes: e.bytes, kind: e.response.kind });
}

/** The host a request is about (events.ts requester): the MAC its answer names, and the one behind its address. */
function identify(opts: HttpServerOptions, e: AccessEntry): ReturnType<typeof requester> {
  const address = e.client !== "?" ? e.client : undefined;
  return requester(e.response.mac, address ? opts.macOf?.(address) : undefined, address);
}

function logAt(opts: HttpServerOptions, e: AccessEntry, line: string): void {
  if (e.status >= 500) opts.log.warn(line);
  // The status page polls the API: those lines would drown the clients' (they are there with --verbose).
  else if (e.status === 404 || e.status === 400 || isOperatorPath(e.path)) opts.log.debug(line);
  else opts.log.info(line);
}

export function bodyLength(body: HttpBody | undefined): number {
  if (!body || body.kind === "stream") return 0;
  return body.kind === "bytes" ? body.bytes.length : body.end - body.start;
}

export function listenError(err: unknown, host: string, port: number): ServiceError {
  const why = bindFailure(err);
  const msg = errorMessage(err);
  if (why === "in-use") {
    return new PortError("in-use", "E_HTTP_PORT_IN_USE", `HTTP port ${port} on ${host} is already in use`, `stop the other server or pick another port: --http-port 8080`);
  }
  if (why === "denied") {
    return new PortError("denied", "E_HTTP_PORT_DENIED", `no permission to listen on HTTP port ${port}`, `run with sudo, or use an unprivileged port: --http-port 8080`);
  }
  if (why === "no-address") {
    return new PortError("no-address", "E_HTTP_ADDRESS", `cannot listen on ${host}: no such local address`, `pick an address of this machine with --ip / --bind`);
  }
  return new ServiceError("E_HTTP_LISTEN", `cannot listen on ${host}:${port}: ${msg}`, undefined, { cause: err });
}

/**
 * Bytes of a local file above LIMITS.http.localCacheMax go out by sendfile from the page cache, never
 * through the hot-file cache: memory would hold a second copy for no gain (a boot storm of 200 clients on
 * 400 MiB of 20 MiB modules: 1.09× the ideal time at 110 MB RSS through sendfile, 1.13× at 515 MB through
 * the cache). Small files gain from memory (about 2× the requests/s of sendfile for 1 MiB), remote ones
 * (URL, zip) always.
 */
export function worthCaching(data: FileData): boolean {
  if (data.bytes) return false;
  return !data.local || data.size <= LIMITS.http.localCacheMax;
}

export function cachedBytes(cache: ContentCache | undefined, data: FileData): Promise<Uint8Array> | undefined {
  if (!worthCaching(data)) return undefined;
  return cache?.get(data.etag, data.size, () => data.read(0, data.size));
}

export function stripV4Mapped(a: string | undefined): string | undefined {
  return a?.startsWith("::ffff:") ? a.slice(7) : a;
}
