/**
 * A client that goes away mid-body, on both edges: the access log, the event bus and /metrics say so.
 * node:http reports at the end (bytes sent, "aborted"); Bun.serve reports when the answer starts and says
 * nothing when the body has gone out, so a cut-off download there is a second line and an http.abort
 * event (fired by the request's signal). A whole download and a HEAD must not be called cut off.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EventInput, NetbootEvent } from "../../src/events.ts";
import { startHttpServer } from "../../src/http/server.ts";
import { memoryLogger } from "../../src/log.ts";
import { curl, startTestApp, type TestApp } from "../helpers/app.ts";
import { requireTool, run, sha256, tempDir } from "../helpers/tools.ts";

requireTool("curl");
requireTool("xorriso");

// More than loopback's socket buffers hold, so a client reading at 2 MB/s is still mid-body when it quits.
const size = 24 * 1024 * 1024 + 4321;
const big = new Uint8Array(size).map((_, i) => (i * 2654435761) >>> 24);
let iso = "";

beforeAll(() => {
  const dir = tempDir();
  const tree = join(dir, "tree");
  mkdirSync(tree);
  writeFileSync(join(tree, "BIG.BIN"), big);
  writeFileSync(join(tree, "BOOT.CFG"), "bootstate=0\ntitle=t\nkernel=/big.bin\nmodules=/big.bin\n");
  iso = join(dir, "t.iso");
  run("xorriso", ["-as", "mkisofs", "-quiet", "-o", iso, tree]);
});

for (const edge of ["bun", "node"] as const) {
  describe(`${edge} edge: a client that goes away mid-body`, () => {
    let app: TestApp;
    const events: NetbootEvent[] = [];
    beforeAll(async () => {
      app = await startTestApp({ source: iso }, { httpRuntime: edge });
      app.bus.subscribe((e) => events.push(e));
    });
    afterAll(() => app.close());

    const aborted = async () => {
      const m = await curl([app.url("/metrics")]);
      return Number(/^netboot_http_aborted_total (\d+)$/m.exec(new TextDecoder().decode(m.body))?.[1]);
    };

    test("a 404 whose path says 'aborted' is not counted as one", async () => {
      const before = await aborted();
      expect((await curl([app.url("/aborted")])).status).toBe(404);
      expect((await curl([app.url("/esxi/aborted.txt")])).status).toBe(404);
      expect(await aborted()).toBe(before);
    });

    test("a whole download and a HEAD are not cut off", async () => {
      const whole = await curl([app.url("/esxi/BIG.BIN")]);
      expect(sha256(whole.body)).toBe(sha256(big));
      const head = await curl(["-I", app.url("/esxi/BIG.BIN")]);
      expect(head.headers["content-length"]).toBe(String(size));
      await Bun.sleep(300);
      expect(events.filter((e) => e.type === "http.abort")).toEqual([]);
      expect(app.logs.filter((l) => /cut off|\(aborted\)/.test(l.msg))).toEqual([]);
      expect(await aborted()).toBe(0);
    });

    test("one that quits mid-body is in the log, on the bus and in /metrics", async () => {
      const cut = await curl(["--limit-rate", "2M", "--max-time", "0.5", app.url("/esxi/BIG.BIN")]);
      expect(cut.body.length).toBeLessThan(size);
      const line = edge === "bun" ? new RegExp(`"GET /esxi/BIG\\.BIN" cut off: the client went away before the end of the ${size} bytes`) : /"GET \/esxi\/BIG\.BIN" 200 \d+ \(aborted\)/;
      for (let i = 0; i < 50 && !app.logs.some((l) => line.test(l.msg)); i++) await Bun.sleep(100);
      expect(app.logs.filter((l) => line.test(l.msg)).length).toBe(1);
      if (edge === "bun") expect(events.filter((e) => e.type === "http.abort").map((e) => [e.type === "http.abort" && e.path, e.type === "http.abort" && e.client, e.kind])).toEqual([["/esxi/BIG.BIN", "127.0.0.1", "module"]]);
      else expect(events.some((e) => e.type === "http.end" && e.aborted === true && e.note === "aborted")).toBe(true);
      expect(await aborted()).toBe(1);
    }, 15_000);
  });
}

test("bun edge: a client gone before the answer was ready is cut off too (its signal had already fired)", async () => {
  const log = memoryLogger();
  const cut: EventInput[] = [];
  const file = join(tempDir(), "big.bin");
  writeFileSync(file, big);
  // An answer that takes 400 ms to prepare (a URL source's first block, a big file read into memory).
  const server = await startHttpServer({
    host: "127.0.0.1",
    port: 0,
    log,
    runtime: "bun",
    events: (e) => cut.push(e),
    app: async (req) => {
      await Bun.sleep(400);
      const data = { size, etag: '"x"', local: { path: file, offset: 0 }, read: async () => big } as never;
      return { status: 200, headers: { "content-length": String(size) }, body: { kind: "file", data, start: 0, end: size }, path: req.target, mac: undefined, note: undefined };
    },
  });
  try {
    const r = await curl(["--max-time", "0.1", `http://127.0.0.1:${server.port}/slow`]);
    expect(r.body.length).toBe(0);
    for (let i = 0; i < 20 && !cut.some((e) => e.type === "http.abort"); i++) await Bun.sleep(100);
    expect(cut.filter((e) => e.type === "http.abort").map((e) => [e.type === "http.abort" && e.path, e.type === "http.abort" && e.bytes])).toEqual([["/slow", size]]);
    expect(log.lines.some((l) => /"GET \/slow" cut off/.test(l.msg))).toBe(true);
  } finally {
    await server.close();
  }
});
