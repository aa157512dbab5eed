/**
 * HTTP edge: serves the runtime-neutral app (handler.ts) with Bun.serve under Bun (bun-edge.ts: file
 * ranges go out by sendfile) or node:http (node-edge.ts: file ranges in 1 MiB reads into two reused
 * buffers). One access log line per request, and the booting clients' requests as events (edge.ts).
 */
import type { HttpServerHandle, HttpServerOptions } from "./edge.ts";
import type { HttpRequest, HttpResponse } from "./handler.ts";

export type { AccessEntry, HttpServerHandle, HttpServerOptions } from "./edge.ts";
export { accessLine } from "./edge.ts";

export interface ServingHttp extends HttpServerHandle {
  /** Starts answering (when bound without an app): requests that arrived meanwhile wait for it. */
  serve(app: HttpApp): void;
}

type HttpApp = (req: HttpRequest) => Promise<HttpResponse>;

/**
 * `runtime` (--http-edge) chooses the edge; else node:http when some bytes served are not in local files
 * (`allLocal` false: a URL source), since Bun.serve sends a stream chunked whatever Content-Length says
 * and mboot trusts Content-Length; else NETBOOT_HTTP_EDGE (tests run both), else Bun's under Bun.
 */
export async function startHttpServer(opts: Omit<HttpServerOptions, "app"> & { app?: HttpApp; allLocal?: boolean }): Promise<ServingHttp> {
  const forced = process.env.NETBOOT_HTTP_EDGE;
  const runtime = opts.runtime ?? (opts.allLocal === false ? "node" : forced === "bun" || forced === "node" ? forced : typeof Bun !== "undefined" ? "bun" : "node");
  // Bound before it serves: a request waits for the app (and once it is there, goes straight to it).
  let app = opts.app;
  let serve = (_: HttpApp) => {};
  const ready = app ? Promise.resolve(app) : new Promise<HttpApp>((resolve) => (serve = (a) => resolve((app = a))));
  const edge = { ...opts, ready, app: (req: HttpRequest) => (app ? app(req) : ready.then((a) => a(req))) };
  const handle = runtime === "bun" ? (await import("./bun-edge.ts")).startBunEdge(edge) : await (await import("./node-edge.ts")).startNodeEdge(edge);
  return { port: handle.port, host: handle.host, close: () => handle.close(), serve: (a) => serve(a) };
}
