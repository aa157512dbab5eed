/**
 * The node:http edge's local-file path (Node, and any image under Bun's node:http edge): windows of a
 * 24 MiB file go out through two reused 1 MiB buffers. Byte-exact across buffer boundaries, under
 * back-pressure (a rate-limited curl), and a client that hangs up mid-body ends its window without
 * holding the file open or stopping the next download.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { curl, startTestApp, type TestApp } from "../helpers/app.ts";
import { requireTool, run, sha256, tempDir } from "../helpers/tools.ts";

requireTool("curl");
requireTool("xorriso");

const MiB = 1 << 20;
// Larger than what loopback socket buffers hold (about 10 MiB), so a client that stops reading stops the
// server mid-window; 24 buffers and a piece.
const size = 24 * MiB + 12_345;
const big = new Uint8Array(size);
for (let i = 0, x = 2463534242; i < size; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  big[i] = x & 0xff;
}

describe("node edge: local file windows", () => {
  let app: TestApp;
  beforeAll(async () => {
    const dir = tempDir();
    const tree = join(dir, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "BIG.BIN"), big);
    writeFileSync(join(tree, "BOOT.CFG"), "bootstate=0\ntitle=t\nkernel=/big.bin\nmodules=/big.bin\n");
    run("xorriso", ["-as", "mkisofs", "-quiet", "-o", join(dir, "t.iso"), tree]);
    app = await startTestApp({ source: join(dir, "t.iso") }, { httpRuntime: "node" });
  });
  afterAll(() => app.close());

  test("whole file and ranges across the 1 MiB buffer edges, byte-exact, with Content-Length", async () => {
    const whole = await curl([app.url("/esxi/BIG.BIN")]);
    expect(whole.status).toBe(200);
    expect(whole.headers["content-length"]).toBe(String(size));
    expect(sha256(whole.body)).toBe(sha256(big));
    const ranges: Array<[number, number]> = [
      [0, MiB - 1],
      [MiB - 1, MiB],
      [MiB - 7, 3 * MiB + 7],
      [2 * MiB + 1, 9 * MiB],
      [20 * MiB - 1, size - 1],
      [size - 3, size - 1],
    ];
    for (const [a, b] of ranges) {
      const r = await curl(["-r", `${a}-${b}`, app.url("/esxi/BIG.BIN")]);
      expect({ a, b, status: r.status, length: r.headers["content-length"] }).toEqual({ a, b, status: 206, length: String(b - a + 1) });
      expect({ a, b, sha: sha256(r.body) }).toEqual({ a, b, sha: sha256(big.subarray(a, b + 1)) });
    }
  });

  test("a slow client (back-pressure) gets every byte; one that hangs up mid-body leaves no file open", async () => {
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    const slow = curl(["--limit-rate", "16M", app.url("/esxi/BIG.BIN")]);
    // Hang-ups at several points of the window (curl's --max-time ends it mid-body).
    const cut = await Promise.all([0.2, 0.4, 0.6].map((t) => curl(["--limit-rate", "2M", "--max-time", String(t), app.url("/esxi/BIG.BIN")])));
    for (const c of cut) expect(c.body.length).toBeLessThan(size);
    const s = await slow;
    expect(s.status).toBe(200);
    expect(sha256(s.body)).toBe(sha256(big));
    const after = await curl([app.url("/esxi/BIG.BIN")]);
    expect(sha256(after.body)).toBe(sha256(big));
    // The aborted windows closed their file handles (the server runs in this process).
    let now = fds();
    for (let i = 0; i < 20 && now > before + 2; i++) {
      await Bun.sleep(100);
      now = fds();
    }
    expect(now).toBeLessThanOrEqual(before + 2);
    expect(app.logs.some((l) => /"GET \/esxi\/BIG\.BIN" 200 \d+ \(aborted\)/.test(l.msg))).toBe(true);
  }, 30_000);
});
