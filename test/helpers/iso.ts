/** Builds ISO images with xorriso / genisoimage for the tests, and reads them with our reader. */
import { mkdirSync, writeFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { openFileSource } from "../../src/files/source.ts";
import { IsoImage } from "../../src/iso/image.ts";
import { run, sha256, tempDir, type TreeEntry } from "./tools.ts";

export type TreeSpec = Record<string, string | Uint8Array | { symlink: string } | { dir: true }>;

/** Writes a tree spec ("a/b.txt": contents) into a fresh directory. */
export function writeTree(spec: TreeSpec, root = join(tempDir("tree-"), "src")): string {
  mkdirSync(root, { recursive: true });
  for (const [rel, v] of Object.entries(spec)) {
    const full = join(root, rel);
    mkdirSync(dirname(full), { recursive: true });
    if (typeof v === "string" || v instanceof Uint8Array) writeFileSync(full, v);
    else if ("symlink" in v) symlinkSync(v.symlink, full);
    else mkdirSync(full, { recursive: true });
  }
  return root;
}

/** `xorriso -as mkisofs ARGS -o out.iso SRC`; returns the image path. */
export function mkisofs(src: string, args: readonly string[], tool: "xorriso" | "genisoimage" = "xorriso"): string {
  const out = join(tempDir("iso-"), "image.iso");
  const argv = tool === "xorriso" ? ["-as", "mkisofs", ...args, "-o", out, src] : [...args, "-o", out, src];
  run(tool, argv, { stdio: ["ignore", "ignore", "pipe"] });
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32), so fixtures are reproducible. */
export function pseudoRandom(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export async function openIso(path: string): Promise<IsoImage> {
  return IsoImage.open(await openFileSource(path));
}

/** Our reader's view of an image, in the same shape as the xorriso listing. */
export async function readerListing(image: IsoImage): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  for await (const e of image.walk("/")) {
    if (e.type === "dir") out.set(e.path, { type: "dir", size: 0 });
    else if (e.type === "symlink") out.set(e.path, { type: "symlink", size: 0, target: e.target });
    else out.set(e.path, { type: "file", size: e.size, sha256: sha256(await image.read(e)) });
  }
  return out;
}
