/**
 * ByteSource over an ISO at an http(s) URL, read in place by Range requests: the blocks, their read-ahead
 * and the write-behind here; the HTTP clients in url/transport.ts, the checked requests in url/probe.ts,
 * the memory in url/blocks.ts, the disk cache in url/disk-cache.ts.
 *
 * - The HTTP client: undici on Node; under Bun, Bun's native fetch by default, because on this machine it
 *   moves Range bodies about four times faster than undici running on Bun's sockets (~2000 vs ~450 MB/s on
 *   one CPU; `npm run bench -- sources` prints both). NETBOOT_URL_CLIENT=undici|fetch picks one; the
 *   tests run the same cases through both.
 * - Blocks of 1 MiB: one request moves enough bytes to amortise its round trip, and start-up (volume
 *   descriptors and directories) still costs only a few blocks.
 * - Memory: an LRU of blocks bounded at 64 MiB by default. Whole hot files are kept above this layer by
 *   the hot-file cache (--cache-mem); this one only has to hold what concurrent sequential streams read
 *   ahead (16 streams × 4 blocks) and the directory blocks, so more would only duplicate.
 * - --cache-dir: blocks also go to a sparse file keyed by URL + ETag/Last-Modified + size, with a byte
 *   per block saying it is there (written after the block). A restart reads them from disk; once every
 *   block is there the file is the image and the servers use it like a local ISO (sendfile).
 * - Concurrent reads of one block share one request; sequential reads fetch the next blocks ahead.
 * - Retries with exponential backoff for dropped connections, short bodies, 5xx and 429.
 * - Every response is checked: 206, the exact Content-Range, the same total size and validator as at
 *   start (and If-Match sent). A server that ignores Range (200), or a file that changed (412, another
 *   ETag or size), is reported and the source refuses all further reads: never bytes of two versions.
 */
import { createHash } from "node:crypto";
import { LIMITS, redactUrl } from "../config.ts";
import { SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ByteSource } from "./source.ts";
import { BlockLru, Limiter } from "./url/blocks.ts";
import { openDiskCache, WriteBehind } from "./url/disk-cache.ts";
import { fetchRangeRetrying, probeUrl, type Probe } from "./url/probe.ts";
import { fetchTransport, undiciTransport } from "./url/transport.ts";

export { parseContentRange } from "./url/probe.ts";

export interface UrlSourceOptions {
  blockSize?: number;
  /** Bytes of blocks kept in memory. */
  memoryBytes?: number;
  /** Blocks fetched ahead of a sequential reader. */
  readAhead?: number;
  /** Requests in flight at once. */
  maxConcurrent?: number;
  /** Tries after the first for one block. */
  retries?: number;
  /** First backoff; doubles each try, capped at 5 s. */
  backoffMs?: number;
  /** Headers and body timeout of one request. */
  timeoutMs?: number;
  /** Disk cache directory (--cache-dir). */
  cacheDir?: string | undefined;
  /** With cacheDir: fetch the blocks nobody asked for in the background, so the file becomes complete and
   * is served like a local ISO from then on (default true). */
  fill?: boolean;
  log?: Logger;
  /** "undici" or "fetch" (Bun's native one); default: fetch under Bun, undici on Node. */
  client?: UrlClient | undefined;
}

export type UrlClient = "undici" | "fetch";

export function defaultUrlClient(): UrlClient {
  const forced = process.env.NETBOOT_URL_CLIENT;
  if (forced === "undici" || forced === "fetch") return forced;
  return typeof Bun !== "undefined" ? "fetch" : "undici";
}

export interface UrlSourceStats {
  requests: number;
  retries: number;
  bytesFetched: number;
  memoryHits: number;
  diskHits: number;
}

export interface UrlSource extends ByteSource {
  readonly stats: UrlSourceStats;
  /** Blocks on disk / all blocks, when --cache-dir is used. */
  readonly diskCache: { path: string; present: number; blocks: number } | undefined;
}


export async function openUrlSource(url: string, options: UrlSourceOptions = {}): Promise<UrlSource> {
  const o = { ...LIMITS.url, ...options };
  const shown = redactUrl(url, "credentials");
  const client = o.client ?? defaultUrlClient();
  const transport = client === "fetch" ? fetchTransport(o.timeoutMs) : await undiciTransport(o.maxConcurrent, o.timeoutMs);
  const closeAgent = () => transport.close().catch(() => {});

  // --- what the server says about the file ---
  let probe: Probe;
  try {
    probe = await probeUrl(url, shown, transport, o);
  } catch (err) {
    await closeAgent();
    throw err;
  }
  const { size, etag, lastModified } = probe;
  const blockSize = o.blockSize;
  const blocks = Math.ceil(size / blockSize);
  const validator = etag ?? lastModified ?? "";
  const version = createHash("sha256").update(`${url}\n${validator}\n${size}`).digest("hex").slice(0, 24);
  if (!etag && !lastModified) o.log?.warn(`${shown}: the server sends neither ETag nor Last-Modified; a change of the file can only be noticed by its size`);

  let broken: SourceError | undefined;
  const stats: UrlSourceStats = { requests: 0, retries: 0, bytesFetched: 0, memoryHits: 0, diskHits: 0 };
  const memory = new BlockLru(o.memoryBytes);
  const inflight = new Map<number, Promise<Uint8Array>>();
  const limiter = new Limiter(o.maxConcurrent);
  const disk = o.cacheDir ? await openDiskCache(o.cacheDir, version, { url: shown, etag, lastModified, size, blockSize }, blocks).catch((err) => {
    o.log?.warn(`--cache-dir ${o.cacheDir}: ${(err as Error).message}; reading ${shown} without a disk cache`);
    return undefined;
  }) : undefined;
  if (disk) o.log?.info(`${shown}: disk cache ${disk.path} (${disk.present}/${blocks} blocks there)`);
  let recent: number[] = [];

  const fetchBlock = (k: number): Promise<Uint8Array> =>
    fetchRangeRetrying({ url, shown, transport, probe, retries: o.retries, backoffMs: o.backoffMs, log: o.log, stats }, k * blockSize, Math.min(size, (k + 1) * blockSize), {
      broken: () => broken,
      breakWith: (err) => (broken = err),
    });

  const behind = disk ? new WriteBehind(disk, (m) => o.log?.warn(`disk cache: ${m}`), () => o.log?.debug(`${shown}: disk cache busy, some blocks are not cached on this pass`)) : undefined;
  const writeBehind = (k: number, b: Uint8Array) => behind?.offer(k, b);

  /** One block, from memory, disk or the network; concurrent callers share one fetch. */
  const block = (k: number, demanded: boolean): Promise<Uint8Array> | undefined => {
    const m = memory.get(k);
    if (m) {
      if (demanded) stats.memoryHits++;
      return Promise.resolve(m);
    }
    const pending = inflight.get(k);
    if (pending) return pending;
    if (!demanded && (!limiter.free() || disk?.has(k))) return undefined; // read-ahead only when idle, never from disk
    const p = (async () => {
      if (disk?.has(k)) {
        const b = await disk.read(k, blockLength(k));
        stats.diskHits++;
        return b;
      }
      const b = await limiter.run(() => fetchBlock(k));
      if (disk) writeBehind(k, b);
      return b;
    })();
    inflight.set(k, p);
    p.then(
      (b) => {
        memory.set(k, b);
        inflight.delete(k);
      },
      () => inflight.delete(k),
    );
    return p;
  };
  const blockLength = (k: number) => Math.min(size, (k + 1) * blockSize) - k * blockSize;

  const readAhead = (first: number, last: number) => {
    // Sequential: the block before this read was asked for lately. Then fetch the next few now.
    const sequential = recent.includes(first - 1);
    recent = [last, ...recent.filter((r) => r !== last)].slice(0, 64);
    if (!sequential) return;
    for (let n = last + 1; n <= Math.min(blocks - 1, last + o.readAhead); n++) block(n, false)?.catch(() => {});
  };

  let closed = false;

  // --- background fill of the disk cache: one block at a time, only after half a second without demand ---
  let lastDemand = 0;
  const idle = () => limiter.active === 0 && performance.now() - lastDemand > 500 && !behind!.busy;
  const fill = async () => {
    for (let round = 0; round < 3 && disk && disk.present < blocks; round++) {
      for (let k = 0; k < blocks; k++) {
        if (closed || broken) return;
        if (disk.has(k)) continue;
        const held = memory.get(k);
        if (held) {
          writeBehind(k, held);
          continue;
        }
        while (!closed && !idle()) await sleep(100);
        if (closed) return;
        await limiter.run(() => fetchBlock(k)).then(
          (b) => writeBehind(k, b),
          () => {},
        );
      }
      await behind!.drain();
    }
    if (disk && disk.present === blocks && !closed) o.log?.info(`${shown}: complete in ${disk.path}; served from there from now on`);
  };
  const filling = disk && (o.fill ?? true) && disk.present < blocks ? sleep(200).then(fill) : Promise.resolve();

  return {
    size,
    align: { unit: blockSize, offset: 0 },
    get localPath() {
      return disk && disk.present === blocks ? disk.path : undefined;
    },
    mtime: lastModified ? new Date(lastModified) : undefined,
    version,
    description: `${shown} (${size} bytes${etag ? `, ETag ${etag}` : lastModified ? `, Last-Modified ${lastModified}` : ""}; ${client})`,
    stats,
    get diskCache() {
      return disk ? { path: disk.path, present: disk.present, blocks } : undefined;
    },
    async read(offset, length) {
      if (closed) throw new SourceError("E_SOURCE_CLOSED", `${shown}: source is closed`);
      if (broken) throw broken;
      if (offset < 0 || length < 0 || offset + length > size) throw new SourceError("E_SOURCE_RANGE", `${shown}: read of ${length} bytes at ${offset} is past the end (${size} bytes)`);
      if (length === 0) return new Uint8Array(0);
      lastDemand = performance.now();
      // The whole file is on disk: one positional read, no block bookkeeping.
      if (disk && disk.present === blocks) return disk.readAt(offset, length);
      const first = Math.floor(offset / blockSize);
      const last = Math.floor((offset + length - 1) / blockSize);
      const parts = await Promise.all(Array.from({ length: last - first + 1 }, (_, i) => block(first + i, true)!));
      readAhead(first, last);
      if (parts.length === 1) return parts[0]!.subarray(offset - first * blockSize, offset - first * blockSize + length);
      const out = new Uint8Array(length);
      let at = 0;
      parts.forEach((b, i) => {
        const from = i === 0 ? offset - first * blockSize : 0;
        const to = Math.min(b.length, offset + length - (first + i) * blockSize);
        out.set(b.subarray(from, to), at);
        at += to - from;
      });
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...inflight.values()]);
      await filling.catch(() => {});
      await closeAgent();
      await behind?.drain();
      await disk?.close();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
