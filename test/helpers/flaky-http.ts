/**
 * An HTTP server the test controls, on loopback, serving one file by Range the way a real server does (206,
 * Content-Range, ETag, If-Match), and misbehaving on demand: dropping connections mid-body, ignoring Range,
 * changing the file (and its ETag) after some requests, or answering 404. Counts what it was asked.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FlakyOptions {
  /** Requests (by their 1-based number) whose body is cut off halfway and the socket destroyed. */
  dropBody?: (n: number) => boolean;
  /** Always 200 with the whole file, whatever Range says. */
  ignoreRange?: boolean;
  /** After this many requests the file's bytes and ETag change. */
  changeAfter?: number;
  notFound?: boolean;
  /** Never answer 412 to If-Match (some object stores and proxies do not implement it). */
  ignoreIfMatch?: boolean;
  /** Send no ETag and no Last-Modified. */
  noValidators?: boolean;
}

export interface Flaky {
  url: string;
  /** "GET bytes=0-1048575 206", in order. */
  log: string[];
  /** From now on the file's bytes and ETag are different. */
  change(): void;
  stop(): Promise<void>;
}

export async function startFlaky(file: Uint8Array, opts: FlakyOptions = {}, name = "esxi.iso"): Promise<Flaky> {
  const log: string[] = [];
  let changedNow = false;
  const changed = new Uint8Array(file.length).fill(0xee);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const n = log.length + 1;
    const range = req.headers.range;
    const after = changedNow || (opts.changeAfter !== undefined && n > opts.changeAfter);
    const body = after ? changed : file;
    const etag = after ? '"v2"' : '"v1"';
    const note = (status: number) => log.push(`${req.method} ${range ?? "-"} ${status}`);
    if (opts.notFound || req.url !== `/${name}`) {
      note(404);
      res.writeHead(404).end("not found");
      return;
    }
    const headers: Record<string, string> = opts.noValidators ? {} : { etag, "last-modified": new Date(after ? 2_000_000_000_000 : 1_700_000_000_000).toUTCString() };
    const m = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
    if (opts.ignoreRange || !m) {
      note(200);
      res.writeHead(200, { ...headers, "content-length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    const ifMatch = req.headers["if-match"];
    if (ifMatch && !opts.noValidators && !opts.ignoreIfMatch && ifMatch !== etag) {
      note(412);
      res.writeHead(412).end();
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(body.length - 1, m[2] ? Number(m[2]) : body.length - 1);
    if (start >= body.length) {
      note(416);
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
    const slice = body.subarray(start, end + 1);
    res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${body.length}`, "content-length": String(slice.length) });
    if (opts.dropBody?.(n) && slice.length > 1) {
      note(-206);
      res.write(slice.subarray(0, slice.length >> 1), () => res.socket?.destroy());
      return;
    }
    note(206);
    res.end(slice);
  };
  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/${name}`,
    log,
    change: () => void (changedNow = true),
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}
