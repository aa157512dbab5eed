/**
 * The URL source's requests and what it checks in every answer: the probe (a Range GET of byte 0: size,
 * validator, range support) and each block's GET (206, the exact Content-Range, the same size and
 * validator as at start, If-Match sent). A file that changed, or a server that stopped honouring Range,
 * breaks the source for good: never bytes of two versions.
 */
import { SourceError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { describeNetError, type RangeResponse, type Transport } from "./transport.ts";

export interface Probe {
  size: number;
  etag: string | undefined;
  lastModified: string | undefined;
}


/** The first request: GET of byte 0 with Range. Says whether the server can do what we need. */
export async function probeUrl(url: string, shown: string, transport: Transport, o: { backoffMs: number }): Promise<Probe> {
  let res: RangeResponse;
  let lastErr: unknown;
  for (let attempt = 0; ; attempt++) {
    try {
      res = await transport.get(url, { range: "bytes=0-0", "user-agent": "netboot" });
      break;
    } catch (err) {
      lastErr = err;
      if (attempt >= 2) throw new SourceError("E_URL_UNREACHABLE", `cannot reach ${shown}: ${describeNetError(lastErr)}`);
      await new Promise((r) => setTimeout(r, o.backoffMs * 2 ** attempt));
    }
  }
  const status = res.status;
  if (status === 206) {
    const range = parseContentRange(res.header("content-range"));
    await res.discard();
    if (!range || range.start !== 0 || range.total === undefined) throw new SourceError("E_URL_NO_RANGE", `${shown}: the server answered a Range request without a usable Content-Range (${res.header("content-range") ?? "none"})`);
    return { size: range.total, etag: strongEtag(res.header("etag")), lastModified: res.header("last-modified") };
  }
  await res.discard();
  if (status === 200) {
    throw new SourceError("E_URL_NO_RANGE", `${shown}: the server ignores Range requests (it answered 200 with the whole file); netboot reads the ISO in place and needs a server with range support`);
  }
  if (status === 404 || status === 410) throw new SourceError("E_SOURCE_NOT_FOUND", `${shown}: not found (HTTP ${status})`);
  if (status === 416) throw new SourceError("E_SOURCE_EMPTY", `${shown}: the file is empty (HTTP 416 for its first byte)`);
  throw new SourceError("E_URL_STATUS", `${shown}: the server answered HTTP ${status}`);
}

/** Bytes [start, end) of the file, checked against what the probe saw. */
async function getRange(url: string, shown: string, transport: Transport, start: number, end: number, probe: Probe): Promise<Uint8Array> {
  const headers: Record<string, string> = { range: `bytes=${start}-${end - 1}`, "user-agent": "netboot" };
  if (probe.etag) headers["if-match"] = probe.etag;
  let res: RangeResponse;
  try {
    res = await transport.get(url, headers);
  } catch (err) {
    throw new SourceError("E_URL_NET", describeNetError(err), { cause: err });
  }
  const status = res.status;
  if (status !== 206) {
    await res.discard();
    if (status === 412) throw changed(shown, probe, "the server says the ETag no longer matches (412)");
    if (status === 200) throw new SourceError("E_URL_NO_RANGE", `${shown}: the server stopped honouring Range requests (200 for bytes ${start}-${end - 1}); not serving the image any further`);
    throw new SourceError(status >= 500 || status === 429 || status === 408 ? "E_URL_RETRY" : "E_URL_STATUS", `${shown}: HTTP ${status} for bytes ${start}-${end - 1}`);
  }
  const range = parseContentRange(res.header("content-range"));
  const etag = strongEtag(res.header("etag"));
  const lastModified = res.header("last-modified");
  if (range?.total !== undefined && range.total !== probe.size) {
    await res.discard();
    throw changed(shown, probe, `its size went from ${probe.size} to ${range.total} bytes`);
  }
  if (probe.etag && etag && etag !== probe.etag) {
    await res.discard();
    throw changed(shown, probe, `ETag ${probe.etag} became ${etag}`);
  }
  if (!probe.etag && probe.lastModified && lastModified && lastModified !== probe.lastModified) {
    await res.discard();
    throw changed(shown, probe, `Last-Modified ${probe.lastModified} became ${lastModified}`);
  }
  if (!range || range.start !== start || range.end !== end - 1) {
    await res.discard();
    throw new SourceError("E_URL_RETRY", `${shown}: asked bytes ${start}-${end - 1}, got Content-Range ${res.header("content-range") ?? "(none)"}`);
  }
  let body: Uint8Array;
  try {
    body = await res.bytes();
  } catch (err) {
    throw new SourceError("E_URL_NET", `connection lost in bytes ${start}-${end - 1}: ${describeNetError(err)}`, { cause: err });
  }
  if (body.length !== end - start) throw new SourceError("E_URL_RETRY", `${shown}: bytes ${start}-${end - 1}: the body had ${body.length} bytes, not ${end - start}`);
  return body;
}

function changed(shown: string, probe: Probe, how: string): SourceError {
  return new SourceError("E_SOURCE_CHANGED", `${shown} changed while being served (${how}); restart netboot to serve the new file`);
}

function retryable(err: SourceError): boolean {
  return err.code === "E_URL_NET" || err.code === "E_URL_RETRY";
}

/** A weak ETag (W/"…") cannot vouch for bytes; only strong ones are used. */
function strongEtag(v: string | undefined): string | undefined {
  return v && !v.startsWith("W/") ? v : undefined;
}

export function parseContentRange(v: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = v && /^bytes (\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

export interface RangeRequest {
  url: string;
  /** The URL as logs may show it (redacted). */
  shown: string;
  transport: Transport;
  probe: Probe;
  retries: number;
  backoffMs: number;
  log: Logger | undefined;
  stats: { requests: number; retries: number; bytesFetched: number };
}

/**
 * Bytes [start, end), tried again with exponential backoff (jittered, capped at 5 s) for dropped
 * connections, short bodies, 5xx and 429. A changed file or a server that stopped honouring Range breaks
 * the source (`breakWith`): no later read is tried.
 */
export async function fetchRangeRetrying(r: RangeRequest, start: number, end: number, state: { broken(): SourceError | undefined; breakWith(err: SourceError): void }): Promise<Uint8Array> {
  let lastErr: unknown;
  for (let attempt = 0; attempt <= r.retries; attempt++) {
    const broken = state.broken();
    if (broken) throw broken;
    if (attempt > 0) {
      r.stats.retries++;
      await new Promise((res) => setTimeout(res, Math.min(5000, r.backoffMs * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5)));
    }
    try {
      r.stats.requests++;
      const bytes = await getRange(r.url, r.shown, r.transport, start, end, r.probe);
      r.stats.bytesFetched += bytes.length;
      return bytes;
    } catch (err) {
      if (err instanceof SourceError && (err.code === "E_SOURCE_CHANGED" || err.code === "E_URL_NO_RANGE")) {
        state.breakWith(err);
        r.log?.error(err.message);
        throw err;
      }
      if (err instanceof SourceError && !retryable(err)) throw err;
      lastErr = err;
      r.log?.debug(`${r.shown}: bytes ${start}-${end - 1} try ${attempt + 1} failed: ${(err as Error).message}`);
    }
  }
  throw new SourceError("E_URL_READ", `${r.shown}: bytes ${start}-${end - 1} could not be read after ${r.retries + 1} tries: ${(lastErr as Error)?.message ?? lastErr}`);
}
