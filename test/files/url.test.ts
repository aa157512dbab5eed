/**
 * The URL source against a server the test controls (test/helpers/flaky-http.ts): connections dropped
 * mid-body, Range ignored, the file changed mid-way, 404, nobody listening. Also: one fetch per block for
 * concurrent readers, read-ahead for sequential streams, the disk cache on a restart, and no credentials in
 * logs or errors.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { SourceError } from "../../src/errors.ts";
import { openIsoTree } from "../../src/files/iso.ts";
import { redactUrl } from "../../src/config.ts";
import { openUrlSource, parseContentRange } from "../../src/files/url.ts";
import { memoryLogger } from "../../src/log.ts";
import { freePort } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { startFlaky, type Flaky } from "../helpers/flaky-http.ts";
import { pseudoRandom } from "../helpers/iso.ts";
import { sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";

const KB = 1024;
const file = pseudoRandom(256 * KB + 123, 42); // 17 blocks of 16 KiB, the last one short
const blockSize = 16 * KB;
const clients = ["undici", "fetch"] as const;

let server: Flaky | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const blockGets = (s: Flaky) => s.log.filter((l) => l.startsWith("GET bytes=") && !l.startsWith("GET bytes=0-0 "));

for (const client of clients) {
  const fast = { blockSize, backoffMs: 5, readAhead: 0, client };

  describe(`URL source (${client}) against a well-behaved server`, () => {
    test("reads any range byte-exact; each block is fetched once", async () => {
      server = await startFlaky(file);
      const src = await openUrlSource(server.url, fast);
      try {
        expect(src.size).toBe(file.length);
        for (const [off, len] of [[0, 10], [blockSize - 5, 10], [3 * blockSize, 2 * blockSize + 7], [file.length - 100, 100], [0, file.length]] as const) {
          expect(sha256(await src.read(off, len))).toBe(sha256(file.subarray(off, off + len)));
        }
        expect(blockGets(server).length).toBe(Math.ceil(file.length / blockSize));
        expect(server.log.every((l) => !l.endsWith(" 200"))).toBe(true);
      } finally {
        await src.close();
      }
    });

    test("concurrent reads of the same block share one request", async () => {
      server = await startFlaky(file);
      const src = await openUrlSource(server.url, fast);
      try {
        const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => src.read(5 * blockSize + i * 100, 500)));
        reads.forEach((r, i) => expect(sha256(r)).toBe(sha256(file.subarray(5 * blockSize + i * 100, 5 * blockSize + i * 100 + 500))));
        expect(blockGets(server)).toEqual([`GET bytes=${5 * blockSize}-${6 * blockSize - 1} 206`]);
      } finally {
        await src.close();
      }
    });

    test("a sequential stream gets the next blocks fetched ahead", async () => {
      server = await startFlaky(file);
      const src = await openUrlSource(server.url, { ...fast, readAhead: 3 });
      try {
        await src.read(0, blockSize);
        await src.read(blockSize, blockSize); // sequential now
        await Bun.sleep(100);
        const fetched = blockGets(server).map((l) => Number(/bytes=(\d+)-/.exec(l)![1]) / blockSize);
        expect(fetched.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
        await src.read(2 * blockSize, 3 * blockSize); // continues the stream: 5, 6, 7 go out ahead of it
        await Bun.sleep(100);
        const all = blockGets(server).map((l) => Number(/bytes=(\d+)-/.exec(l)![1]) / blockSize);
        expect(all.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // each block once
        const random = src.stats.requests;
        await src.read(12 * blockSize, 10); // a jump is not a stream: no read-ahead
        await Bun.sleep(50);
        expect(src.stats.requests).toBe(random + 1);
      } finally {
        await src.close();
      }
    });

    test("the disk cache serves a restart without any block request, and becomes a local file when complete", async () => {
      server = await startFlaky(file);
      const cacheDir = tempDir("urlcache-");
      const first = await openUrlSource(server.url, { ...fast, cacheDir });
      await first.read(0, file.length);
      await first.close(); // blocks are written behind the readers; close waits for them
      const gets = blockGets(server).length;
      const second = await openUrlSource(server.url, { ...fast, cacheDir });
      try {
        expect(second.diskCache?.present).toBe(second.diskCache?.blocks);
        expect(second.localPath).toBeDefined();
        expect(sha256(readFileSync(second.localPath!))).toBe(sha256(file));
        expect(sha256(await second.read(0, file.length))).toBe(sha256(file));
        expect(blockGets(server).length).toBe(gets); // only the probe went out
        expect(second.stats.bytesFetched).toBe(0);
      } finally {
        await second.close();
      }
    });

    test("with --cache-dir the rest of the file is fetched in the background, then it is a local file", async () => {
      server = await startFlaky(file);
      const log = memoryLogger();
      const src = await openUrlSource(server.url, { ...fast, cacheDir: tempDir("urlcache-"), log });
      try {
        await src.read(0, 100); // one block asked for; the other 16 come by themselves
        for (let i = 0; i < 100 && src.localPath === undefined; i++) await Bun.sleep(50);
        expect(src.diskCache?.present).toBe(src.diskCache?.blocks);
        expect(sha256(readFileSync(src.localPath!))).toBe(sha256(file));
        expect(blockGets(server).length).toBe(src.diskCache!.blocks); // each block once
        expect(log.lines.some((l) => /complete in .*served from there/.test(l.msg))).toBe(true);
      } finally {
        await src.close();
      }
    });

    test("a cache entry for another version of the file is not used", async () => {
      const cacheDir = tempDir("urlcache-");
      server = await startFlaky(file);
      const a = await openUrlSource(server.url, { ...fast, cacheDir });
      await a.read(0, file.length);
      await a.close();
      await server.stop();
      // Same URL, new content and ETag from the start.
      server = await startFlaky(file, { changeAfter: 0 });
      const b = await openUrlSource(server.url, { ...fast, cacheDir });
      try {
        const bytes = await b.read(0, 1000);
        expect(bytes.every((x) => x === 0xee)).toBe(true);
      } finally {
        await b.close();
      }
    });
  });

  describe(`URL source (${client}) against a misbehaving server`, () => {
    test("connections dropped mid-body: retried with backoff, bytes exact", async () => {
      server = await startFlaky(file, { dropBody: (n) => n % 2 === 0 }); // every second request is cut off
      const log = memoryLogger();
      const src = await openUrlSource(server.url, { ...fast, log });
      try {
        expect(sha256(await src.read(0, file.length))).toBe(sha256(file));
        expect(server.log.some((l) => l.endsWith(" -206"))).toBe(true);
        expect(src.stats.retries).toBeGreaterThan(0);
      } finally {
        await src.close();
      }
    });

    test("a server that always drops: a clear error after the retries, never short data", async () => {
      server = await startFlaky(file, { dropBody: (n) => n > 1 });
      const src = await openUrlSource(server.url, { ...fast, retries: 2 });
      try {
        const err = await src.read(blockSize, 10).catch((e) => e);
        expect(err).toBeInstanceOf(SourceError);
        expect((err as SourceError).code).toBe("E_URL_READ");
        expect((err as Error).message).toMatch(/could not be read after 3 tries/);
      } finally {
        await src.close();
      }
    });

    test("a server that ignores Range is refused at start", async () => {
      server = await startFlaky(file, { ignoreRange: true });
      const err = await openUrlSource(server.url, fast).catch((e) => e);
      expect(err).toBeInstanceOf(SourceError);
      expect((err as SourceError).code).toBe("E_URL_NO_RANGE");
      expect((err as Error).message).toContain("ignores Range requests");
    });

    test("the file changes mid-way (new ETag): reported, later reads refused, no wrong byte returned", async () => {
      server = await startFlaky(file, { changeAfter: 3 }); // probe + 2 blocks, then the file is different
      const log = memoryLogger();
      const src = await openUrlSource(server.url, { ...fast, log });
      try {
        expect(sha256(await src.read(0, blockSize))).toBe(sha256(file.subarray(0, blockSize)));
        expect(sha256(await src.read(blockSize, blockSize))).toBe(sha256(file.subarray(blockSize, 2 * blockSize)));
        const err = await src.read(5 * blockSize, 10).catch((e) => e);
        expect((err as SourceError).code).toBe("E_SOURCE_CHANGED");
        expect((err as Error).message).toMatch(/changed while being served/);
        // Every later read fails too, even of blocks never fetched; cached ones stay what they were.
        expect(((await src.read(8 * blockSize, 10).catch((e) => e)) as SourceError).code).toBe("E_SOURCE_CHANGED");
        expect(log.lines.some((l) => l.level === "error" && /changed while being served/.test(l.msg))).toBe(true);
      } finally {
        await src.close();
      }
    });

    test("a server that ignores If-Match: the new ETag in its 206 is caught", async () => {
      server = await startFlaky(file, { changeAfter: 2, ignoreIfMatch: true });
      const src = await openUrlSource(server.url, fast);
      try {
        await src.read(0, 10);
        const err = await src.read(4 * blockSize, 10).catch((e) => e);
        expect((err as SourceError).code).toBe("E_SOURCE_CHANGED");
        expect((err as Error).message).toContain('ETag "v1" became "v2"');
        expect(server.log.at(-1)).toBe(`GET bytes=${4 * blockSize}-${5 * blockSize - 1} 206`);
      } finally {
        await src.close();
      }
    });

    test("404 and nobody listening: one clear line each", async () => {
      server = await startFlaky(file, { notFound: true });
      const e404 = await openUrlSource(server.url, fast).catch((e) => e);
      expect((e404 as SourceError).code).toBe("E_SOURCE_NOT_FOUND");
      expect((e404 as Error).message).toBe(`${server.url}: not found (HTTP 404)`);
      const port = await freePort();
      const down = await openUrlSource(`http://127.0.0.1:${port}/esxi.iso`, fast).catch((e) => e);
      expect((down as SourceError).code).toBe("E_URL_UNREACHABLE");
      expect((down as Error).message).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/esxi\.iso: .*ECONNREFUSED/);
    });

    test("credentials in the URL never appear in errors or logs", async () => {
      server = await startFlaky(file, { notFound: true });
      const secret = server.url.replace("http://", "http://alice:s3cret@") + "?X-Amz-Signature=abc";
      const err = await openUrlSource(secret, fast).catch((e) => e);
      expect((err as Error).message).not.toContain("s3cret");
      expect((err as Error).message).not.toContain("abc");
      expect(redactUrl(secret, "credentials")).toMatch(/^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/esxi\.iso\?…$/);
    });
  });
}

describe("an ISO at a URL", () => {
  test("start-up reads only the volume descriptors and directories, not file bytes", async () => {
    const iso = makeEsxiIso({ bigBytes: 3 * 1024 * 1024 + 12345 });
    const bytes = new Uint8Array(readFileSync(iso));
    server = await startFlaky(bytes);
    const src = await openUrlSource(server.url, { blockSize: 64 * KB, readAhead: 0 });
    const tree = await openIsoTree(src);
    try {
      expect(src.stats.bytesFetched).toBeLessThan(bytes.length / 8);
      const listing = xorrisoListing(iso);
      const big = await tree.stat("/big.v00");
      const data = await tree.open(big!);
      expect(sha256(await data.read(0, data.size))).toBe(listing.get("/BIG.V00")!.sha256!);
    } finally {
      await tree.close();
    }
  });
});

test("Content-Range parsing", () => {
  expect(parseContentRange("bytes 0-0/1234")).toEqual({ start: 0, end: 0, total: 1234 });
  expect(parseContentRange("bytes 10-19/*")).toEqual({ start: 10, end: 19, total: undefined });
  expect(parseContentRange("bytes */1234")).toBeUndefined();
  expect(parseContentRange(undefined)).toBeUndefined();
  expect(parseContentRange("items 0-1/2")).toBeUndefined();
});

describe("netboot's HTTP on a URL source whose file changes", () => {
  test("mid-transfer: the body is cut short of Content-Length; before a transfer: 503 with the reason", async () => {
    const { startTestApp } = await import("../helpers/app.ts");
    const iso = makeEsxiIso({ bigBytes: 24 * 1024 * 1024 + 12345 });
    const bytes = new Uint8Array(readFileSync(iso));
    const want = xorrisoListing(iso).get("/BIG.V00")!;
    server = await startFlaky(bytes);
    const app = await startTestApp({ source: server.url });
    try {
      const res = await fetch(app.url("/esxi/BIG.V00"));
      expect(res.status).toBe(200);
      expect(Number(res.headers.get("content-length"))).toBe(want.size);
      const reader = res.body!.getReader();
      let got = (await reader.read()).value!.length;
      server.change(); // the file on the web server is replaced while the client is downloading it
      const outcome = await (async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) return "done";
          got += r.value.length;
        }
      })().catch(() => "error");
      // Either the connection broke or the body ended early: never the full length of mixed bytes.
      expect({ outcome, short: got < want.size }).toEqual({ outcome: outcome, short: true });
      expect(app.logs.some((l) => /changed while being served/.test(l.msg))).toBe(true);

      const next = await fetch(app.url("/esxi/imgpayld.tgz"));
      expect(next.status).toBe(503);
      expect(await next.text()).toMatch(/^image source unavailable: .* changed while being served/);
    } finally {
      await app.close();
    }
  });
});
