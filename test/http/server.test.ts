import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "../../src/net/undici.ts";
import { curl, sampleIso, startTestApp, type TestApp } from "../helpers/app.ts";
import { requireTool, sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";

requireTool("curl");
requireTool("xorriso");

const want = xorrisoListing(sampleIso);
const files = [...want].filter(([, e]) => e.type === "file");
// BOOT.CFG paths are answered with the rewritten file (tested below), every other path with the image's bytes.
const plainFiles = files.filter(([p]) => !/boot\.cfg$/i.test(p));
const bytesOf = (p: string) => {
  const hit = files.find(([k]) => k.toLowerCase() === p.toLowerCase());
  if (!hit) throw new Error(`no ${p} in sample`);
  return hit[1];
};

const edges = [
  ["bun", 0],
  ["node", 0],
  ["bun", 64 << 20],
  ["node", 64 << 20],
] as const;

for (const [runtime, cacheMem] of edges) {
  describe(`HTTP (${runtime} edge${cacheMem ? ", hot-file cache" : ""})`, () => {
    let app: TestApp;
    const ks = join(tempDir(), "ks.cfg");
    writeFileSync(ks, "vmaccepteula\nrootpw test\ninstall --firstdisk\n");
    beforeAll(async () => {
      app = await startTestApp({ boot: { ks }, cacheMem }, { httpRuntime: runtime });
    });
    afterAll(() => app.close());

    test("every file of the image, byte-exact (curl), any case, with or without ;1", async () => {
      expect(plainFiles.length).toBeGreaterThan(10);
      for (const [path, e] of plainFiles) {
        for (const variant of [path, path.toLowerCase(), `${path};1`]) {
          const r = await curl([app.url(`/esxi${variant}`)]);
          expect({ variant, status: r.status }).toEqual({ variant, status: 200 });
          expect(sha256(r.body)).toBe(e.sha256!);
          expect(r.headers["content-length"]).toBe(String(e.size));
        }
      }
    });

    test("HEAD: exact Content-Length, Accept-Ranges, ETag, Last-Modified, no body", async () => {
      const e = bytesOf("/B.B00");
      const r = await curl(["-I", app.url("/esxi/b.b00")]);
      expect(r.status).toBe(200);
      expect(r.headers["content-length"]).toBe(String(e.size));
      expect(r.headers["accept-ranges"]).toBe("bytes");
      expect(r.headers["etag"]).toMatch(/^"[^"]+"$/);
      expect(Date.parse(r.headers["last-modified"]!)).toBeGreaterThan(0);
      const viaUndici = await request(app.url("/esxi/b.b00"), { method: "HEAD" });
      expect(viaUndici.statusCode).toBe(200);
      expect(viaUndici.headers["content-length"]).toBe(String(e.size));
      expect((await viaUndici.body.arrayBuffer()).byteLength).toBe(0);
    });

    test("ranges: edges, suffix, open, clamped, unsatisfiable, multi and malformed", async () => {
      const e = bytesOf("/B.B00");
      const size = e.size;
      const full = (await curl([app.url("/esxi/B.B00")])).body;
      const cases: Array<[string, number, string | undefined, number, number]> = [
        ["0-0", 206, `bytes 0-0/${size}`, 0, 1],
        ["0-99", 206, `bytes 0-99/${size}`, 0, 100],
        [`${size - 1}-${size - 1}`, 206, `bytes ${size - 1}-${size - 1}/${size}`, size - 1, size],
        ["-100", 206, `bytes ${size - 100}-${size - 1}/${size}`, size - 100, size],
        ["1000-", 206, `bytes 1000-${size - 1}/${size}`, 1000, size],
        [`100-${size * 10}`, 206, `bytes 100-${size - 1}/${size}`, 100, size],
        [`-${size * 2}`, 206, `bytes 0-${size - 1}/${size}`, 0, size],
        ["0-9,20-29", 200, undefined, 0, size],
      ];
      for (const [range, status, cr, start, end] of cases) {
        const r = await curl(["-r", range, app.url("/esxi/B.B00")]);
        expect({ range, status: r.status, cr: r.headers["content-range"] }).toEqual({ range, status, cr });
        expect(sha256(r.body)).toBe(sha256(full.subarray(start, end)));
      }
      for (const range of [`${size}-`, `${size + 10}-${size + 20}`, "-0"]) {
        const r = await curl(["-r", range, app.url("/esxi/B.B00")]);
        expect({ range, status: r.status, cr: r.headers["content-range"] }).toEqual({ range, status: 416, cr: `bytes */${size}` });
      }
      for (const header of ["Range: bytes=abc", "Range: items=0-1", "Range: bytes=5-1"]) {
        const r = await curl(["-H", header, app.url("/esxi/B.B00")]);
        expect({ header, status: r.status }).toEqual({ header, status: 200 });
        expect(r.body.length).toBe(size);
      }
    });

    test("conditional requests: If-None-Match → 304, stale If-Range → whole file", async () => {
      const head = await curl(["-I", app.url("/esxi/K.B00")]);
      const etag = head.headers["etag"]!;
      expect((await curl(["-H", `If-None-Match: ${etag}`, app.url("/esxi/K.B00")])).status).toBe(304);
      const stale = await curl(["-H", 'If-Range: "other"', "-r", "0-9", app.url("/esxi/K.B00")]);
      expect(stale.status).toBe(200);
      const fresh = await curl(["-H", `If-Range: ${etag}`, "-r", "0-9", app.url("/esxi/K.B00")]);
      expect(fresh.status).toBe(206);
      expect(fresh.body.length).toBe(10);
    });

    test("keep-alive: many requests over one connection (undici)", async () => {
      const agent = new Agent({ connections: 1, pipelining: 1 });
      let sockets = 0;
      agent.on("connect", () => sockets++);
      try {
        for (const [path, e] of plainFiles.slice(0, 8)) {
          const r = await request(app.url(`/esxi${path}`), { dispatcher: agent });
          const body = new Uint8Array(await r.body.arrayBuffer());
          expect(r.statusCode).toBe(200);
          expect(sha256(body)).toBe(e.sha256!);
          expect(r.headers["connection"]).not.toBe("close");
        }
        expect(sockets).toBe(1);
      } finally {
        await agent.close();
      }
    });

    test("mboot.efi is EFI/BOOT/BOOTX64.EFI, served as application/efi", async () => {
      const r = await curl([app.url("/esxi/mboot.efi")]);
      expect(r.status).toBe(200);
      expect(sha256(r.body)).toBe(bytesOf("/EFI/BOOT/BOOTX64.EFI").sha256!);
      expect(r.headers["content-type"]).toBe("application/efi");
    });

    test("boot.cfg rewritten at every path mboot may ask for", async () => {
      const base = app.httpBase;
      const mac = "01-52-54-00-12-34-56";
      const paths = ["/esxi/boot.cfg", "/esxi/efi/boot/boot.cfg", `/esxi/${mac}/boot.cfg`, `/esxi/efi/boot/${mac}/boot.cfg`, `/${mac}/boot.cfg`, "/ESXI/EFI/BOOT/BOOT.CFG"];
      for (const p of paths) {
        const r = await curl([app.url(p)]);
        expect({ p, status: r.status }).toEqual({ p, status: 200 });
        const text = new TextDecoder().decode(r.body);
        expect(text).toContain(`prefix=${base}/esxi/\n`);
        expect(text).toContain("kernel=b.b00\n");
        expect(text).not.toMatch(/modules=.*\/jumpstrt/);
        expect(text).not.toContain("cdromBoot");
        expect(text).toContain("build=8.0.2-0.0.22380479");
        if (p.includes(mac)) expect(text).toContain(`ks=${base}/esxi/${mac}/ks.cfg`);
        else expect(text).toContain(`ks=${base}/esxi/ks.cfg`);
        expect(r.headers["cache-control"]).toBe("no-store");
        const head = await curl(["-I", app.url(p)]);
        expect(head.headers["content-length"]).toBe(String(r.body.length));
      }
    });

    test("kickstart at NAME/01-<mac>/ks.cfg and NAME/ks.cfg", async () => {
      for (const p of ["/esxi/01-52-54-00-12-34-56/ks.cfg", "/esxi/ks.cfg"]) {
        const r = await curl([app.url(p)]);
        expect(r.status).toBe(200);
        expect(new TextDecoder().decode(r.body)).toContain("rootpw test");
      }
    });

    test("hostile paths get 400 or 404 and nothing else", async () => {
      const hostile = [
        "/esxi/../../../../etc/passwd",
        "/esxi/%2e%2e/%2e%2e/etc/passwd",
        "/esxi/%2E%2E%2Fetc%2Fpasswd",
        "/esxi/..%2f..%2fetc%2fpasswd",
        "/esxi/..%5c..%5cetc%5cpasswd",
        "/esxi\\..\\..\\etc\\passwd",
        "/esxi/B.B00%00.txt",
        "/esxi/%00",
        "/esxi/EFI/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/esxi/%zz",
        "/esxi/%c0%ae%c0%ae/etc/passwd",
        "/etc/passwd",
      ];
      for (const p of hostile) {
        const r = await curl(["--path-as-is", app.url(p)]);
        expect({ p, ok: r.status === 400 || r.status === 404 }).toEqual({ p, ok: true });
        expect(new TextDecoder().decode(r.body)).not.toContain("root:");
      }
    });

    test("dot segments resolve as in any URL and never climb above the root", async () => {
      expect((await curl(["--path-as-is", app.url("/esxi/EFI/../B.B00")])).status).toBe(200);
      expect((await curl(["--path-as-is", app.url("/esxi/EFI/BOOT/../../../esxi/K.B00")])).status).toBe(200);
      expect((await curl(["--path-as-is", app.url("/esxi/../../../esxi/nope")])).status).toBe(404);
    });

    test("keep-alive: curl reuses one connection for several files", async () => {
      const urls = plainFiles.slice(0, 5).map(([p]) => app.url(`/esxi${p}`));
      const proc = Bun.spawn(["curl", "-s", ...urls.flatMap((u) => ["-o", "/dev/null", u]), "-w", "%{num_connects}\\n"], { stdout: "pipe" });
      const out = (await new Response(proc.stdout).text()).trim().split("\n");
      expect(out).toEqual(["1", "0", "0", "0", "0"]);
    });

    test("other methods: 405 with Allow", async () => {
      const r = await curl(["-X", "POST", "-d", "x", app.url("/esxi/B.B00")]);
      expect(r.status).toBe(405);
      expect(r.headers["allow"]).toBe("GET, HEAD");
    });

    test("directories: redirect to the slash form, then an index", async () => {
      const r = await curl([app.url("/esxi/efi")]);
      expect(r.status).toBe(301);
      expect(r.headers["location"]).toBe("/esxi/efi/");
      const idx = await curl([app.url("/esxi/efi/")]);
      expect(idx.status).toBe(200);
      expect(new TextDecoder().decode(idx.body)).toContain("BOOT/");
    });

    test("access log: client, path, status, bytes and the MAC when the path carries one", async () => {
      await curl([app.url("/esxi/01-aa-bb-cc-dd-ee-ff/boot.cfg")]);
      const line = app.logs.find((l) => l.msg.includes("/esxi/01-aa-bb-cc-dd-ee-ff/boot.cfg"));
      expect(line?.msg).toMatch(/^127\.0\.0\.1 "GET \/esxi\/01-aa-bb-cc-dd-ee-ff\/boot\.cfg" 200 \d+ mac=aa:bb:cc:dd:ee:ff/);
      await curl([app.url("/esxi/b.b00")]);
      expect(app.logs.some((l) => /"GET \/esxi\/b\.b00" 200 65536$/.test(l.msg))).toBe(true);
    });
  });
}
