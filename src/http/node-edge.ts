/**
 * The node:http edge (Node, and under Bun every image whose bytes are not all in local files: a URL source
 * keeps its Content-Length only here): file windows in 1 MiB reads into two reused buffers, a cached file
 * in pieces as the socket drains, every answer framed by Content-Length but the status page's event stream.
 */
import { open } from "node:fs/promises";
import type { Server as NodeServer, IncomingMessage, ServerResponse } from "node:http";
import { LIMITS } from "../config.ts";
import { chunkLength } from "../files/tree.ts";
import {
  BUSY_HEADERS,
  busyNotice,
  busyText,
  cachedBytes,
  limitsOf,
  listenError,
  logAccess,
  requestStarted,
  stripV4Mapped,
  UNAVAILABLE_HEADERS,
  unavailableText,
  type AccessEntry,
  type HttpServerHandle,
  type HttpServerOptions,
} from "./edge.ts";
import type { HttpResponse } from "./handler.ts";

const STREAM_CHUNK = LIMITS.http.streamChunk;

export async function startNodeEdge(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const http = await import("node:http");
  const limits = limitsOf(opts);
  const busy = busyNotice(opts, limits);
  let active = 0;
  // The header and request timeouts are checked every second (Node's default: every 30 s).
  const server: NodeServer = http.createServer({ maxHeaderSize: LIMITS.http.headerBytes, connectionsCheckingInterval: 1000 }, (req, res) => {
    if (active >= limits.maxActive) {
      void Promise.resolve(opts.ready).then(() => {
        busy(stripV4Mapped(req.socket.remoteAddress) ?? "?");
        res.writeHead(503, { ...BUSY_HEADERS, "content-length": Buffer.byteLength(busyText(limits.maxActive)) }).end(busyText(limits.maxActive));
      });
      return;
    }
    active++;
    res.once("close", () => active--);
    void serveNode(opts, req, res);
  });
  server.keepAliveTimeout = limits.keepAliveMs;
  server.headersTimeout = limits.headerTimeoutMs;
  // The whole request (headers and the small bodies we take), not the answer: a download may take hours.
  server.requestTimeout = limits.headerTimeoutMs + 20_000;
  server.maxRequestsPerSocket = limits.requestsPerConnection;
  server.maxConnections = limits.maxConnections;
  server.timeout = limits.idleSeconds * 1000;
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
    const target = normalizeTarget(req.url ?? "/");
    requestStarted(opts, client, req.method ?? "GET", target);
    response = await opts.app({
      method: req.method ?? "GET",
      target,
      header: (n) => {
        const v = req.headers[n.toLowerCase()];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      remoteAddress: client,
      body: (limit) => readNodeBody(req, Math.min(limit, LIMITS.http.maxBody)),
    });
  } catch (err) {
    opts.log.warn(`request failed: ${(err as Error).message}`);
    res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
    return;
  }
  const entry: AccessEntry = { client: client ?? "?", method: req.method ?? "?", path: response.path, status: response.status, bytes: 0, response, note: response.note };
  const body = response.body;
  if (body?.kind === "stream") {
    res.writeHead(response.status, response.headers);
    res.flushHeaders();
    req.socket.setTimeout(0);
    const stop = body.open(
      (chunk) => !res.destroyed && (res.write(chunk), true),
      () => res.end(),
    );
    res.on("close", () => {
      stop();
      logAccess(opts, { ...entry, note: "stream", framing: "chunked" });
    });
    return;
  }
  // Before answering, have the bytes of a cached file, or the first chunk of a file that is not local: a
  // failing source (a URL that went away or changed) then gives a 503, not a cut 200.
  let first: Uint8Array | undefined;
  let whole: Uint8Array | undefined;
  if (body?.kind === "bytes") whole = body.bytes;
  else if (body?.kind === "file" && body.data.bytes) whole = body.data.bytes.subarray(body.start, body.end);
  else if (body?.kind === "file" && body.end > body.start) {
    try {
      const cached = cachedBytes(opts.cache, body.data);
      if (cached) whole = (await cached).subarray(body.start, body.end);
      else if (!body.data.local) first = await body.data.read(body.start, chunkLength(body.data, body.start, body.end, STREAM_CHUNK));
    } catch (err) {
      logAccess(opts, { ...entry, status: 503, note: "source read failed" });
      res.writeHead(503, UNAVAILABLE_HEADERS).end(unavailableText(err));
      return;
    }
  }
  res.writeHead(response.status, response.headers);
  // What went on the wire: bytes written, and the framing when it is not Content-Length.
  let sent = 0;
  res.on("close", () => {
    // Node's writeHead(status, headers) sends the headers without keeping them (hasHeader is false there).
    const length = "content-length" in response.headers || res.hasHeader("content-length");
    const framing = length ? undefined : res.chunkedEncoding ? "chunked" : "close-delimited";
    const notes = [entry.note, res.writableFinished ? undefined : "aborted", framing && `framing: ${framing}`].filter(Boolean);
    logAccess(opts, { ...entry, bytes: sent, note: notes.length ? notes.join(", ") : undefined, framing, aborted: !res.writableFinished });
  });
  if (!body || (body.kind === "file" && body.end === body.start)) {
    res.end();
    return;
  }
  if (whole && whole.length <= STREAM_CHUNK) {
    sent = whole.length;
    res.end(whole);
    return;
  }
  if (whole) {
    // A cached file in 1 MiB pieces as the socket drains: under Bun, node:http copies what it is handed,
    // and a whole module per client was 1.3 GB of RSS in a storm of 50 (now about one piece per client).
    for (let at = 0; at < whole.length && !res.destroyed; at += STREAM_CHUNK) {
      const piece = whole.subarray(at, Math.min(whole.length, at + STREAM_CHUNK));
      sent += piece.length;
      if (!res.write(piece)) await drained(res);
    }
    res.end();
    return;
  }
  if (body.kind !== "file") return;
  const { data, start, end } = body;
  if (data.local) {
    const path = data.local.path;
    await sendFileWindow(res, path, data.local.offset + start, data.local.offset + end, (n) => (sent += n)).catch((err) => {
      opts.log.warn(`${response.path}: ${path}: read failed mid-transfer: ${(err as Error).message}`);
      res.destroy();
    });
    return;
  }
  try {
    let pos = start;
    if (first) {
      pos += first.length;
      sent += first.length;
      if (!res.write(first)) await drained(res);
    }
    while (pos < end && !res.destroyed) {
      const n = chunkLength(data, pos, end, STREAM_CHUNK);
      const chunk = await data.read(pos, n);
      pos += n;
      sent += n;
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  } catch (err) {
    opts.log.warn(`${response.path}: read failed mid-transfer: ${(err as Error).message}`);
    res.destroy();
  }
}

/**
 * A window of a local file through node:http (Node, or any URL/zip image under Bun) in 1 MiB pieces read
 * into two buffers used in turn: the next piece is read while the socket drains the last, and a buffer is
 * read into again only after its write has reached the socket (the write callback), so nothing is
 * allocated per piece. createReadStream's fresh buffer per read cost page faults and about half the
 * throughput (949 against 2204 MB/s for an image completed in --cache-dir, served by the same process).
 */
async function sendFileWindow(res: ServerResponse, path: string, from: number, to: number, onSent: (n: number) => void): Promise<void> {
  const fh = await open(path, "r");
  try {
    // A small file needs one buffer of its own size; a large one two of 1 MiB.
    const piece = Math.min(STREAM_CHUNK, to - from);
    const buffers = [new Uint8Array(piece), new Uint8Array(to - from > piece ? piece : 0)];
    const written: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
    let accepted: Promise<void> = Promise.resolve(); // the socket wants more (no back-pressure)
    // A write to a response the client closed may never call back.
    let gone = res.destroyed;
    const closed = new Promise<void>((resolve) => res.once("close", () => ((gone = true), resolve())));
    for (let pos = from, i = 0; pos < to && !gone; pos += STREAM_CHUNK, i ^= 1) {
      await Promise.race([written[i], closed]);
      const want = Math.min(STREAM_CHUNK, to - pos);
      const { bytesRead } = await fh.read(buffers[i]!, 0, want, pos);
      if (bytesRead !== want) throw new Error(`short read at ${pos} (${bytesRead} of ${want} bytes)`);
      await accepted;
      if (gone || res.destroyed) break;
      onSent(want);
      let ok = true;
      written[i] = new Promise<void>((resolve) => (ok = res.write(buffers[i]!.subarray(0, want), () => resolve())));
      accepted = ok ? Promise.resolve() : drained(res);
    }
    await accepted;
    if (!gone && !res.destroyed) res.end();
  } finally {
    await fh.close();
  }
}

/** The socket took what was written, or the client went away (a 'drain' that never comes must not hang). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
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

/** A node:http request's body, at most `limit` bytes (the rest is not read). */
function readNodeBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      if (n >= limit) return;
      chunks.push(c.subarray(0, limit - n));
      n += Math.min(c.length, limit - n);
    });
    req.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on("error", reject);
  });
}
