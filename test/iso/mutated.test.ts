/**
 * The ISO 9660 reader on broken and hostile images, made from xorriso's output (Rock Ridge, Joliet, nested
 * directories, a symlink) by seeded mutations: bit flips in the descriptors, path tables and directories,
 * truncation, extents past the end, directories that point at themselves or their parent (loops), Rock
 * Ridge CE continuation areas that point at themselves, zero-length and one-byte records, absurd sizes.
 * Each image is opened from a file as netboot opens one, its whole tree walked and every file's head and
 * tail read: it must end within 1 s with the tree or a typed error, never a hang or another exception.
 * NETBOOT_ISO_FUZZ (default 600) sets the count; `npm run bench -- hardening` runs 10,000.
 */
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../../scripts/fuzz.ts";
import { NetbootError } from "../../src/errors.ts";
import { openFileSource } from "../../src/files/source.ts";
import { IsoImage, type IsoSource } from "../../src/iso/image.ts";
import { requireTool, run, tempDir } from "../helpers/tools.ts";

requireTool("xorriso");
const COUNT = Number(process.env.NETBOOT_ISO_FUZZ ?? 600);
const SECTOR = 2048;

function buildImage(): Uint8Array {
  const dir = tempDir("iso-fuzz-");
  const src = join(dir, "src");
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(src, `dir${d}`, "sub"), { recursive: true });
    for (let f = 0; f < 5; f++) writeFileSync(join(src, `dir${d}`, f === 0 ? "sub/deep.txt" : `file${f}-with-a-long-rock-ridge-name.b00`), `content ${d}.${f}\n`.repeat(50 * f + 1));
  }
  writeFileSync(join(src, "BOOT.CFG"), "kernel=/b.b00\nmodules=/k.b00\n");
  symlinkSync("dir0/file1-with-a-long-rock-ridge-name.b00", join(src, "link"));
  // Names and link targets too long for one record: Rock Ridge continues them in CE areas.
  for (let i = 0; i < 4; i++) {
    writeFileSync(join(src, `dir${i}`, `${"n".repeat(200)}${i}.txt`), "long\n");
    symlinkSync(`${"t/".repeat(100)}${i}`, join(src, `dir${i}`, "long-link"));
  }
  const iso = join(dir, "x.iso");
  run("xorriso", ["-as", "mkisofs", "-quiet", "-R", "-J", "-V", "FUZZ", "-o", iso, src]);
  return new Uint8Array(readFileSync(iso));
}

/** Where the directory records and Rock Ridge CE entries of the pristine image are (byte offsets). */
async function landmarks(bytes: Uint8Array): Promise<{ records: number[]; ce: number[]; dirEnd: number }> {
  const src: IsoSource = { size: bytes.length, read: async (o, l) => bytes.subarray(o, o + l) };
  const img = await IsoImage.open(src);
  const records: number[] = [];
  let dirEnd = 0;
  for await (const e of img.walk("/")) {
    if (e.type !== "dir") continue;
    for (const x of e.extents) {
      dirEnd = Math.max(dirEnd, x.offset + x.length);
      for (let p = x.offset; p < x.offset + x.length; ) {
        const len = bytes[p]!;
        if (len === 0) {
          p = (Math.floor(p / SECTOR) + 1) * SECTOR;
          continue;
        }
        records.push(p);
        p += len;
      }
    }
  }
  const ce: number[] = [];
  for (let p = 16 * SECTOR; p < dirEnd - 4; p++) if (bytes[p] === 0x43 && bytes[p + 1] === 0x45 && bytes[p + 2] === 28 && bytes[p + 3] === 1) ce.push(p);
  return { records, ce, dirEnd };
}

const both32 = (b: Uint8Array, at: number, v: number) => {
  const d = new DataView(b.buffer, b.byteOffset);
  d.setUint32(at, v >>> 0, true);
  d.setUint32(at + 4, v >>> 0, false);
};

function mutate(rng: Rng, pristine: Uint8Array, marks: { records: number[]; ce: number[]; dirEnd: number }): { bytes: Uint8Array; kind: string } {
  let b = new Uint8Array(pristine);
  const rec = () => marks.records[rng.int(marks.records.length)]!;
  const kind = ["flips", "truncate", "extent", "length", "loop", "reclen", "ce-loop", "ce-absurd", "mix"][rng.int(9)]!;
  const apply = (k: string) => {
    switch (k) {
      case "flips":
        for (let n = 1 + rng.int(16); n > 0; n--) b[16 * SECTOR + rng.int(marks.dirEnd - 16 * SECTOR)]! ^= 1 << rng.int(8);
        break;
      case "truncate":
        b = b.slice(0, rng.int(2) ? rng.int(b.length) : Math.min(b.length, 16 * SECTOR + rng.int(marks.dirEnd - 16 * SECTOR)));
        break;
      case "extent": // past the end, zero, or absurd
        both32(b, rec() + 2, [Math.ceil(b.length / SECTOR) + rng.int(1000), 0, 0xfffffff0, rng.next()][rng.int(4)]!);
        break;
      case "length":
        both32(b, rec() + 10, [0, 0xffffffff, b.length * 2, rng.next()][rng.int(4)]!);
        break;
      case "loop": {
        // A directory's record points at an enclosing directory: the root, or its own "." extent.
        const r = rec();
        const target = rng.int(2) ? 16 * SECTOR + 156 : marks.records[0]!;
        b.copyWithin(r + 2, target + 2, target + 18);
        b[r + 25] = 2; // a directory
        break;
      }
      case "reclen":
        b[rec()] = [0, 1, 33, 255][rng.int(4)]!;
        break;
      case "ce-loop": // the continuation area is the record's own block
        if (marks.ce.length) {
          const at = marks.ce[rng.int(marks.ce.length)]!;
          both32(b, at + 4, Math.floor(at / SECTOR));
          both32(b, at + 12, at % SECTOR);
          both32(b, at + 20, 28);
        }
        break;
      case "ce-absurd":
        if (marks.ce.length) {
          const at = marks.ce[rng.int(marks.ce.length)]!;
          both32(b, at + [4, 12, 20][rng.int(3)]!, [0xffffffff, 0, b.length, rng.next()][rng.int(4)]!);
        }
        break;
    }
  };
  if (kind === "mix") for (let n = 2 + rng.int(3); n > 0; n--) apply(["flips", "extent", "length", "loop", "reclen", "ce-loop", "ce-absurd"][rng.int(7)]!);
  else apply(kind);
  return { bytes: b, kind };
}

/** Opens, walks and reads like the server does; "ok" or the typed error's code. */
async function exercise(path: string): Promise<string> {
  const source = await openFileSource(path);
  try {
    const img = await IsoImage.open({ size: source.size, read: (o, l) => source.read(o, l) });
    let n = 0;
    for await (const e of img.walk("/")) {
      if (++n > 10_000) throw new Error("walk did not end (10,000 entries from a 30-entry image)");
      if (e.type !== "file" || e.size === 0) continue;
      await img.read(e, 0, Math.min(e.size, 65536));
      if (e.size > 65536) await img.read(e, e.size - 4096, 4096);
    }
    await img.lookup("/dir0/sub/deep.txt");
    await img.lookup("/link");
    return "ok";
  } finally {
    await source.close?.();
  }
}

test(`${COUNT} mutated xorriso images: the tree or a typed error, each within 1 s`, async () => {
  const pristine = buildImage();
  const marks = await landmarks(pristine);
  expect(marks.records.length).toBeGreaterThan(30);
  console.error(`[iso-fuzz] ${marks.records.length} directory records, ${marks.ce.length} Rock Ridge CE entries`);
  const file = join(tempDir("iso-fuzz-case-"), "case.iso");
  writeFileSync(file, pristine);
  expect(await exercise(file)).toBe("ok");
  const rng = new Rng(1);
  const outcomes = new Map<string, number>();
  const findings: string[] = [];
  let slowest = 0;
  for (let i = 0; i < COUNT; i++) {
    const { bytes, kind } = mutate(rng, pristine, marks);
    writeFileSync(file, bytes);
    const t0 = performance.now();
    let outcome: string;
    try {
      outcome = await Promise.race([exercise(file), Bun.sleep(1000).then(() => "HANG")]);
    } catch (err) {
      outcome = err instanceof NetbootError ? err.code : `UNTYPED ${(err as Error)?.name}: ${(err as Error)?.message}`;
    }
    const ms = performance.now() - t0;
    slowest = Math.max(slowest, ms);
    if (outcome === "HANG" || outcome.startsWith("UNTYPED")) findings.push(`case ${i} (${kind}): ${outcome}`);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  console.error(`[iso-fuzz] ${COUNT} images, slowest ${slowest.toFixed(0)} ms: ${[...outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}× ${k}`).join(", ")}`);
  expect(findings).toEqual([]);
  // The mutations reach the guards, not only the first check.
  expect(outcomes.size).toBeGreaterThan(4);
  expect(outcomes.get("ok") ?? 0).toBeGreaterThan(0);
}, 60_000 + COUNT * 50);
