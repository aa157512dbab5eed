/**
 * Every kind of image source gives the same image: an ISO file, the tree xorriso extracts from it, the same
 * tree with lower-case names (what `mount -o loop` shows for a plain ISO 9660 image), the ISO at an http URL
 * served by Debian's nginx, and zips made by Info-ZIP's `zip` (ISO stored or deflated, tree stored or
 * deflated, a stored-ISO zip at a URL). Every file byte-exact over netboot's HTTP and the same rewritten
 * boot.cfg from each, compared with what xorriso itself extracts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROUTES, walkRoute } from "../../src/demo/routes.ts";
import { openTree } from "../../src/files/open.ts";
import { memoryLogger } from "../../src/log.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { cli } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { startNginx, type Nginx } from "../helpers/nginx.ts";
import { requireTool, run, sha256, tempDir, xorrisoListing, type TreeEntry } from "../helpers/tools.ts";

for (const t of ["xorriso", "zip", "unzip", "nginx", "curl"]) requireTool(t);

const iso = makeEsxiIso({ bigBytes: 3 * 1024 * 1024 + 12345, elTorito: true }); // BIG.V00 spans several 1 MiB URL blocks
const listing = xorrisoListing(iso);
const files = [...listing].filter(([, e]) => e.type === "file") as Array<[string, TreeEntry]>;
const mac = "01-aa-bb-cc-dd-ee-ff";

/** Lower-cases every name below root, as Linux's iso9660 driver shows a plain ISO 9660 image. */
function lowerCaseTree(root: string): void {
  for (const name of readdirSync(root, { withFileTypes: true })) {
    const from = join(root, name.name);
    if (name.isDirectory()) lowerCaseTree(from);
    if (name.name !== name.name.toLowerCase()) renameSync(from, join(root, name.name.toLowerCase()));
  }
}

function zipInfo(zipFile: string): string {
  return run("unzip", ["-v", zipFile]);
}

let nginx: Nginx;
const sources: Record<string, string> = {};
const work = tempDir("sources-");
const cacheDir = join(work, "cache");

beforeAll(async () => {
  const extracted = join(work, "extracted");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", extracted], { stdio: ["ignore", "ignore", "pipe"] });
  run("chmod", ["-R", "u+w", extracted]);
  const mounted = join(work, "mounted");
  cpSync(extracted, mounted, { recursive: true });
  lowerCaseTree(mounted);

  const zips = join(work, "zips");
  mkdirSync(zips);
  const z = (args: string[], cwd: string) => run("zip", ["-q", "-X", ...args], { cwd });
  z(["-0", "-j", join(zips, "iso-stored.zip"), iso], work);
  z(["-9", "-j", join(zips, "iso-deflated.zip"), iso], work);
  // The vendor-download shape: the tree under one top folder, next to unrelated files.
  const top = join(work, "VMware-ESXi-8.0U2");
  cpSync(extracted, top, { recursive: true });
  writeFileSync(join(work, "README.txt"), "not part of the image\n");
  z(["-0", "-r", join(zips, "tree-stored.zip"), "VMware-ESXi-8.0U2", "README.txt"], work);
  z(["-9", "-r", join(zips, "tree-deflated.zip"), "VMware-ESXi-8.0U2", "README.txt"], work);

  const www = join(work, "www");
  mkdirSync(www);
  cpSync(iso, join(www, "esxi.iso"));
  cpSync(join(zips, "iso-stored.zip"), join(www, "esxi.zip"));
  nginx = await startNginx(www);

  Object.assign(sources, {
    "ISO file": iso,
    "extracted tree (xorriso)": extracted,
    "lower-case tree (as mount -o loop shows it)": mounted,
    "URL of the ISO (nginx)": `${nginx.base}/esxi.iso`,
    "zip, ISO stored": join(zips, "iso-stored.zip"),
    "zip, ISO deflated": join(zips, "iso-deflated.zip"),
    "zip, tree stored": join(zips, "tree-stored.zip"),
    "zip, tree deflated": join(zips, "tree-deflated.zip"),
    "URL of a zip with the ISO stored (nginx)": `${nginx.base}/esxi.zip`,
  });
}, 120_000);

afterAll(async () => {
  await nginx?.stop();
});

test("the zips are what their names say (Info-ZIP's own listing)", () => {
  expect(zipInfo(sources["zip, ISO stored"]!)).toMatch(/\bStored\b.*esxi\.iso/);
  expect(zipInfo(sources["zip, ISO deflated"]!)).toMatch(/\bDefl:X\b.*esxi\.iso/);
  expect(zipInfo(sources["zip, tree stored"]!)).not.toMatch(/Defl/);
  expect(zipInfo(sources["zip, tree deflated"]!)).toMatch(/\bDefl:X\b.*B\.B00/);
});

describe("every source serves the same image", () => {
  const bootCfgs = new Map<string, string>();
  const kinds = ["ISO file", "extracted tree (xorriso)", "lower-case tree (as mount -o loop shows it)", "URL of the ISO (nginx)", "zip, ISO stored", "zip, ISO deflated", "zip, tree stored", "zip, tree deflated", "URL of a zip with the ISO stored (nginx)"];
  for (const kind of kinds) {
    describe(kind, () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp({ source: sources[kind]!, cacheDir, tftp: { enabled: true, port: 0 } });
      });
      afterAll(async () => {
        await app?.close();
      });

      test("every file byte-exact through the source itself (boot.cfg as stored)", async () => {
        const tree = await openTree(sources[kind]!, { cacheDir });
        const bad: string[] = [];
        try {
          for (const [path, want] of files) {
            const info = await tree.stat(path.toLowerCase());
            const data = info?.type === "file" ? await tree.open(info) : undefined;
            const body = data ? await data.read(0, data.size) : new Uint8Array(0);
            if (!data || body.length !== want.size || sha256(body) !== want.sha256) bad.push(`${path}: ${info?.type} ${body.length}`);
          }
        } finally {
          await tree.close();
        }
        expect(bad).toEqual([]);
      }, 60_000);

      test("every file byte-exact over HTTP, by its ISO 9660 name and in lower case (boot.cfg is rewritten, so not compared)", async () => {
        const bad: string[] = [];
        for (const [path, want] of files.filter(([p]) => !/boot\.cfg$/i.test(p))) {
          for (const p of [path, path.toLowerCase()]) {
            const res = await fetch(app.url(`/esxi${p}`));
            const body = new Uint8Array(await res.arrayBuffer());
            // mboot trusts Content-Length (HEAD, then GET): never chunked, whatever the source.
            const length = res.headers.get("content-length");
            if (res.status !== 200 || length !== String(want.size) || body.length !== want.size || sha256(body) !== want.sha256) bad.push(`${p}: ${res.status} ${length} ${body.length}`);
          }
        }
        expect(bad).toEqual([]);
      }, 60_000);

      test("Range requests inside a file (crossing URL blocks)", async () => {
        const want = readFileSync(join(work, "extracted", "BIG.V00"));
        const from = (1 << 20) - 100;
        const to = 2 * (1 << 20) + 50;
        const res = await fetch(app.url("/esxi/big.v00"), { headers: { range: `bytes=${from}-${to}` } });
        expect(res.status).toBe(206);
        expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(want.subarray(from, to + 1)));
      });

      test("TFTP serves the same bytes (curl tftp://)", async () => {
        const out = join(tempDir("tftp-"), "k.b00");
        // Not spawnSync: the server answering is in this process.
        const p = Bun.spawn(["curl", "-sS", "--tftp-blksize", "1468", "-o", out, `tftp://127.0.0.1:${app.tftp!.port}/esxi/K.B00`]);
        expect(await p.exited).toBe(0);
        expect(sha256(readFileSync(out))).toBe(listing.get("/K.B00")!.sha256!);
      });

      test("every route, walked as ESXi's loader walks it (the BIOS disc where the source is an ISO)", async () => {
        const image = app.images[0]!;
        const routes = ROUTES.filter((r) => r !== "bios" || image.tree.disc?.bootable);
        expect(routes.includes("bios")).toBe(!/tree/.test(kind));
        for (const route of routes) {
          const r = await walkRoute(route, { base: app.httpBase, tftp: { address: "127.0.0.1", port: app.tftp!.port }, image, mac: "aa:bb:cc:dd:ee:ff" });
          expect({ route, failed: r.steps.filter((x) => !x.ok).map((x) => `${x.request} ${x.path}: ${x.problem}`) }).toEqual({ route, failed: [] });
        }
      }, 60_000);

      test("the per-MAC boot.cfg is rewritten the same way", async () => {
        const res = await fetch(app.url(`/esxi/efi/boot/${mac}/boot.cfg`));
        expect(res.status).toBe(200);
        const text = (await res.text()).replace(app.httpBase, "http://SERVER");
        expect(text).toContain("prefix=http://SERVER/esxi/");
        expect(text).toContain("kernel=b.b00");
        bootCfgs.set(kind, text);
      });
    });
  }

  test("all sources gave the identical boot.cfg", () => {
    expect(bootCfgs.size).toBe(kinds.length);
    expect(new Set(bootCfgs.values()).size).toBe(1);
  });
});

describe("directory sources", () => {
  test("symlinks inside the tree are followed; symlinks leading out of it never are", async () => {
    const root = join(work, "links");
    cpSync(join(work, "extracted"), root, { recursive: true });
    const secret = join(work, "secret.txt");
    writeFileSync(secret, "outside the image\n");
    symlinkSync(secret, join(root, "OUT.TXT"));
    symlinkSync("../secret.txt", join(root, "REL.TXT"));
    symlinkSync(work, join(root, "UP"));
    symlinkSync("B.B00", join(root, "ALIAS.B00"));
    const app = await startTestApp({ source: root });
    try {
      for (const p of ["/esxi/out.txt", "/esxi/REL.TXT", "/esxi/up/secret.txt", "/esxi/UP/links/B.B00"]) {
        const res = await fetch(app.url(p));
        expect({ p, status: res.status }).toEqual({ p, status: 404 });
        expect(await res.text()).not.toContain("outside the image");
      }
      const alias = await fetch(app.url("/esxi/alias.b00"));
      expect(alias.status).toBe(200);
      expect(sha256(new Uint8Array(await alias.arrayBuffer()))).toBe(listing.get("/B.B00")!.sha256!);
    } finally {
      await app.close();
    }
  });

  test("a file added to the directory while serving is found (listings are re-read)", async () => {
    const root = join(work, "live");
    cpSync(join(work, "extracted"), root, { recursive: true });
    const app = await startTestApp({ source: root });
    try {
      expect((await fetch(app.url("/esxi/NEW.V00"))).status).toBe(404);
      writeFileSync(join(root, "NEW.V00"), "fresh\n");
      await Bun.sleep(2100);
      const res = await fetch(app.url("/esxi/new.v00"));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("fresh\n");
    } finally {
      await app.close();
    }
  });
});

describe("zip sources", () => {
  test("a deflated entry is unpacked once into the cache directory, and the log says so", async () => {
    const dir = join(tempDir("zipcache-"), "c");
    const log = memoryLogger();
    const first = await openTree(sources["zip, ISO deflated"]!, { cacheDir: dir, log });
    await first.close();
    expect(log.lines.map((l) => l.msg).join("\n")).toMatch(/unpack/i);
    const again = memoryLogger();
    const second = await openTree(sources["zip, ISO deflated"]!, { cacheDir: dir, log: again });
    await second.close();
    expect(again.lines.map((l) => l.msg).join("\n")).not.toMatch(/unpacking/i);
  });

  test("a stored ISO is read in place: nothing is written to the cache directory", async () => {
    const dir = join(tempDir("zipcache-"), "c");
    const tree = await openTree(sources["zip, ISO stored"]!, { cacheDir: dir });
    await tree.close();
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {}
    expect(entries).toEqual([]);
  });

  test("a zip without an ISO or a boot.cfg is refused in one line", async () => {
    const d = tempDir("zipbad-");
    writeFileSync(join(d, "notes.txt"), "hello\n");
    run("zip", ["-q", join(d, "bad.zip"), "notes.txt"], { cwd: d });
    const r = await cli(["ls", join(d, "bad.zip")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/no \.iso|no ISO|without an ISO/i);
  });
});

describe("the CLI with each source kind", () => {
  test("ls, cat and bootcfg from a URL, a directory and a zip", async () => {
    for (const kind of ["URL of the ISO (nginx)", "lower-case tree (as mount -o loop shows it)", "zip, tree deflated"]) {
      const src = sources[kind]!;
      const ls = await cli(["ls", src, "--cache-dir", cacheDir]);
      expect({ kind, code: ls.code }).toEqual({ kind, code: 0 });
      expect(ls.stdout.toLowerCase()).toContain("b.b00");
      const cat = await cli(["cat", src, "boot.cfg", "--cache-dir", cacheDir]);
      expect(cat.stdout).toContain("kernel=/b.b00");
      const bc = await cli(["bootcfg", src, "--server", "http://10.0.0.1", "--name", "esxi", "--cache-dir", cacheDir]);
      expect(bc.stdout).toContain("prefix=http://10.0.0.1/esxi/");
    }
  }, 60_000);

  test("bad sources get one line each", async () => {
    const notIso = join(tempDir("bad-"), "x.iso");
    writeFileSync(notIso, new Uint8Array(64 * 1024).fill(7));
    const cases: Array<[string, RegExp]> = [
      [join(work, "missing.iso"), /not found|no such/i],
      [notIso, /not an ISO 9660 image/],
      [`${nginx.base}/missing.iso`, /not found \(HTTP 404\)/],
      ["http://127.0.0.1:1/esxi.iso", /cannot reach/],
      ["ftp://example.invalid/esxi.iso", /only http:\/\/ and https:\/\//],
    ];
    for (const [src, want] of cases) {
      const r = await cli(["ls", src]);
      expect({ src, code: r.code === 0 ? 0 : 1 }).toEqual({ src, code: 1 });
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(want);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  }, 60_000);
});
