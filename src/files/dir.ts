/**
 * FileTree over a directory: a mounted ISO (`mount -o loop`, `hdiutil attach`) or an extracted tree.
 * Lookup is case-insensitive and ignores ISO 9660 version suffixes (a mount with map=off shows
 * "B.B00;1"), as for an ISO. Symlinks are followed only while they stay inside the directory.
 */
import { close, open } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { LIMITS } from "../config.ts";
import { join, sep } from "node:path";
import { SourceError } from "../errors.ts";
import { lookupKey, splitPath } from "../iso/names.ts";
import { preadExact, sourceErrorFromFs } from "./source.ts";
import type { FileData, FileInfo, FileTree } from "./tree.ts";

/** Directory listings kept this long: a mounted ISO never changes, an extracted tree rarely does. */
const LISTING_TTL_MS = LIMITS.dirListingTtlMs;

interface Listing {
  at: number;
  byKey: Map<string, string>;
}

export async function openDirTree(dir: string): Promise<FileTree> {
  let root: string;
  try {
    root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) throw new SourceError("E_SOURCE_KIND", `${dir} is not a directory`);
  } catch (err) {
    if (err instanceof SourceError) throw err;
    throw sourceErrorFromFs(err, dir);
  }
  const listings = new Map<string, Listing>();

  /** Names in a real directory by lookup key (the first spelling wins when two differ only in case). */
  const listing = async (real: string): Promise<Map<string, string>> => {
    const hit = listings.get(real);
    if (hit && Date.now() - hit.at < LISTING_TTL_MS) return hit.byKey;
    const names = (await readdir(real)).sort();
    const byKey = new Map<string, string>();
    for (const n of names) if (!byKey.has(lookupKey(n))) byKey.set(lookupKey(n), n);
    listings.set(real, { at: Date.now(), byKey });
    return byKey;
  };

  const inside = (real: string) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);

  /** Tree path → real path inside root (symlinks resolved and contained), with the names as spelled on disk. */
  const resolve = async (path: string): Promise<{ real: string; spelled: string } | undefined> => {
    let real = root;
    let spelled = "";
    for (const part of splitPath(path)) {
      if (part === "..") return undefined;
      const name = (await listing(real).catch(() => undefined))?.get(lookupKey(part));
      if (name === undefined) return undefined;
      let next: string;
      try {
        next = await realpath(join(real, name));
      } catch {
        return undefined; // a dangling symlink
      }
      if (!inside(next)) return undefined; // a symlink that leads out of the directory
      real = next;
      spelled += `/${name}`;
    }
    return { real, spelled: spelled || "/" };
  };

  const infoOf = async (real: string, spelled: string): Promise<FileInfo | undefined> => {
    const st = await stat(real).catch(() => undefined);
    if (!st || !(st.isFile() || st.isDirectory())) return undefined;
    const name = spelled === "/" ? "" : spelled.slice(spelled.lastIndexOf("/") + 1);
    return { name, path: spelled, type: st.isDirectory() ? "dir" : "file", size: st.isDirectory() ? 0 : st.size, mtime: st.mtime };
  };

  return {
    kind: "dir",
    local: true,
    description: `${root} (directory)`,
    async stat(path) {
      const r = await resolve(path);
      return r ? infoOf(r.real, r.spelled) : undefined;
    },
    async list(path) {
      const r = await resolve(path);
      if (!r) return [];
      const names = [...(await listing(r.real)).values()];
      const out: FileInfo[] = [];
      for (const n of names) {
        const child = await resolve(`${r.spelled}/${n}`);
        const info = child && (await infoOf(child.real, child.spelled));
        if (info) out.push(info);
      }
      return out;
    },
    async open(fi): Promise<FileData> {
      const r = await resolve(fi.path);
      const st = r ? await stat(r.real).catch(() => undefined) : undefined;
      if (!r || !st?.isFile()) throw new SourceError("E_SOURCE_NOT_FOUND", `${fi.path}: not a file in ${root}`);
      const real = r.real;
      const size = st.size;
      return {
        size,
        mtime: st.mtime,
        etag: `"d-${st.ino.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${size.toString(16)}"`,
        read: (offset, length) => preadOnce(real, offset, length, size),
        local: { path: real, offset: 0 },
      };
    },
    async close() {
      listings.clear();
    },
  };
}

/** One positional read of exactly `length` bytes (open, read, close: these reads are rare, sendfile does the rest). */
async function preadOnce(path: string, offset: number, length: number, size: number): Promise<Uint8Array> {
  if (offset < 0 || length < 0 || offset + length > size) throw new SourceError("E_SOURCE_RANGE", `${path}: read of ${length} bytes at ${offset} is past the end (${size} bytes)`);
  const fd = await new Promise<number>((res, rej) => open(path, "r", (e, f) => (e ? rej(sourceErrorFromFs(e, path)) : res(f))));
  try {
    return await preadExact(fd, path, offset, length);
  } finally {
    close(fd, () => {});
  }
}
