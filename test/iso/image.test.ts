import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, truncateSync, copyFileSync, existsSync, statfsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { IsoError } from "../../src/errors.ts";
import { IsoImage } from "../../src/iso/image.ts";
import { openFileSource } from "../../src/files/source.ts";
import { mkisofs, openIso, pseudoRandom, readerListing, writeTree, type TreeSpec } from "../helpers/iso.ts";
import { requireTool, tempDir, xorrisoListing } from "../helpers/tools.ts";

requireTool("xorriso");
requireTool("genisoimage");

const deep = Object.fromEntries(
  [["d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/deep.txt", "deep file\n"]].map(([k, v]) => [k, v]),
) as TreeSpec;

const tree: TreeSpec = {
  "readme.txt": "hello\n",
  "Mixed Case Name.Data": pseudoRandom(5000, 7),
  "noext": "no extension\n",
  "empty.bin": new Uint8Array(0),
  "sub/LongFileName-With.Many.Dots.bin": pseudoRandom(70_000, 3),
  "sub/Deeper/a": "a\n",
  "sub/Deeper/exact-2048.bin": pseudoRandom(2048, 5),
  "sub/Deeper/exact-4096.bin": pseudoRandom(4096, 6),
  "unicode-é-ß.txt": "unicode\n",
  "link.txt": { symlink: "readme.txt" },
  "emptydir": { dir: true },
  ...deep,
};

/** Every flavour of image people meet, each made by a tool nobody here wrote. */
const flavours: Array<[string, "xorriso" | "genisoimage", string[], TreeSpec]> = [
  ["plain ISO 9660 level 2, no Rock Ridge", "xorriso", ["--norock", "-iso-level", "2"], withoutLinks(tree)],
  ["plain ISO 9660 level 1 (8.3 names, like ESXi)", "xorriso", ["--norock", "-iso-level", "1"], withoutLinks(shallow(tree))],
  ["Joliet without Rock Ridge", "xorriso", ["--norock", "-J", "-joliet-long"], withoutLinks(tree)],
  ["Rock Ridge (xorriso default)", "xorriso", ["-R"], tree],
  ["Rock Ridge + Joliet", "xorriso", ["-R", "-J"], tree],
  ["genisoimage Rock Ridge, deep tree relocated to rr_moved", "genisoimage", ["-quiet", "-R"], tree],
  ["genisoimage Rock Ridge + Joliet", "genisoimage", ["-quiet", "-R", "-J"], tree],
  ["genisoimage plain", "genisoimage", ["-quiet"], withoutLinks(shallow(tree))],
];

describe("ISO reader matches xorriso's extraction", () => {
  for (const [name, tool, args, spec] of flavours) {
    test(name, async () => {
      const iso = mkisofs(writeTree(spec), args, tool);
      const want = xorrisoListing(iso);
      const image = await openIso(iso);
      const got = await readerListing(image);
      // genisoimage relocates deep directories into rr_moved; xorriso shows it (empty) at the root too.
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [p, w] of want) expect({ p, ...got.get(p) }).toEqual({ p, ...w });
      expect(want.size).toBeGreaterThan(5);
    });
  }

  const real = ["/usr/lib/ipxe/ipxe.iso", "/usr/lib/grub-rescue/grub-rescue-cdrom.iso"];
  for (const iso of real) {
    test(`Debian's ${iso}`, async () => {
      if (!existsSync(iso)) throw new Error(`${iso} is missing: .ci/run installs the ipxe and grub-rescue-pc packages`);
      const want = xorrisoListing(iso);
      const got = await readerListing(await openIso(iso));
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [p, w] of want) expect({ p, ...got.get(p) }).toEqual({ p, ...w });
    });
  }
});

describe("lookup", () => {
  test("ESXi spelling: /b.b00 finds B.B00;1, any case, with or without ;1", async () => {
    const iso = mkisofs(writeTree({ "B.B00": "kernel", "EFI/BOOT/BOOTX64.EFI": "efi", "BOOT.CFG": "kernel=/b.b00\n" }), ["--norock"]);
    const image = await openIso(iso);
    expect(image.nameSpace).toBe("iso9660");
    for (const p of ["/b.b00", "B.B00", "/B.B00;1", "b.b00;1", "//efi/boot//bootx64.efi", "\\EFI\\BOOT\\BOOTX64.EFI", "/efi/./boot/bootx64.efi"]) {
      const e = await image.lookup(p);
      expect(e?.type).toBe("file");
    }
    expect(new TextDecoder().decode(await image.read((await image.lookup("/b.b00"))!))).toBe("kernel");
    expect((await image.lookup("/EFI/BOOT"))?.type).toBe("dir");
    expect(await image.lookup("/nope")).toBeUndefined();
    expect(await image.lookup("/b.b00/x")).toBeUndefined();
    // ".." never climbs above the root.
    expect((await image.lookup("/../../b.b00"))?.name).toBe("B.B00");
  });

  test("an exact spelling wins over a case-folded one (Rock Ridge can hold both)", async () => {
    const iso = mkisofs(writeTree({ "a.txt": "lower", "A.TXT": "upper" }), ["-R"]);
    const image = await openIso(iso);
    expect(new TextDecoder().decode(await image.read((await image.lookup("/A.TXT"))!))).toBe("upper");
    expect(new TextDecoder().decode(await image.read((await image.lookup("/a.txt"))!))).toBe("lower");
  });

  test("symlinks inside the image are followed, loops end with an error", async () => {
    const iso = mkisofs(
      writeTree({ "dir/file.txt": "x", "alias": { symlink: "dir" }, "loop1": { symlink: "loop2" }, "loop2": { symlink: "loop1" } }),
      ["-R"],
    );
    const image = await openIso(iso);
    expect((await image.lookup("/alias/file.txt"))?.size).toBe(1);
    expect((await image.lstat("/alias"))?.type).toBe("symlink");
    await expect(image.lookup("/loop1")).rejects.toThrow(/too many symbolic links/);
  });

  test("reads ranges inside a file, and refuses ranges outside it", async () => {
    const data = pseudoRandom(10_000, 9);
    const image = await openIso(mkisofs(writeTree({ "f.bin": data }), ["-R"]));
    const e = (await image.lookup("/f.bin"))!;
    expect(await image.read(e, 4000, 3000)).toEqual(data.subarray(4000, 7000));
    expect(await image.read(e, 10_000, 0)).toEqual(new Uint8Array(0));
    await expect(image.read(e, 9_000, 2_000)).rejects.toBeInstanceOf(IsoError);
  });

  test("start-up reads only descriptors and the root directory", async () => {
    const iso = mkisofs(writeTree(tree), ["-R"]);
    const src = await openFileSource(iso);
    let bytes = 0;
    const counting = { ...src, size: src.size, read: (o: number, n: number) => ((bytes += n), src.read(o, n)) };
    await IsoImage.open(counting);
    expect(bytes).toBeLessThanOrEqual(8 * 2048);
  });
});

describe("multi-extent files (xorriso splits files of 4 GiB and more)", () => {
  test("a 4 GiB + 3 MiB sparse file reads back byte-exact across the extent boundary", async () => {
    // The image is ~4 GiB of mostly zeros; it is written to the temp dir and removed at exit.
    const dir = tempDir("multiextent-");
    const free = statfsSync(dir);
    if (free.bavail * free.bsize < 6 * 1024 ** 3) throw new Error(`multi-extent test needs 6 GiB free in ${dir}`);
    const shm = dir;
    const src = join(dir, "src");
    writeTree({}, src);
    const big = join(src, "big.img");
    const size = 4 * 1024 ** 3 + 3 * 1024 ** 2;
    writeFileSync(big, pseudoRandom(1024 * 1024, 11));
    truncateSync(big, size);
    const tailMark = pseudoRandom(4096, 12);
    const fd = require("node:fs").openSync(big, "r+");
    require("node:fs").writeSync(fd, tailMark, 0, tailMark.length, size - tailMark.length);
    const around = pseudoRandom(8192, 13);
    const boundary = 0xfffff800; // libisofs ISO_EXTENT_SIZE: the first extent ends here
    require("node:fs").writeSync(fd, around, 0, around.length, boundary - 4096);
    require("node:fs").closeSync(fd);
    const iso = join(shm, "multi.iso");
    const { run } = await import("../helpers/tools.ts");
    run("xorriso", ["-as", "mkisofs", "-R", "-iso-level", "3", "-o", iso, src], { stdio: ["ignore", "ignore", "pipe"] });
    const report = run("xorriso", ["-indev", iso, "-find", "/big.img", "-exec", "report_lba", "--"], { stdio: ["ignore", "pipe", "ignore"] });
    const extents = report.split("\n").filter((l) => l.includes("File data lba"));
    expect(extents.length).toBeGreaterThanOrEqual(2); // xorriso itself reports several extents

    const image = await openIso(iso);
    const e = (await image.lookup("/BIG.IMG"))!;
    expect(e.size).toBe(size);
    expect(await image.read(e, 0, 1024 * 1024)).toEqual(pseudoRandom(1024 * 1024, 11));
    expect(await image.read(e, boundary - 4096, 8192)).toEqual(around);
    expect(await image.read(e, size - 4096, 4096)).toEqual(tailMark);
    // Compare with the bytes xorriso itself extracts around the boundary.
    const xdir = tempDirIn(shm);
    run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract_cut", "/big.img", String(boundary - 4096), "8192", join(xdir, "cut")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    expect(new Uint8Array(readFileSync(join(xdir, "cut")))).toEqual(new Uint8Array(around));
    rmSync(iso);
  }, 240_000);
});

describe("bad images give typed errors, never hangs or crashes", () => {
  const good = () => mkisofs(writeTree({ "sub/a.txt": "a", "b.txt": "b" }), ["--norock"]);

  test("not an ISO", async () => {
    const p = join(tempDir(), "random.bin");
    writeFileSync(p, pseudoRandom(100_000, 1));
    await expect(openIso(p)).rejects.toThrow(/not an ISO 9660 image: no CD001/);
  });

  test("too small to be an ISO", async () => {
    const p = join(tempDir(), "tiny.bin");
    writeFileSync(p, "hello");
    await expect(openIso(p)).rejects.toThrow(/too small/);
  });

  test("truncated image: warns at open, the cut-off directory is an error", async () => {
    const iso = good();
    const image0 = await openIso(iso);
    const sub = (await image0.lookup("/SUB"))!;
    const p = join(tempDir(), "cut.iso");
    copyFileSync(iso, p);
    truncateSync(p, sub.extents[0]!.offset + 10);
    const image = await openIso(p);
    expect(image.warnings.join()).toMatch(/truncated/);
    await expect(image.list("/SUB")).rejects.toThrow(/past the end of the image/);
  });

  test("a file extent past the end", async () => {
    const iso = good();
    const image0 = await openIso(iso);
    const b = (await image0.lookup("/B.TXT"))!;
    const p = join(tempDir(), "cut2.iso");
    copyFileSync(iso, p);
    truncateSync(p, b.extents[0]!.offset);
    const image = await openIso(p);
    const e = (await image.lookup("/B.TXT"))!;
    await expect(image.read(e)).rejects.toThrow(/past the end of the image/);
  });

  test("a directory that points back at its parent is a loop", async () => {
    const iso = good();
    const bytes = new Uint8Array(readFileSync(iso));
    const image = await openIso(iso);
    const rootLba = image.root().extents[0]!.offset / 2048;
    const sub = (await image.lookup("/SUB"))!;
    const subLba = sub.extents[0]!.offset / 2048;
    // Find SUB's record in the root directory and point its extent at the root.
    const rootOff = rootLba * 2048;
    let patched = false;
    for (let pos = rootOff; pos < rootOff + 2048 && bytes[pos]! > 0; pos += bytes[pos]!) {
      const v = new DataView(bytes.buffer, pos);
      if (v.getUint32(2, true) === subLba) {
        v.setUint32(2, rootLba, true);
        v.setUint32(6, rootLba, false);
        patched = true;
      }
    }
    expect(patched).toBe(true);
    const p = join(tempDir(), "loop.iso");
    writeFileSync(p, bytes);
    const looped = await openIso(p);
    await expect(looped.list("/")).rejects.toThrow(/directory loop/);
    const walk = async () => {
      for await (const _ of looped.walk("/")) void _;
    };
    await expect(walk()).rejects.toBeInstanceOf(IsoError);
  });

  test("an absurd directory length", async () => {
    const iso = good();
    const bytes = new Uint8Array(readFileSync(iso));
    // Root directory record in the primary volume descriptor: data length at 16*2048 + 156 + 10.
    const v = new DataView(bytes.buffer, 16 * 2048 + 156);
    v.setUint32(10, 0xfffff000, true);
    v.setUint32(14, 0xfffff000, false);
    const p = join(tempDir(), "absurd.iso");
    writeFileSync(p, bytes);
    await expect(openIso(p)).rejects.toThrow(/claims \d+ bytes/);
  });

  test("a directory record whose identifier overruns the record", async () => {
    const iso = good();
    const bytes = new Uint8Array(readFileSync(iso));
    const image = await openIso(iso);
    const rootOff = image.root().extents[0]!.offset;
    const third = rootOff + bytes[rootOff]! + bytes[rootOff + bytes[rootOff]!]!; // after "." and ".."
    expect(bytes[third]!).toBeGreaterThan(33);
    bytes[third + 32] = 200; // LEN_FI larger than the record
    const p = join(tempDir(), "overrun.iso");
    writeFileSync(p, bytes);
    await expect(openIso(p).then((i) => i.list("/"))).rejects.toThrow(/identifier of 200 bytes overruns/);
  });

  test("a directory whose last record crosses the end of its sector", async () => {
    // 60 files fill the root directory's first sector; stretch the last record in it past the boundary.
    const spec = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`FILE${String(i).padStart(4, "0")}.TXT`, "x"]));
    const iso = mkisofs(writeTree(spec), ["--norock"]);
    const bytes = new Uint8Array(readFileSync(iso));
    const image = await openIso(iso);
    const rootOff = image.root().extents[0]!.offset;
    let pos = rootOff;
    let last = pos;
    while (pos < rootOff + 2048 && bytes[pos]! > 0) {
      last = pos;
      pos += bytes[pos]!;
    }
    expect(rootOff + 2048 - last).toBeLessThan(255);
    bytes[last] = Math.min(255, rootOff + 2048 - last + 10);
    const p = join(tempDir(), "cross.iso");
    writeFileSync(p, bytes);
    await expect(openIso(p).then((i) => i.list("/"))).rejects.toThrow(/crosses a sector boundary/);
  });
});

// --- internal ---

function withoutLinks(spec: TreeSpec): TreeSpec {
  return Object.fromEntries(Object.entries(spec).filter(([, v]) => !(typeof v === "object" && "symlink" in v)));
}

/** Level 1 and plain genisoimage images hold 8 levels at most (ECMA-119 §6.8.2.1). */
function shallow(spec: TreeSpec): TreeSpec {
  return Object.fromEntries(Object.entries(spec).filter(([k]) => k.split("/").length <= 8));
}

function tempDirIn(base: string): string {
  const prev = process.env.NETBOOT_TEST_TMP;
  process.env.NETBOOT_TEST_TMP = base;
  try {
    return tempDir("shm-");
  } finally {
    if (prev === undefined) delete process.env.NETBOOT_TEST_TMP;
    else process.env.NETBOOT_TEST_TMP = prev;
  }
}
