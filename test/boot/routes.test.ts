/**
 * Every boot route walked as ESXi's loader walks it (src/demo/mboot.ts: Content-Length on every answer, the
 * per-MAC lookup read twice, prefix rules, sizes first, TFTP paths verbatim with blksize 1468 and
 * windowsize 4), on both HTTP edges and with the hot-file cache off and on, from an ISO file and from the
 * same image as a directory. A client that accepted what the loader rejects would prove nothing, so the
 * walk is also run against servers that frame their answers as the loader cannot read, and must fail.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { httpTransport, walkLikeMboot } from "../../src/demo/mboot.ts";
import { ROUTES, walkRoute } from "../../src/demo/routes.ts";
import { strictFetch } from "../../src/http/client.ts";
import { tftpRead } from "../../src/tftp/client.ts";
import { sampleIso, startTestApp, type TestApp } from "../helpers/app.ts";
import { run, tempDir } from "../helpers/tools.ts";

const MAC = "52:54:00:12:34:56";
const ks = join(tempDir(), "ks.cfg");
writeFileSync(ks, "vmaccepteula\ninstall --firstdisk\n");
const extracted = join(tempDir("sample-tree-"), "x");
run("xorriso", ["-osirrox", "on", "-indev", sampleIso, "-extract", "/", extracted], { stdio: ["ignore", "ignore", "pipe"] });

const setups = [
  { edge: "bun", cacheMem: 0, source: sampleIso },
  { edge: "node", cacheMem: 0, source: sampleIso },
  { edge: "bun", cacheMem: 64 << 20, source: sampleIso },
  { edge: "node", cacheMem: 64 << 20, source: sampleIso },
  { edge: "bun", cacheMem: 0, source: extracted },
] as const;

for (const s of setups) {
  const label = `${s.edge} edge, cache ${s.cacheMem ? "on" : "off"}, ${s.source === sampleIso ? "ISO file" : "extracted directory"}`;
  describe(`every route as the loader walks it (${label})`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp({ source: s.source, cacheMem: s.cacheMem, boot: { ks }, tftp: { enabled: true, port: 0 } }, { httpRuntime: s.edge });
    });
    afterAll(() => app.close());

    for (const route of ROUTES) {
      // A directory has no disc to boot: the BIOS route says so instead (tested below).
      if (route === "bios" && s.source !== sampleIso) continue;
      test(route, async () => {
        // Twice: the hot-file cache keeps a file from its second request on, and both answers must be whole.
        for (let round = 0; round < 2; round++) {
          const r = await walkRoute(route, { base: app.httpBase, tftp: { address: "127.0.0.1", port: app.tftp!.port }, image: app.images[0]!, mac: MAC });
          const failed = r.steps.filter((x) => !x.ok).map((x) => `${x.request} ${x.path}: ${x.problem}`);
          expect(failed).toEqual([]);
          expect(r.ok).toBe(true);
          if (route === "bios") expect(r.bootCfg).toMatch(/^kernelopt=.*ks=http:\/\/127\.0\.0\.1:\d+\/esxi\/01-52-54-00-12-34-56\/ks\.cfg BOOTIF=01-52-54-00-12-34-56$/m);
          else expect(r.steps.filter((x) => x.what === "module").length).toBe(13);
        }
        // The access log says what went on the wire: every answer by Content-Length.
        expect(app.logs.map((l) => l.msg).filter((m) => /framing:/.test(m))).toEqual([]);
      });
    }

    test("the access log reports the bytes of a generated answer as sent", async () => {
      const before = app.logs.length;
      const r = await strictFetch("GET", app.url(`/esxi/01-52-54-00-12-34-56/boot.cfg`));
      await Bun.sleep(50);
      const line = app.logs.slice(before).map((l) => l.msg).find((m) => m.includes("01-52-54-00-12-34-56/boot.cfg"));
      expect(line).toContain(`" 200 ${r.body.length} mac=${MAC}`);
    });
  });
}

describe("the loader's rules fail where the loader would", () => {
  test("an answer without Content-Length (chunked) is refused, as mboot refuses it", async () => {
    const srv = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      // A stream still open after its first chunk: Bun frames it chunked (what netboot's edge avoids).
      fetch: () => {
        let n = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(5);
              c.enqueue(new TextEncoder().encode(n++ === 0 ? "kernel=" : "b.b00\n"));
              if (n === 2) c.close();
            },
          }),
        );
      },
    });
    try {
      await expect(strictFetch("GET", `http://127.0.0.1:${srv.port}/boot.cfg`)).rejects.toThrow(/Transfer-Encoding: chunked/);
      const r = await walkLikeMboot({ transport: httpTransport(), bootFile: `http://127.0.0.1:${srv.port}/esxi/mboot.efi`, mac: MAC });
      expect(r.ok).toBe(false);
      expect(r.steps.at(-1)!.problem).toMatch(/Transfer-Encoding/);
    } finally {
      srv.stop(true);
    }
  });

  test("close-delimited and wrong Content-Length answers are refused", async () => {
    const srv = createServer((req, res) => {
      if (req.url === "/close") {
        res.socket!.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nkernel=b.b00\n");
        res.socket!.end();
      } else {
        res.socket!.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        res.socket!.end();
      }
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      await expect(strictFetch("GET", `http://127.0.0.1:${port}/close`)).rejects.toThrow(/no Content-Length/);
      await expect(strictFetch("GET", `http://127.0.0.1:${port}/short`)).rejects.toThrow(/closed after 5 of 100 bytes/);
    } finally {
      srv.close();
    }
  });

  test("a boot.cfg whose paths keep their leading / sends the loader to the server's root", async () => {
    const srv = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) => {
        const p = new URL(req.url).pathname;
        if (p === "/esxi/01-52-54-00-12-34-56/boot.cfg") return new Response("prefix=http://127.0.0.1/esxi/\nkernel=/b.b00\n");
        return new Response("not found", { status: 404 });
      },
    });
    try {
      const r = await walkLikeMboot({ transport: httpTransport(), bootFile: `http://127.0.0.1:${srv.port}/esxi/mboot.efi`, mac: MAC });
      expect(r.ok).toBe(false);
      expect(r.files[0]!.path).toBe("/b.b00"); // absolute: prefix ignored, as mboot's is_absolute() says
    } finally {
      srv.stop(true);
    }
  });
});

describe("boot.cfg over TFTP, and TFTP names that are URLs", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ boot: { ks }, tftp: { enabled: true, port: 0, maxBlksize: 8192 } });
  });
  afterAll(() => app.close());
  const tftp = (name: string) => tftpRead(name, { server: "127.0.0.1", port: app.tftp!.port, timeoutMs: 500, retries: 2 });

  test("prefix is the image's TFTP directory, tftpblksize the largest --tftp-max-blksize allows", async () => {
    const text = new TextDecoder().decode((await tftp("esxi/01-52-54-00-12-34-56/boot.cfg")).bytes);
    expect(text).toMatch(/^prefix=esxi$/m);
    expect(text).toMatch(/^tftpblksize=8192$/m);
    expect(text).toMatch(/^kernel=b\.b00$/m);
    // The same file over HTTP keeps the URL prefix and gets no tftpblksize.
    const http = new TextDecoder().decode((await strictFetch("GET", app.url("/esxi/01-52-54-00-12-34-56/boot.cfg"))).body);
    expect(http).toMatch(new RegExp(`^prefix=${app.httpBase}/esxi/$`, "m"));
    expect(http).not.toMatch(/tftpblksize/);
  });

  test("a TFTP request for this server's own URL is the file; another server's URL is not found", async () => {
    const direct = await tftp("esxi/b.b00");
    const viaUrl = await tftp(`${app.httpBase}/esxi/b.b00`);
    expect(viaUrl.bytes).toEqual(direct.bytes);
    await expect(tftp("http://10.255.0.1/esxi/b.b00")).rejects.toThrow(/error 1/);
  });
});

test("an image's own tftpblksize= is kept", async () => {
  const { makeEsxiIso, bootCfgText } = await import("../helpers/esxi-iso.ts");
  const iso = makeEsxiIso({ extra: { "BOOT.CFG": bootCfgText.replace("timeout=5", "timeout=5\ntftpblksize=4096") } });
  const app = await startTestApp({ source: iso, tftp: { enabled: true, port: 0 } });
  try {
    const text = new TextDecoder().decode((await tftpRead("esxi/boot.cfg", { server: "127.0.0.1", port: app.tftp!.port })).bytes);
    expect(text.match(/tftpblksize=/g)).toHaveLength(1);
    expect(text).toMatch(/^tftpblksize=4096$/m);
  } finally {
    await app.close();
  }
});
