/**
 * The HTTP application, independent of the server runtime: a request (method, path, headers) in, a response
 * description out. The edges (server.ts) render it with Bun.serve or node:http.
 */
import type { BootFiles, ClientHint, FileKind } from "../boot/files.ts";
import { checkRequestPath, httpPathRules } from "../files/paths.ts";
import type { FileData } from "../files/tree.ts";
import type { Mac } from "../wire/mac.ts";
import { ifRangeMatches, noneMatch, resolveRange } from "./range.ts";

export interface HttpRequest {
  method: string;
  /** Request target as sent (path and query). */
  target: string;
  header(name: string): string | null | undefined;
  remoteAddress: string | undefined;
  /** The request body (POST), read whole, at most `limit` bytes (longer ones are cut). */
  body?: (limit: number) => Promise<Uint8Array>;
}

export type HttpBody =
  | { kind: "bytes"; bytes: Uint8Array }
  /** [start, end) of a file: the edge streams it (sendfile for local files). */
  | { kind: "file"; data: FileData; start: number; end: number }
  /**
   * An open-ended stream (Server-Sent Events for browsers and `curl -N`), the one answer without a
   * Content-Length: `open` starts it, `send` returns false once the client is gone, the returned function
   * stops it. No boot file is ever sent this way.
   */
  | { kind: "stream"; open(send: (chunk: Uint8Array) => boolean, end: () => void): () => void };

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  /** Absent for HEAD, 304, 416 … ; Content-Length is always set in headers. */
  body: HttpBody | undefined;
  /** For the access log. */
  path: string;
  /** The MAC the answer was for, when the path names it (01-<mac>/…) or the client's address is known. */
  mac: Mac | undefined;
  note: string | undefined;
  /** What kind of boot file was answered (boot/files.ts), for the event bus. */
  kind?: FileKind | undefined;
  /** The image it came from. */
  image?: string | undefined;
}

/** The status page, the API and the metrics: requests of the operator (and CI), not of a booting client. */
export function isOperatorPath(path: string): boolean {
  return path === "/" || path === "/metrics" || path === "/favicon.ico" || path.startsWith("/api/");
}

/** Extra routes served next to the boot files (iPXE script, status page, …): return undefined to pass. */
export type HttpRoute = (parts: readonly string[], req: HttpRequest, client: ClientHint) => Promise<HttpRoutedFile | undefined>;
export interface HttpRoutedFile {
  data: FileData;
  contentType?: string;
  mac?: Mac | undefined;
  noStore?: boolean;
}

export interface HttpAppOptions {
  files: BootFiles;
  routes?: readonly HttpRoute[];
  /** The API (/api/…, /metrics, the status page at /): asked first, any method; undefined passes to the files. */
  api?: (parts: readonly string[], req: HttpRequest, client: ClientHint) => Promise<HttpResponse | undefined>;
  /** MAC the server learned for a client address (from its DHCP traffic). */
  macForAddress?: (address: string) => Mac | undefined;
  serverName?: string;
}

export function createHttpApp(opts: HttpAppOptions): (req: HttpRequest) => Promise<HttpResponse> {
  const server = opts.serverName ?? "netboot";
  return async (req) => {
    const path = req.target.split("?")[0]!.split("#")[0]!;
    const base = { path, mac: undefined as Mac | undefined, note: undefined as string | undefined };
    const simple = (status: number, text: string, extra: Record<string, string> = {}): HttpResponse => {
      const bytes = new TextEncoder().encode(text + "\n");
      return {
        ...base,
        status,
        headers: { "content-type": "text/plain; charset=utf-8", "content-length": String(bytes.length), server, ...extra },
        body: req.method === "HEAD" ? undefined : { kind: "bytes", bytes },
        note: text,
      };
    };

    if (!path.startsWith("/")) return simple(400, "bad request target");
    const checked = checkRequestPath(path, httpPathRules);
    if (!checked.ok) return simple(400, `bad path: ${checked.reason}`);
    const parts = checked.parts;
    const address = req.remoteAddress;
    const client: ClientHint = { address, mac: address ? opts.macForAddress?.(address) : undefined };
    const api = await opts.api?.(parts, req, client);
    if (api) return api;
    if (req.method !== "GET" && req.method !== "HEAD") return simple(405, "method not allowed", { allow: "GET, HEAD" });

    for (const route of opts.routes ?? []) {
      const r = await route(parts, req, client);
      if (r) return fileResponse(req, r.data, { ...base, mac: r.mac }, server, r.contentType ?? contentType(path), r.noStore ?? true);
    }

    if (parts.length === 0 || (parts.length === 1 && parts[0]!.toLowerCase() === "images" && !opts.files.config.images.some((i) => i.name.toLowerCase() === "images"))) {
      if (parts.length === 1 && !path.endsWith("/")) return simple(301, "moved", { location: `${path}/` });
      return index(req, opts.files, base, server);
    }
    const resolved = await opts.files.resolve(parts, client);
    if (resolved.result === "missing") return { ...simple(404, "not found"), mac: resolved.mac, note: resolved.reason, kind: resolved.kind };
    if (resolved.result === "forbidden") return { ...simple(403, "forbidden"), mac: resolved.mac, note: resolved.reason, kind: resolved.kind, image: resolved.image?.name };
    if (resolved.result === "directory") {
      if (!path.endsWith("/")) return simple(301, "moved", { location: `${path}/` });
      return listing(req, resolved.image.tree.list(resolved.info.path), path, base, server);
    }
    // Generated answers (boot.cfg per client, the iPXE script, a kickstart) must not be cached on the way.
    const generated = resolved.generated && resolved.data.local === undefined;
    return { ...fileResponse(req, resolved.data, { ...base, mac: resolved.mac, note: resolved.kind === "module" ? undefined : resolved.kind }, server, contentType(path), generated), kind: resolved.kind, image: resolved.image?.name };
  };
}

/** Content types that matter to firmware: edk2's HTTP boot goes by application/efi or the .efi extension. */
/** A small answer with its Content-Length (text, JSON, metrics), for the API and errors. */
export function textResponse(req: HttpRequest, status: number, text: string, type = "text/plain; charset=utf-8", extra: Partial<HttpResponse> = {}): HttpResponse {
  const bytes = new TextEncoder().encode(text);
  return {
    status,
    headers: { "content-type": type, "content-length": String(bytes.length), "cache-control": "no-store", server: "netboot" },
    body: req.method === "HEAD" ? undefined : { kind: "bytes", bytes },
    path: req.target.split("?")[0]!,
    mac: undefined,
    note: undefined,
    ...extra,
  };
}

export function contentType(path: string): string {
  const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
  switch (ext) {
    case "efi":
      return "application/efi";
    case "cfg":
    case "txt":
    case "ipxe":
      return "text/plain; charset=utf-8";
    case "html":
      return "text/html; charset=utf-8";
    case "json":
      return "application/json";
    case "iso":
      // UEFI HTTP boot loads a URL of this type as a RAM disk and boots it as a CD (edk2
      // NetworkPkg/HttpBootDxe/HttpBootSupport.c HttpBootCheckImageType; UEFI 2.8 §24.7.2).
      return "application/vnd.efi-iso";
    default:
      return "application/octet-stream";
  }
}

// --- internal ---

function fileResponse(
  req: HttpRequest,
  data: FileData,
  base: { path: string; mac: Mac | undefined; note: string | undefined },
  server: string,
  type: string,
  noStore: boolean,
): HttpResponse {
  const headers: Record<string, string> = {
    server,
    "content-type": type,
    "accept-ranges": "bytes",
    etag: data.etag,
  };
  if (data.mtime) headers["last-modified"] = data.mtime.toUTCString();
  // Generated files (boot.cfg per client) must not be cached by proxies between firmware and us.
  if (noStore) headers["cache-control"] = "no-store";

  if (noneMatch(req.header("if-none-match"), data.etag) || (!req.header("if-none-match") && notModifiedSince(req.header("if-modified-since"), data.mtime))) {
    return { ...base, status: 304, headers, body: undefined };
  }
  const size = data.size;
  const range = ifRangeMatches(req.header("if-range"), data.etag, data.mtime) ? resolveRange(req.header("range"), size) : { kind: "full" as const };
  if (range.kind === "unsatisfiable") {
    headers["content-range"] = `bytes */${size}`;
    headers["content-length"] = "0";
    return { ...base, status: 416, headers, body: undefined };
  }
  const start = range.kind === "partial" ? range.start : 0;
  const end = range.kind === "partial" ? range.end : size;
  headers["content-length"] = String(end - start);
  if (range.kind === "partial") headers["content-range"] = `bytes ${start}-${end - 1}/${size}`;
  return {
    ...base,
    status: range.kind === "partial" ? 206 : 200,
    headers,
    body: req.method === "HEAD" ? undefined : { kind: "file", data, start, end },
  };
}

function notModifiedSince(header: string | null | undefined, mtime: Date | undefined): boolean {
  if (!header || !mtime) return false;
  const t = Date.parse(header);
  return !Number.isNaN(t) && Math.floor(mtime.getTime() / 1000) * 1000 <= t;
}

function html(req: HttpRequest, title: string, items: string[], base: { path: string; mac: Mac | undefined; note: string | undefined }, server: string): HttpResponse {
  const text = `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title><h1>${esc(title)}</h1><ul>\n${items.join("\n")}\n</ul>\n`;
  const bytes = new TextEncoder().encode(text);
  return {
    ...base,
    status: 200,
    headers: { server, "content-type": "text/html; charset=utf-8", "content-length": String(bytes.length), "cache-control": "no-store" },
    body: req.method === "HEAD" ? undefined : { kind: "bytes", bytes },
  };
}

function index(req: HttpRequest, files: BootFiles, base: { path: string; mac: Mac | undefined; note: string | undefined }, server: string): HttpResponse {
  const items = files.config.images.map((i) => {
    const label = i.esxi ? `${i.esxi.displayName}` : i.tree.kind;
    return `<li><a href="/${encodeURIComponent(i.name)}/">${esc(i.name)}</a>: ${esc(label)}${i.esxi ? ` — <a href="/${encodeURIComponent(i.name)}/boot.cfg">boot.cfg</a>` : ""}</li>`;
  });
  return html(req, "netboot: images", items, base, server);
}

async function listing(req: HttpRequest, entries: Promise<import("../files/tree.ts").FileInfo[]>, path: string, base: { path: string; mac: Mac | undefined; note: string | undefined }, server: string): Promise<HttpResponse> {
  const items = (await entries).map((e) => {
    const name = e.type === "dir" ? `${e.name}/` : e.name;
    return `<li><a href="${esc(encodeURI(path + name))}">${esc(name)}</a>${e.type === "file" ? ` ${e.size}` : ""}</li>`;
  });
  return html(req, `Index of ${path}`, items, base, server);
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
