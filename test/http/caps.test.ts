/**
 * HTTP caps, crossed on both edges with curl and raw sockets: past the answers-at-once cap a request gets
 * 503 with Retry-After (and Content-Length) while the running downloads finish byte-exact; a keep-alive
 * connection's last request is answered with `Connection: close` and curl reconnects; headers over 16 KiB
 * get 431; headers sent too slowly (slow-loris) get the connection closed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { curl, startTestApp, type TestApp } from "../helpers/app.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { requireTool, sha256, xorrisoListing } from "../helpers/tools.ts";

requireTool("curl");
const BIG = 24 << 20;
const iso = makeEsxiIso({ bigBytes: BIG });
requireTool("xorriso");
// What xorriso reads in the image: the bytes every download must match.
const want = xorrisoListing(iso).get("/BIG.V00")!.sha256!;

/** Sends the request line and then one header line every `everyMs`; resolves with how long until the server closed. */
async function slowLoris(port: number, everyMs: number, maxMs: number): Promise<{ closedAfterMs: number | undefined; reply: string }> {
  let closed: (() => void) | undefined;
  let reply = "";
  const done = new Promise<void>((r) => (closed = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        reply += new TextDecoder().decode(d);
      },
      close() {
        closed?.();
      },
      error() {
        closed?.();
      },
    },
  });
  const t0 = Date.now();
  sock.write("GET /esxi/B.B00 HTTP/1.1\r\nHost: x\r\n");
  let open = true;
  void done.then(() => (open = false));
  while (open && Date.now() - t0 < maxMs) {
    await Bun.sleep(everyMs);
    if (open) sock.write(`X-Slow-${Date.now() - t0}: a\r\n`);
  }
  const closedAfterMs = open ? undefined : Date.now() - t0;
  sock.end();
  return { closedAfterMs, reply };
}

for (const edge of ["bun", "node"] as const) {
  describe(`HTTP caps (${edge} edge)`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp({ source: iso, http: { port: 0, limits: { maxActive: 2, requestsPerConnection: 3, headerTimeoutMs: 2000 } } }, { httpRuntime: edge });
    });
    afterAll(() => app.close());

    test("past 2 answers at once: 503 with Retry-After and Content-Length; the two downloads finish byte-exact", async () => {
      // Two slow downloads of BIG.V00 (24 MiB at 8 MiB/s: about 3 s each, past what the socket buffers take) hold both slots.
      const slow = [0, 1].map(() => curl(["--limit-rate", "8M", app.url("/esxi/BIG.V00")]));
      await Bun.sleep(500);
      const refused = await curl(["-i", app.url("/esxi/B.B00")]);
      expect(refused.status).toBe(503);
      expect(refused.headers["retry-after"]).toBe("5");
      expect(Number(refused.headers["content-length"])).toBe(new TextDecoder().decode(refused.body).replace(/^[\s\S]*?\r\n\r\n/, "").length);
      for (const r of await Promise.all(slow)) {
        expect(r.status).toBe(200);
        expect(sha256(r.body)).toBe(want);
      }
      // Said once (a second at most), and the slots are free again.
      expect(app.logs.filter((l) => /refused 1 request from 1 client with 503: 2 answers already being sent/.test(l.msg))).toHaveLength(1);
      expect((await curl([app.url("/esxi/B.B00")])).status).toBe(200);
    }, 30_000);

    test("the third request on a keep-alive connection says Connection: close; curl opens a second one for the rest", async () => {
      const url = app.url("/esxi/B.B00");
      const p = Bun.spawn(["curl", "-sv", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", url, url, url, url, url], { stdout: "pipe", stderr: "pipe" });
      const err = await new Response(p.stderr).text();
      expect(await p.exited).toBe(0);
      expect(err.match(/< HTTP\/1\.1 200/g)).toHaveLength(5);
      expect(err.match(/< connection: close/gi)).toHaveLength(1);
      expect(err.match(/Connected to 127\.0\.0\.1/g)).toHaveLength(2);
    });

    test("headers over 16 KiB: 431", async () => {
      const r = await curl(["-H", `X-Big: ${"a".repeat(20_000)}`, app.url("/esxi/B.B00")]);
      expect(r.status).toBe(431);
    });

    test("headers sent a line at a time (slow-loris): the connection is closed, nothing is answered", async () => {
      // node:http: the 2 s header timeout set here; Bun: uWebSockets' own, about 10 s.
      const r = await slowLoris(Number(new URL(app.url("/")).port), 500, 20_000);
      expect(r.closedAfterMs).toBeDefined();
      expect(r.closedAfterMs!).toBeLessThan(edge === "node" ? 4_500 : 16_000);
      expect(r.reply).not.toMatch(/200 OK/);
      // Meanwhile a normal client is answered.
      expect((await curl([app.url("/esxi/B.B00")])).status).toBe(200);
    }, 30_000);
  });
}

/** A connection that sends one request, reads its answer and then stays idle; resolves with how long until the server closed it. */
async function idleAfterOne(port: number, maxMs: number): Promise<number | undefined> {
  let closedAt: number | undefined;
  let answered = false;
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        if (new TextDecoder().decode(d).includes("HTTP/1.1 200")) answered = true;
      },
      close() {
        closedAt ??= Date.now();
      },
    },
  });
  sock.write("GET /esxi/EXACT.V00 HTTP/1.1\r\nHost: x\r\n\r\n");
  const t0 = Date.now();
  while (!closedAt && Date.now() - t0 < maxMs) await Bun.sleep(100);
  sock.end();
  expect(answered).toBe(true);
  return closedAt === undefined ? undefined : closedAt - t0;
}

describe("idle connections and the connection cap", () => {
  const idleCases = [
    { edge: "bun", what: "the idle timeout (2 s here)", limits: { idleSeconds: 2 }, within: [1500, 6000] },
    { edge: "node", what: "the keep-alive time (1 s here)", limits: { keepAliveMs: 1000 }, within: [700, 3000] },
  ] as const;
  for (const c of idleCases) {
    test(`${c.edge} edge: an idle keep-alive connection is closed after ${c.what}`, async () => {
      const app = await startTestApp({ source: iso, http: { port: 0, limits: c.limits } }, { httpRuntime: c.edge });
      try {
        const ms = await idleAfterOne(Number(new URL(app.url("/")).port), 10_000);
        expect(ms).toBeDefined();
        expect(ms!).toBeGreaterThan(c.within[0]);
        expect(ms!).toBeLessThan(c.within[1]);
      } finally {
        await app.close();
      }
    }, 20_000);
  }

  test("node edge: past 2 connections a third is closed at accept; the two go on", async () => {
    const app = await startTestApp({ source: iso, http: { port: 0, limits: { maxConnections: 2 } } }, { httpRuntime: "node" });
    try {
      const slow = [0, 1].map(() => curl(["--limit-rate", "8M", app.url("/esxi/BIG.V00")]));
      await Bun.sleep(500);
      const third = await curl(["-sS", app.url("/esxi/B.B00")]);
      expect(third.status).not.toBe(200);
      expect(third.stderr).toMatch(/Empty reply|reset|closed/i);
      for (const r of await Promise.all(slow)) expect(sha256(r.body)).toBe(want);
      expect((await curl([app.url("/esxi/B.B00")])).status).toBe(200);
    } finally {
      await app.close();
    }
  }, 30_000);
});

describe("a cached file of a URL source on the node edge", () => {
  test("goes out in pieces as the socket drains: byte-exact, Content-Length kept; a client that hangs up ends it", async () => {
    const { startFlaky } = await import("../helpers/flaky-http.ts");
    const origin = await startFlaky(new Uint8Array(await Bun.file(iso).arrayBuffer()));
    const app = await startTestApp({ source: origin.url, cacheMem: 256 << 20 });
    try {
      // The second request admits the file to the hot-file cache; the third is answered from it.
      for (let i = 0; i < 3; i++) {
        const r = await curl(["-i", app.url("/esxi/BIG.V00")]);
        expect(r.status).toBe(200);
        expect(r.headers["content-length"]).toBe(String(BIG));
      }
      const fetched = origin.log.length;
      const slow = await curl(["--limit-rate", "20M", app.url("/esxi/BIG.V00")]);
      expect(sha256(slow.body)).toBe(want);
      expect(origin.log.length).toBe(fetched); // from memory: nothing asked of the origin
      // Hang up a few MiB into it: the server is not stuck waiting for a drain that never comes.
      const p = Bun.spawn(["curl", "-s", "--limit-rate", "4M", "-o", "/dev/null", app.url("/esxi/BIG.V00")]);
      await Bun.sleep(700);
      p.kill();
      await p.exited;
      const again = await curl([app.url("/esxi/BIG.V00")]);
      expect(sha256(again.body)).toBe(want);
      expect(app.logs.some((l) => /BIG\.V00.*aborted/.test(l.msg))).toBe(true);
    } finally {
      await app.close();
      await origin.stop();
    }
  }, 60_000);
});
