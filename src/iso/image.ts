/** ISO 9660 image reader: primary, Joliet and Rock Ridge names, multi-extent files, lazy directories. */
import { IsoError } from "../errors.ts";
import {
  DESCRIPTOR_START,
  DescriptorType,
  FileFlags,
  SECTOR,
  decodeVolumeDescriptor,
  isDirectory,
  isDotEntry,
  latin1,
  splitDirRecords,
  ucs2,
  type DirRecord,
  type VolumeDescriptor,
} from "./ecma119.ts";
import { lookupKey, normalizeIdentifier, splitPath } from "./names.ts";
import { S_IFLNK, S_IFMT, decodeRockRidge, findSpSkip, parseSuspArea, type RockRidge, type SuspEntry } from "./susp.ts";

/** Random access to the image: the only thing the reader needs ("N bytes at offset"). */
export interface IsoSource {
  readonly size: number;
  /** Resolves to exactly `length` bytes, or rejects. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export interface Extent {
  /** Byte offset in the image. */
  offset: number;
  length: number;
}

export type EntryType = "file" | "dir" | "symlink";

export interface IsoEntry {
  name: string;
  /** Absolute path with the names as this image spells them ("/EFI/BOOT/BOOTX64.EFI"). */
  path: string;
  type: EntryType;
  size: number;
  extents: readonly Extent[];
  mtime: Date | undefined;
  mode: number | undefined;
  /** Symlink target (Rock Ridge SL). */
  target: string | undefined;
}

export type NameSpace = "rockridge" | "joliet" | "iso9660";

export interface OpenOptions {
  /** Force a name space; by default Rock Ridge, then Joliet, then plain ISO 9660. */
  prefer?: NameSpace;
}

/** Limits that turn hostile or broken images into errors instead of hangs. */
const MAX_DESCRIPTORS = 64;
const MAX_DIR_BYTES = 32 * 1024 * 1024;
const MAX_DEPTH = 255;
const MAX_CONTINUATIONS = 32;
const MAX_SYMLINK_HOPS = 16;

export class IsoImage {
  readonly source: IsoSource;
  readonly volumeId: string;
  readonly nameSpace: NameSpace;
  readonly blockSize: number;
  readonly created: Date | undefined;
  /** Problems that do not stop reading (a truncated tail, say). */
  readonly warnings: string[] = [];
  /** Has an El Torito boot record: BIOS firmware (or iPXE's SAN CD-ROM) can boot it. */
  elTorito = false;
  readonly #root: IsoEntry;
  readonly #rootRecord: DirRecord;
  readonly #suspSkip: number | undefined;
  readonly #dirs = new Map<number, Promise<IsoEntry[]>>();
  readonly #joliet: boolean;

  private constructor(source: IsoSource, vd: VolumeDescriptor, nameSpace: NameSpace, suspSkip: number | undefined) {
    this.source = source;
    this.volumeId = vd.volumeId;
    this.nameSpace = nameSpace;
    this.blockSize = vd.blockSize;
    this.created = vd.created;
    this.#rootRecord = vd.root;
    this.#suspSkip = nameSpace === "rockridge" ? suspSkip : undefined;
    this.#joliet = nameSpace === "joliet";
    this.#root = {
      name: "",
      path: "/",
      type: "dir",
      size: vd.root.dataLength,
      extents: [{ offset: vd.root.extent * vd.blockSize, length: vd.root.dataLength }],
      mtime: vd.root.recorded,
      mode: undefined,
      target: undefined,
    };
  }

  static async open(source: IsoSource, options: OpenOptions = {}): Promise<IsoImage> {
    if (source.size < DESCRIPTOR_START + SECTOR) {
      throw new IsoError("E_ISO_NOT_ISO", `not an ISO 9660 image: ${source.size} bytes is too small to hold a volume descriptor`);
    }
    let primary: VolumeDescriptor | undefined;
    let joliet: VolumeDescriptor | undefined;
    let terminated = false;
    let elTorito = false;
    for (let i = 0; i < MAX_DESCRIPTORS; i++) {
      const at = DESCRIPTOR_START + i * SECTOR;
      if (at + SECTOR > source.size) break;
      const raw = await source.read(at, SECTOR);
      const vd = decodeVolumeDescriptor(raw, at);
      if (!vd) {
        if (i === 0) throw new IsoError("E_ISO_NOT_ISO", "not an ISO 9660 image: no CD001 volume descriptor at sector 16");
        break;
      }
      // El Torito §2.0: a boot record volume descriptor naming the specification makes the image bootable.
      if (vd.type === DescriptorType.BootRecord && latin1(raw.subarray(7, 30)) === "EL TORITO SPECIFICATION") elTorito = true;
      if (vd.type === DescriptorType.Terminator) {
        terminated = true;
        break;
      }
      if (vd.type === DescriptorType.Primary && !primary) primary = vd;
      if (vd.type === DescriptorType.Supplementary && vd.joliet && !joliet) joliet = vd;
    }
    if (!primary) throw new IsoError("E_ISO_NO_PVD", "not an ISO 9660 image: no primary volume descriptor");

    const declared = primary.volumeBlocks * primary.blockSize;
    const warnings: string[] = [];
    if (!terminated) warnings.push("no volume descriptor set terminator");
    if (declared > source.size) {
      warnings.push(`image is truncated: the volume claims ${declared} bytes, the source has ${source.size}`);
    }

    // Rock Ridge lives in the primary tree: SUSP "SP" in the first record ("." of the root) says so.
    const rootRecords = await readDirectory(source, primary.root, primary.blockSize, "/");
    const dot = rootRecords[0];
    const spSkip = dot ? findSpSkip(dot.systemUse) : undefined;

    let nameSpace: NameSpace;
    if (options.prefer) nameSpace = options.prefer;
    else if (spSkip !== undefined) nameSpace = "rockridge";
    else if (joliet) nameSpace = "joliet";
    else nameSpace = "iso9660";
    if (nameSpace === "rockridge" && spSkip === undefined) throw new IsoError("E_ISO_NO_RR", "the image has no Rock Ridge entries");
    if (nameSpace === "joliet" && !joliet) throw new IsoError("E_ISO_NO_JOLIET", "the image has no Joliet tree");

    const image = new IsoImage(source, nameSpace === "joliet" ? joliet! : primary, nameSpace, spSkip);
    image.warnings.push(...warnings);
    image.elTorito = elTorito;
    return image;
  }

  get size(): number {
    return this.source.size;
  }

  root(): IsoEntry {
    return this.#root;
  }

  /** Entries of a directory, "." and ".." left out. Rejects when the path is not a directory. */
  async list(path = "/"): Promise<IsoEntry[]> {
    const { entry, chain } = await this.#walk(path, true);
    if (!entry) throw new IsoError("E_ISO_NOT_FOUND", `no such directory: ${path}`);
    if (entry.type !== "dir") throw new IsoError("E_ISO_NOT_DIR", `not a directory: ${path}`);
    return this.#children(entry, chain);
  }

  /**
   * Finds a file or directory, case-insensitively and with or without ";1". An exact spelling wins
   * over a case-folded one. Symlinks inside the image are followed (bounded). Undefined when absent.
   */
  async lookup(path: string): Promise<IsoEntry | undefined> {
    return (await this.#walk(path, true)).entry;
  }

  /** Like lookup, but returns a symlink entry itself instead of its target. */
  async lstat(path: string): Promise<IsoEntry | undefined> {
    return (await this.#walk(path, false)).entry;
  }

  /** Reads part of a file. Multi-extent files read across their extents. */
  async read(entry: IsoEntry, offset = 0, length = entry.size - offset): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > entry.size) {
      throw new IsoError("E_ISO_RANGE", `read of ${length} bytes at ${offset} is outside ${entry.path} (${entry.size} bytes)`);
    }
    const parts: Uint8Array[] = [];
    let skip = offset;
    let want = length;
    for (const ext of entry.extents) {
      if (want === 0) break;
      if (skip >= ext.length) {
        skip -= ext.length;
        continue;
      }
      const n = Math.min(ext.length - skip, want);
      this.checkExtent(entry, ext);
      parts.push(await this.source.read(ext.offset + skip, n));
      want -= n;
      skip = 0;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(length);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Throws when an extent reaches past the end of the source (a truncated image). */
  checkExtent(entry: IsoEntry, ext: Extent): void {
    if (ext.offset + ext.length > this.source.size) {
      throw new IsoError(
        "E_ISO_EXTENT",
        `${entry.path}: extent at byte ${ext.offset} (${ext.length} bytes) reaches past the end of the image (${this.source.size} bytes)`,
      );
    }
  }

  /** Every entry below a directory, depth first, directories before their contents. */
  async *walk(path = "/"): AsyncGenerator<IsoEntry> {
    const { entry, chain } = await this.#walk(path, true);
    if (!entry || entry.type !== "dir") throw new IsoError("E_ISO_NOT_DIR", `not a directory: ${path}`);
    yield* this.#walkFrom(entry, chain);
  }

  async *#walkFrom(dir: IsoEntry, chain: readonly number[]): AsyncGenerator<IsoEntry> {
    for (const child of await this.#children(dir, chain)) {
      yield child;
      if (child.type === "dir") yield* this.#walkFrom(child, [...chain, child.extents[0]!.offset]);
    }
  }

  // --- internal ---

  async #walk(path: string, follow: boolean, hops = 0): Promise<{ entry: IsoEntry | undefined; chain: number[] }> {
    const parts = splitPath(path);
    let cur = this.#root;
    let chain = [cur.extents[0]!.offset];
    const names: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === "..") {
        // Never above the root, and resolved lexically (as URL paths are).
        names.pop();
        const up = await this.#walk("/" + names.join("/"), true, hops);
        if (!up.entry) return { entry: undefined, chain };
        cur = up.entry;
        chain = up.chain;
        continue;
      }
      if (cur.type !== "dir") return { entry: undefined, chain };
      const child = pick(await this.#children(cur, chain), part);
      if (!child) return { entry: undefined, chain };
      const last = i === parts.length - 1;
      if (child.type === "symlink" && (follow || !last)) {
        if (hops >= MAX_SYMLINK_HOPS) throw new IsoError("E_ISO_SYMLINK_LOOP", `too many symbolic links resolving ${path}`);
        const target = child.target ?? "";
        const base = target.startsWith("/") ? target : [...names, target].join("/");
        const rest = parts.slice(i + 1).join("/");
        return this.#walk(rest ? `${base}/${rest}` : base, follow, hops + 1);
      }
      names.push(child.name);
      cur = child;
      if (child.type === "dir") chain = [...chain, child.extents[0]!.offset];
    }
    return { entry: cur, chain };
  }

  #children(dir: IsoEntry, chain: readonly number[]): Promise<IsoEntry[]> {
    const key = dir.extents[0]!.offset;
    let p = this.#dirs.get(key);
    if (!p) {
      if (chain.length > MAX_DEPTH) return Promise.reject(new IsoError("E_ISO_DEPTH", `directory tree deeper than ${MAX_DEPTH} levels at ${dir.path}`));
      p = this.#loadChildren(dir, chain);
      this.#dirs.set(key, p);
      // A failed read is not cached: a transient source error may succeed next time.
      p.catch(() => this.#dirs.delete(key));
    }
    return p;
  }

  async #loadChildren(dir: IsoEntry, chain: readonly number[]): Promise<IsoEntry[]> {
    const ext = dir.extents[0]!;
    const record: DirRecord =
      dir === this.#root
        ? this.#rootRecord
        : { ...this.#rootRecord, extent: ext.offset / this.blockSize, dataLength: ext.length };
    const records = await readDirectory(this.source, record, this.blockSize, dir.path);
    const out: IsoEntry[] = [];
    const ancestors = new Set(chain);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (isDotEntry(r) || r.flags & FileFlags.Associated) continue;
      const rr = this.#suspSkip !== undefined ? await this.#rockRidge(r) : undefined;
      if (rr?.relocated || rr?.nameIsDot) continue;
      const name = rr?.name ?? (this.#joliet ? normalizeIdentifier(ucs2(r.ident)) : normalizeIdentifier(latin1(r.ident)));
      if (name === "" || name.includes("/") || name === "." || name === "..") {
        throw new IsoError("E_ISO_NAME", `bad file name ${JSON.stringify(name)} in ${dir.path}`);
      }
      const path = dir.path === "/" ? `/${name}` : `${dir.path}/${name}`;

      // RRIP CL: the directory really lives elsewhere (deep-tree relocation by mkisofs/genisoimage).
      let extentRecord = r;
      let isDir = isDirectory(r);
      if (rr?.childLink !== undefined) {
        const moved = await readDirectory(this.source, { ...r, extent: rr.childLink, dataLength: this.blockSize }, this.blockSize, path);
        const movedDot = moved[0];
        if (!movedDot) throw new IsoError("E_ISO_RECORD", `relocated directory ${path} is empty`);
        extentRecord = { ...r, extent: rr.childLink, dataLength: movedDot.dataLength };
        isDir = true;
      }

      if (isDir) {
        const offset = extentRecord.extent * this.blockSize;
        if (ancestors.has(offset) || offset === ext.offset) {
          throw new IsoError("E_ISO_LOOP", `directory loop: ${path} points back at an enclosing directory (block ${extentRecord.extent})`);
        }
        out.push({
          name,
          path,
          type: "dir",
          size: extentRecord.dataLength,
          extents: [{ offset, length: extentRecord.dataLength }],
          mtime: rr?.mtime ?? r.recorded,
          mode: rr?.mode,
          target: undefined,
        });
        continue;
      }

      // ECMA-119 §6.5.1: a file may be recorded as several extents, one record each, all but the last
      // flagged multi-extent, all with the same identifier.
      const extents: Extent[] = [{ offset: r.extent * this.blockSize, length: r.dataLength }];
      let last = r;
      while (last.flags & FileFlags.MultiExtent) {
        const next = records[i + 1];
        if (!next || !bytesEq(next.ident, r.ident)) {
          throw new IsoError("E_ISO_EXTENT", `${path}: multi-extent file is missing its next extent`);
        }
        i++;
        last = next;
        extents.push({ offset: next.extent * this.blockSize, length: next.dataLength });
      }
      const size = extents.reduce((n, e) => n + e.length, 0);
      const isLink = rr?.symlink !== undefined || (rr?.mode !== undefined && (rr.mode & S_IFMT) === S_IFLNK);
      out.push({
        name,
        path,
        type: isLink ? "symlink" : "file",
        size: isLink ? 0 : size,
        extents: isLink ? [] : mergeExtents(extents),
        mtime: rr?.mtime ?? r.recorded,
        mode: rr?.mode,
        target: isLink ? (rr?.symlink ?? "") : undefined,
      });
    }
    return out;
  }

  async #rockRidge(r: DirRecord): Promise<RockRidge> {
    const skip = this.#suspSkip ?? 0;
    let area = parseSuspArea(r.systemUse.subarray(skip));
    const entries: SuspEntry[] = [...area.entries];
    for (let hops = 0; area.continuation; hops++) {
      if (hops >= MAX_CONTINUATIONS) throw new IsoError("E_ISO_SUSP", "too many SUSP continuation areas (a CE loop?)");
      const c = area.continuation;
      if (c.length > this.blockSize || c.offset + c.length > this.blockSize * 2) {
        throw new IsoError("E_ISO_SUSP", `SUSP continuation area of ${c.length} bytes at block ${c.block} is too large`);
      }
      const at = c.block * this.blockSize + c.offset;
      if (at + c.length > this.source.size) throw new IsoError("E_ISO_SUSP", `SUSP continuation area at byte ${at} is past the end of the image`);
      area = parseSuspArea(await this.source.read(at, c.length));
      entries.push(...area.entries);
    }
    return decodeRockRidge(entries);
  }
}

// --- internal ---

async function readDirectory(source: IsoSource, record: DirRecord, blockSize: number, where: string): Promise<DirRecord[]> {
  const offset = record.extent * blockSize;
  const length = record.dataLength;
  if (length > MAX_DIR_BYTES) throw new IsoError("E_ISO_ABSURD", `directory ${where} claims ${length} bytes (limit ${MAX_DIR_BYTES})`);
  if (length === 0) return [];
  if (offset + length > source.size) {
    throw new IsoError("E_ISO_EXTENT", `directory ${where} at byte ${offset} (${length} bytes) reaches past the end of the image (${source.size} bytes)`);
  }
  return splitDirRecords(await source.read(offset, length), blockSize, `directory ${where} at byte ${offset}`);
}

interface DirIndex {
  exact: Map<string, IsoEntry>;
  folded: Map<string, IsoEntry>;
}
const indexes = new WeakMap<readonly IsoEntry[], DirIndex>();

function pick(children: readonly IsoEntry[], name: string): IsoEntry | undefined {
  let index = indexes.get(children);
  if (!index) {
    index = { exact: new Map(), folded: new Map() };
    for (const c of children) {
      if (!index.exact.has(c.name)) index.exact.set(c.name, c);
      const key = lookupKey(c.name);
      if (!index.folded.has(key)) index.folded.set(key, c);
    }
    indexes.set(children, index);
  }
  return index.exact.get(normalizeIdentifier(name)) ?? index.folded.get(lookupKey(name));
}

function mergeExtents(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    if (e.length === 0) continue;
    const prev = out[out.length - 1];
    if (prev && prev.offset + prev.length === e.offset) prev.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
