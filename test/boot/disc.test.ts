/**
 * The disc image BIOS clients sanboot: the ISO byte for byte, BOOT.CFG rewritten for the client. Checked
 * with tools nobody here wrote: curl (HEAD, ranges across the seam, the whole image) and xorriso reading
 * the result back (every file, and the volume size), on ISOs made by xorriso with and without Joliet, with
 * BOOT.CFG fitting in its own sectors and with it moved past the end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { curl, startTestApp, type TestApp } from "../helpers/app.ts";
import { bootCfgText, makeEsxiIso } from "../helpers/esxi-iso.ts";
import { requireTool, run, sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";

requireTool("curl");
requireTool("xorriso");

const MAC = "52:54:00:ab:cd:ef";
const ks = join(tempDir(), "ks.cfg");
writeFileSync(ks, "vmaccepteula\n");

const cases = [
  { name: "plain ISO 9660, BOOT.CFG fits its sector", joliet: false, kernelopt: undefined },
  { name: "Joliet too, BOOT.CFG moved past the end", joliet: true, kernelopt: `console=com1 ${"x".repeat(2100)}` },
] as const;

for (const c of cases) {
  describe(`disc image: ${c.name}`, () => {
    const iso = makeEsxiIso({ joliet: c.joliet, elTorito: true });
    const original = xorrisoListing(iso);
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp({ source: iso, boot: { ks, extraKernelopt: c.kernelopt } });
    });
    afterAll(() => app.close());
    const url = () => app.url(`/esxi/01-${MAC.replaceAll(":", "-")}.iso`);

    test("HEAD gives the virtual size; xorriso reads back the rewritten BOOT.CFG and every other file unchanged", async () => {
      const head = await curl(["-I", url()]);
      expect(head.status).toBe(200);
      const size = Number(head.headers["content-length"]);
      const isoSize = Bun.file(iso).size;
      if (c.kernelopt) expect(size).toBeGreaterThan(isoSize);
      else expect(size).toBe(isoSize);

      const got = await curl([url()]);
      expect(got.status).toBe(200);
      expect(got.body.length).toBe(size);
      const out = join(tempDir("disc-"), "disc.iso");
      writeFileSync(out, got.body);
      const back = xorrisoListing(out);
      for (const [path, e] of original) {
        if (/^(\/efi\/boot)?\/boot\.cfg$/i.test(path)) continue;
        expect({ path, sha256: back.get(path)?.sha256 }).toEqual({ path, sha256: e.sha256 });
      }
      const cfgPath = [...back.keys()].find((p) => /^\/boot\.cfg$/i.test(p))!;
      const extracted = join(tempDir("disc-x-"), "x");
      run("xorriso", ["-osirrox", "on", "-indev", out, "-extract", cfgPath, extracted], { stdio: ["ignore", "ignore", "pipe"] });
      const text = await Bun.file(extracted).text();
      // Paths as the image has them (the loader reads the CD), only kernelopt rewritten.
      expect(text).toContain("kernel=/b.b00\n");
      expect(text).toContain("prefix=\n");
      expect(text).toMatch(new RegExp(`^kernelopt=runweasel ks=${app.httpBase}/esxi/01-52-54-00-ab-cd-ef/ks\\.cfg BOOTIF=01-52-54-00-ab-cd-ef`, "m"));
      expect(text).not.toMatch(/cdromBoot/);
      // What UEFI's mboot reads from the disc (virtual media, or the ISO URL as a RAM disk): the same kernelopt.
      const efiPath = [...back.keys()].find((p) => /^\/efi\/boot\/boot\.cfg$/i.test(p))!;
      const efiOut = join(tempDir("disc-efi-"), "x");
      run("xorriso", ["-osirrox", "on", "-indev", out, "-extract", efiPath, efiOut], { stdio: ["ignore", "ignore", "pipe"] });
      const efiText = await Bun.file(efiOut).text();
      expect(efiText).toMatch(new RegExp(`^kernelopt=runweasel ks=${app.httpBase}/esxi/01-52-54-00-ab-cd-ef/ks\\.cfg BOOTIF=01-52-54-00-ab-cd-ef`, "m"));
      expect(head.headers["content-type"]).toBe("application/vnd.efi-iso");
      // isoinfo sees the volume ending where the answer ends (the primary volume descriptor grew with it).
      expect(run("isoinfo", ["-d", "-i", out])).toMatch(new RegExp(`^Volume size is: ${size / 2048}$`, "m"));
      if (c.joliet) {
        // genisoimage's isoinfo, reading the Joliet tree, finds the same new BOOT.CFG.
        expect(run("isoinfo", ["-J", "-i", out, "-x", "/BOOT.CFG"])).toBe(text);
        expect(run("isoinfo", ["-i", out, "-x", "/BOOT.CFG;1"])).toBe(text);
      }
    });

    test("Range: every 64 KiB window, as iPXE's SAN reads ask, matches the whole image; across the seam too", async () => {
      const whole = (await curl([url()])).body;
      const size = whole.length;
      for (let at = 0; at < size; at += 65536) {
        const end = Math.min(size, at + 65536) - 1;
        const r = await curl(["-r", `${at}-${end}`, url()]);
        expect(r.status).toBe(206);
        expect(r.headers["content-range"]).toBe(`bytes ${at}-${end}/${size}`);
        expect(sha256(r.body)).toBe(sha256(whole.subarray(at, end + 1)));
      }
      // A window that starts in the original image and ends in what was appended.
      if (size > Bun.file(iso).size) {
        const at = Bun.file(iso).size - 1000;
        const r = await curl(["-r", `${at}-${size - 1}`, url()]);
        expect(r.status).toBe(206);
        expect(sha256(r.body)).toBe(sha256(whole.subarray(at)));
      }
    });

    test("/NAME.iso is the same disc for the MAC the server knows for the address, or without a MAC", async () => {
      const r = await curl([app.url("/esxi.iso")]);
      expect(r.status).toBe(200);
      expect(r.headers["content-length"]).toBe(String(r.body.length));
    });
  });
}

test("a directory source has no disc: the BIOS route says why", async () => {
  const iso = makeEsxiIso({ elTorito: true });
  const dir = join(tempDir("tree-"), "x");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", dir], { stdio: ["ignore", "ignore", "pipe"] });
  const app = await startTestApp({ source: dir });
  try {
    const r = await curl([app.url("/esxi/01-52-54-00-ab-cd-ef.iso")]);
    expect(r.status).toBe(404);
    const script = new TextDecoder().decode((await curl([app.url("/boot.ipxe")])).body);
    expect(script).toMatch(/^echo netboot: esxi is a directory: BIOS clients boot the ISO itself/m);
    expect(script).not.toMatch(/sanboot/);
  } finally {
    await app.close();
  }
});

test("an ISO without El Torito is not offered to BIOS clients", async () => {
  const app = await startTestApp({ source: makeEsxiIso() });
  try {
    const script = new TextDecoder().decode((await curl([app.url("/boot.ipxe")])).body);
    expect(script).toMatch(/has no El Torito boot record/);
  } finally {
    await app.close();
  }
  expect(bootCfgText).toContain("kernel=/b.b00");
});
