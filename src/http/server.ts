/**
 * HTTP edge: serves the runtime-neutral app (handler.ts) with Bun.serve under Bun (file ranges go out by
 * sendfile) or node:http under Node (file ranges streamed in 1 MiB reads). One access log line per request.
 */
import { createReadStream } from "node:fs";
import type { Server as NodeServer, IncomingMessage, ServerResponse } from "node:http";
import { ServiceError } from "../errors.ts";
import type { ContentCache } from "../files/cache.ts";
import type { Logger } from "../log.ts";
import type { FileData } from "../files/tree.ts";
import type { HttpBody, HttpRequest, HttpResponse } from "./handler.ts";

export interface HttpServerOptions {
  app: (req: HttpRequest) => Promise<HttpResponse>;
  /** Address to listen on ("0.0.0.0" for all). */
  host: string;
  port: number;
  log: Logger;
  /** Force the node:http edge even under Bun (tests run both). */
  runtime?: "bun" | "node";
  /** Called for every finished request (events, counters). */
  onRequest?: (entry: AccessEntry) => void;
  /** Hot small files answered from memory (see files/cache.ts). */
  cache?: ContentCache | undefined;
}

export interface AccessEntry {
  client: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  mac: string | undefined;
  note: string | undefined;
}

export interface HttpServerHandle {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const STREAM_CHUNK = 1 << 20;

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const forced = process.env.NETBOOT_HTTP_EDGE;
  const runtime = opts.runtime ?? (forced === "bun" || forced === "node" ? forced : typeof Bun !== "undefined" ? "bun" : "node");
  return runtime === "bun" ? startBun(opts) : startNode(opts);
}

export function accessLine(e: AccessEntry): string {
  return `${e.client} "${e.method} ${e.path}" ${e.status} ${e.bytes}${e.mac ? ` mac=${e.mac}` : ""}${e.note ? ` (${e.note})` : ""}`;
}

// --- internal ---

function logAccess(opts: HttpServerOptions, e: AccessEntry): void {
  opts.onRequest?.(e);
  const line = accessLine(e);
  if (e.status >= 500) opts.log.warn(line);
  else if (e.status === 404 || e.status === 400) opts.log.debug(line);
  else opts.log.info(line);
}

function bodyLength(body: HttpBody | undefined): number {
  if (!body) return 0;
  return body.kind === "bytes" ? body.bytes.length : body.end - body.start;
}

function listenError(err: unknown, host: string, port: number): ServiceError {
  const code = (err as { code?: string }).code ?? "";
  const msg = (err as Error).message ?? String(err);
  if (code === "EADDRINUSE" || /in use/i.test(msg)) {
    return new ServiceError("E_HTTP_PORT_IN_USE", `HTTP port ${port} on ${host} is already in use`, `stop the other server or pick another port: --http-port 8080`);
  }
  if (code === "EACCES" || code === "EPERM" || /permission|access/i.test(msg)) {
    return new ServiceError("E_HTTP_PORT_DENIED", `no permission to listen on HTTP port ${port}`, `run with sudo, or use an unprivileged port: --http-port 8080`);
  }
  if (code === "EADDRNOTAVAIL" || /not available|cannot assign/i.test(msg)) {
    return new ServiceError("E_HTTP_ADDRESS", `cannot listen on ${host}: no such local address`, `pick an address of this machine with --ip / --bind`);
  }
  return new ServiceError("E_HTTP_LISTEN", `cannot listen on ${host}:${port}: ${msg}`, undefined, { cause: err });
}

function startBun(opts: HttpServerOptions): HttpServerHandle {
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: opts.host,
      port: opts.port,
      development: false,
      // Large ESXi modules over slow links: never cut a transfer for idleness below the TCP timeouts.
      idleTimeout: 120,
      async fetch(req, srv) {
        const url = req.url;
        const at = url.indexOf("/", url.indexOf("//") + 2);
        const target = at < 0 ? "/" : url.slice(at);
        const client = stripV4Mapped(srv.requestIP(req)?.address);
        const res = await opts.app({ method: req.method, target, header: (n) => req.headers.get(n), remoteAddress: client });
        logAccess(opts, { client: client ?? "?", method: req.method, path: res.path, status: res.status, bytes: bodyLength(res.body), mac: res.mac, note: res.note });
        return new Response(await bunBody(res.body, opts.cache), { status: res.status, headers: res.headers });
      },
      error(err) {
        opts.log.warn(`request failed: ${err.message}`);
        return new Response("internal error\n", { status: 500 });
      },
    });
  } catch (err) {
    throw listenError(err, opts.host, opts.port);
  }
  return {
    port: server.port ?? opts.port,
    host: opts.host,
    close: async () => {
      await server.stop(true);
    },
  };
}

async function bunBody(body: HttpBody | undefined, cache: ContentCache | undefined): Promise<ConstructorParameters<typeof Response>[0]> {
  if (!body) return null;
  if (body.kind === "bytes") return body.bytes;
  const { data, start, end } = body;
  const cached = cachedBytes(cache, data);
  if (cached) return (await cached).subarray(start, end);
  // A window on a local file: Bun sends it with sendfile(2), no copy through JS.
  if (data.local) return Bun.file(data.local.path).slice(data.local.offset + start, data.local.offset + end);
  return byteStream(data, start, end);
}

function cachedBytes(cache: ContentCache | undefined, data: FileData): Promise<Uint8Array> | undefined {
  return cache?.get(data.etag, data.size, () => data.read(0, data.size));
}

function byteStream(data: { read(o: number, n: number): Promise<Uint8Array> }, start: number, end: number): ReadableStream<Uint8Array> {
  let pos = start;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pos >= end) return controller.close();
      const n = Math.min(STREAM_CHUNK, end - pos);
      const chunk = await data.read(pos, n);
      pos += n;
      controller.enqueue(chunk);
      if (pos >= end) controller.close();
    },
  });
}

async function startNode(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const http = await import("node:http");
  const server: NodeServer = http.createServer((req, res) => void serveNode(opts, req, res));
  server.keepAliveTimeout = 30_000;
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(listenError(err, opts.host, opts.port)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : opts.port,
    host: opts.host,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

async function serveNode(opts: HttpServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const client = stripV4Mapped(req.socket.remoteAddress);
  let response: HttpResponse;
  try {
    response = await opts.app({
      method: req.method ?? "GET",
      target: normalizeTarget(req.url ?? "/"),
      header: (n) => {
        const v = req.headers[n.toLowerCase()];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      remoteAddress: client,
    });
  } catch (err) {
    opts.log.warn(`request failed: ${(err as Error).message}`);
    res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
    return;
  }
  const entry: AccessEntry = { client: client ?? "?", method: req.method ?? "?", path: response.path, status: response.status, bytes: 0, mac: response.mac, note: response.note };
  res.writeHead(response.status, response.headers);
  const body = response.body;
  if (!body) {
    res.end();
    logAccess(opts, entry);
    return;
  }
  if (body.kind === "bytes") {
    res.end(body.bytes);
    logAccess(opts, { ...entry, bytes: body.bytes.length });
    return;
  }
  const { data, start, end } = body;
  const cached = cachedBytes(opts.cache, data);
  if (cached) {
    try {
      const bytes = (await cached).subarray(start, end);
      res.end(bytes);
      logAccess(opts, { ...entry, bytes: bytes.length });
    } catch (err) {
      opts.log.warn(`${response.path}: read failed: ${(err as Error).message}`);
      res.destroy();
    }
    return;
  }
  let sent = 0;
  res.on("close", () => logAccess(opts, { ...entry, bytes: sent, note: res.writableFinished ? entry.note : `aborted${entry.note ? `, ${entry.note}` : ""}` }));
  if (end === start) {
    res.end();
    return;
  }
  if (data.local) {
    const stream = createReadStream(data.local.path, { start: data.local.offset + start, end: data.local.offset + end - 1, highWaterMark: STREAM_CHUNK });
    stream.on("data", (c) => (sent += c.length));
    stream.on("error", () => res.destroy());
    stream.pipe(res);
    return;
  }
  try {
    for (let pos = start; pos < end && !res.destroyed; ) {
      const n = Math.min(STREAM_CHUNK, end - pos);
      const chunk = await data.read(pos, n);
      pos += n;
      sent += n;
      if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  } catch (err) {
    opts.log.warn(`${response.path}: read failed mid-transfer: ${(err as Error).message}`);
    res.destroy();
  }
}

/**
 * Resolves dot segments and backslashes the way Bun.serve (WHATWG URL) already has before our handler
 * sees a path, so both runtimes answer the same: "/esxi/EFI/../B.B00" is B.B00, and nothing can climb
 * above "/" (RFC 3986 §5.2.4). Encoded separators and NUL stay encoded and are refused by the handler.
 */
function normalizeTarget(raw: string): string {
  if (!raw.startsWith("/")) return raw;
  try {
    const u = new URL(raw, "http://netboot.invalid");
    return u.pathname + u.search;
  } catch {
    return raw;
  }
}

function stripV4Mapped(a: string | undefined): string | undefined {
  return a?.startsWith("::ffff:") ? a.slice(7) : a;
}
