/**
 * The Bun.serve edge: file windows go out by sendfile(2), everything else as bytes or a Blob, and never as
 * a stream (Bun.serve sends any stream chunked and drops its Content-Length, oven-sh/bun#10507; ESXi's
 * loader refuses an answer without one, esx-boot httpfile.c). The one exception is the status page's event
 * stream.
 */
import { LIMITS } from "../config.ts";
import type { ContentCache } from "../files/cache.ts";
import {
  bodyLength,
  BUSY_HEADERS,
  busyNotice,
  busyText,
  cutOff,
  limitsOf,
  listenError,
  logAccess,
  PerConnection,
  requestStarted,
  stripV4Mapped,
  UNAVAILABLE_HEADERS,
  unavailableText,
  worthCaching,
  type AccessEntry,
  type HttpServerHandle,
  type HttpServerOptions,
} from "./edge.ts";
import type { HttpBody } from "./handler.ts";

export function startBunEdge(opts: HttpServerOptions): HttpServerHandle {
  const limits = limitsOf(opts);
  const busy = busyNotice(opts, limits);
  const perConnection = new PerConnection(limits.requestsPerConnection);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: opts.host,
      port: opts.port,
      development: false,
      // Large ESXi modules over slow links: never cut a transfer for idleness below the TCP timeouts.
      idleTimeout: Math.min(255, limits.idleSeconds),
      // Request bodies are only the installer's log on failed_url.
      maxRequestBodySize: LIMITS.http.maxBody,
      async fetch(req, srv) {
        const url = req.url;
        const at = url.indexOf("/", url.indexOf("//") + 2);
        const target = at < 0 ? "/" : url.slice(at);
        const peer = srv.requestIP(req);
        const client = stripV4Mapped(peer?.address);
        // pendingRequests counts this one, and every answer until its last byte is sent.
        if (srv.pendingRequests > limits.maxActive) {
          await opts.ready;
          busy(client ?? "?");
          return new Response(busyText(limits.maxActive), { status: 503, headers: BUSY_HEADERS });
        }
        const last = perConnection.last(`${peer?.address}:${peer?.port}`);
        requestStarted(opts, client, req.method, target);
        const res = await opts.app({ method: req.method, target, header: (n) => req.headers.get(n), remoteAddress: client, body: async (limit) => new Uint8Array(await req.arrayBuffer()).subarray(0, limit) });
        const entry: AccessEntry = { client: client ?? "?", method: req.method, path: res.path, status: res.status, bytes: bodyLength(res.body), response: res, note: res.note };
        if (res.body?.kind === "stream") {
          logAccess(opts, { ...entry, note: "stream", framing: "chunked" });
          // A browser's event stream: never idle-timed out (the app sends a comment every 15 s anyway).
          srv.timeout(req, 0);
          return new Response(bunStream(res.body), { status: res.status, headers: res.headers });
        }
        let body: Uint8Array | Blob | null;
        try {
          body = await bunBody(res.body, opts.cache);
        } catch (err) {
          // Nothing sent yet: the client gets a status, not a truncated 200.
          logAccess(opts, { ...entry, status: 503, bytes: 0, note: "source read failed" });
          return new Response(unavailableText(err), { status: 503, headers: UNAVAILABLE_HEADERS });
        }
        logAccess(opts, entry);
        // A client that goes away mid-body: say so (how much of the body went out, Bun does not tell).
        if (entry.bytes > 0 && req.method !== "HEAD") {
          // Gone while the body was being read (a URL source, a big file): nothing will be sent at all.
          if (req.signal.aborted) cutOff(opts, entry);
          else req.signal.addEventListener("abort", () => cutOff(opts, entry), { once: true });
        }
        return new Response(body, { status: res.status, headers: last ? { ...res.headers, connection: "close" } : res.headers });
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

/** The status page's event stream, the one answer Bun may frame chunked (no loader ever asks for it). */
function bunStream(body: Extract<HttpBody, { kind: "stream" }>): ReadableStream<Uint8Array> {
  let stop: (() => void) | undefined;
  return new ReadableStream<Uint8Array>({
    start(ctrl) {
      let open = true;
      stop = body.open(
        (chunk) => {
          if (!open) return false;
          try {
            ctrl.enqueue(chunk);
            return true;
          } catch {
            open = false;
            return false;
          }
        },
        () => {
          if (open) ctrl.close();
          open = false;
        },
      );
    },
    cancel() {
      stop?.();
    },
  });
}

/**
 * The body to send, always as bytes or a file window: local windows go out by sendfile(2); anything else
 * is read into memory first (generated files already are; a request that touches the changed sectors of a
 * virtual image is a few sectors for iPXE's SAN reads, and a whole-image download takes one turn at a time).
 */
async function bunBody(body: HttpBody | undefined, cache: ContentCache | undefined): Promise<Uint8Array | Blob | null> {
  if (!body) return null;
  if (body.kind === "stream") return null;
  if (body.kind === "bytes") return body.bytes;
  const { data, start, end } = body;
  if (end === start) return new Uint8Array(0);
  if (data.bytes) return data.bytes.subarray(start, end);
  // One Blob per cached file, shared by every response (a Response of bytes would copy them each time).
  const blob = !worthCaching(data) ? undefined : cache?.get(`blob:${data.etag}`, data.size, async () => new Blob([await data.read(0, data.size)]));
  // The whole file is the Blob itself: Blob.slice copies an in-memory Blob's bytes, which a storm of
  // 1,000 machines fetching 4 MiB modules made a fifth of the event loop's time (bun --cpu-prof-md).
  if (blob) {
    const b = await blob;
    return start === 0 && end === b.size ? b : b.slice(start, end);
  }
  // A window on a local file: Bun sends it with sendfile(2), no copy through JS.
  if (data.local) return Bun.file(data.local.path).slice(data.local.offset + start, data.local.offset + end);
  const window = data.localWindow?.(start, end);
  if (window) return Bun.file(window.path).slice(window.offset, window.offset + (end - start));
  if (end - start <= LIMITS.http.memoryBody) return data.read(start, end - start);
  return bigBodies.run(() => data.read(start, end - start));
}

/** Bodies above LIMITS.http.memoryBody are read into memory one at a time, in arrival order. */
const bigBodies = {
  tail: Promise.resolve() as Promise<unknown>,
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  },
};
