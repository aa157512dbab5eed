/**
 * Replacing one file of an ISO 9660 image without rewriting it: the image stays byte for byte as it is,
 * except for a few patched fields. The new content goes after the last sector (or over the file's own
 * sectors when it fits there), the file's directory record in every tree that names it (primary and
 * Joliet) gets the new extent and length (both byte orders, ECMA-119 §9.1.3-4), and the volume space size
 * of every descriptor (§8.4.8) grows to cover the appended sectors. What reads the image as a disc
 * (ISOLINUX, iPXE's SAN CD-ROM, xorriso) then finds the new file; nothing else moves.
 *
 * `planReplacement` reads the descriptors and the directories down to the file once; `replaceFile` is
 * then pure and cheap, so every client can get its own content.
 */
import { IsoError } from "../errors.ts";
import { DESCRIPTOR_START, DescriptorType, FileFlags, SECTOR, decodeVolumeDescriptor, dirRecordsAt, isDotEntry, latin1, ucs2, type DirRecord, type VolumeDescriptor } from "./ecma119.ts";
import type { IsoSource } from "./image.ts";
import { lookupKey, normalizeIdentifier, splitPath } from "./names.ts";

export interface Patch {
  /** Byte offset in the image. */
  offset: number;
  bytes: Uint8Array;
}

/** Where one file is recorded, and what else has to change when it moves. */
export interface ReplacementPlan {
  path: string;
  /** Bytes of the source image. */
  sourceSize: number;
  blockSize: number;
  /** Byte offset of each directory record naming the file (one per tree). */
  records: number[];
  /** The file's extent (byte offset) and length as recorded. */
  extent: number;
  length: number;
  /** Byte offset of each primary/supplementary descriptor (their volume space sizes grow). */
  descriptors: number[];
  /** Volume space size of the image, in blocks (the primary's). */
  volumeBlocks: number;
  /** Where appended content starts: after the last byte of the source and of the volume, block-aligned. */
  tailStart: number;
}

export interface Replacement {
  /** Size of the resulting image. */
  size: number;
  /** Sorted, non-overlapping. */
  patches: Patch[];
}

/** Finds the file's records in every tree. Rejects when the file is missing, a directory or multi-extent. */
export async function planReplacement(source: IsoSource, path: string): Promise<ReplacementPlan> {
  const descriptors: VolumeDescriptor[] = [];
  for (let i = 0; i < 64; i++) {
    const at = DESCRIPTOR_START + i * SECTOR;
    if (at + SECTOR > source.size) break;
    const vd = decodeVolumeDescriptor(await source.read(at, SECTOR), at);
    if (!vd || vd.type === DescriptorType.Terminator) break;
    if (vd.type === DescriptorType.Primary || vd.type === DescriptorType.Supplementary) descriptors.push(vd);
  }
  const primary = descriptors.find((d) => d.type === DescriptorType.Primary);
  if (!primary) throw new IsoError("E_ISO_NO_PVD", "not an ISO 9660 image: no primary volume descriptor");
  const trees = descriptors.filter((d) => d.type === DescriptorType.Primary || d.joliet);
  const found: Array<{ at: number; record: DirRecord }> = [];
  for (const vd of trees) {
    const hit = await findRecord(source, vd, path);
    if (hit) found.push(hit);
    else if (vd === primary) throw new IsoError("E_ISO_NOT_FOUND", `${path} is not in the image`);
  }
  const first = found[0]!.record;
  if (first.flags & FileFlags.Directory) throw new IsoError("E_ISO_NOT_FILE", `${path} is a directory`);
  if (found.some((f) => f.record.flags & FileFlags.MultiExtent)) throw new IsoError("E_ISO_EXTENT", `${path} is recorded in several extents`);
  const blockSize = primary.blockSize;
  const volumeEnd = primary.volumeBlocks * blockSize;
  return {
    path,
    sourceSize: source.size,
    blockSize,
    records: found.map((f) => f.at),
    extent: first.extent * blockSize,
    length: first.dataLength,
    descriptors: descriptors.map((d) => d.at),
    volumeBlocks: primary.volumeBlocks,
    tailStart: roundUp(Math.max(source.size, volumeEnd), blockSize),
  };
}

/** The patches that make the image hold `content` at the plan's path. */
export function replaceFile(plan: ReplacementPlan, content: Uint8Array): Replacement {
  return replaceFiles([{ plan, content }]);
}

/**
 * Several files replaced at once (plans of one image, different files): each goes over its own sectors
 * when it fits there, else after the image and after the one appended before it.
 */
export function replaceFiles(files: ReadonlyArray<{ plan: ReplacementPlan; content: Uint8Array }>): Replacement {
  if (files.length === 0) throw new RangeError("no file to replace");
  const first = files[0]!.plan;
  const bs = first.blockSize;
  const patches: Patch[] = [];
  let tail = first.tailStart;
  let grew = false;
  for (const { plan, content } of files) {
    const allocated = roundUp(plan.length, bs);
    let extent = plan.extent;
    if (plan.length > 0 && content.length <= allocated) {
      // Over the file's own sectors; the rest of what it held is zeroed.
      const bytes = new Uint8Array(allocated);
      bytes.set(content);
      patches.push({ offset: plan.extent, bytes: bytes.subarray(0, Math.max(content.length, plan.length)) });
    } else {
      extent = tail;
      const bytes = new Uint8Array(Math.max(1, Math.ceil(content.length / bs)) * bs);
      bytes.set(content);
      // Bytes between the end of the source and the tail (a source shorter than its volume) read as zeros.
      patches.push({ offset: extent, bytes });
      tail = extent + bytes.length;
      grew = true;
    }
    for (const at of plan.records) {
      patches.push({ offset: at + 2, bytes: bothEndian32(extent / bs) });
      patches.push({ offset: at + 10, bytes: bothEndian32(content.length) });
    }
  }
  const size = grew ? tail : first.sourceSize;
  if (grew) for (const at of first.descriptors) patches.push({ offset: at + 80, bytes: bothEndian32(size / bs) });
  patches.sort((a, b) => a.offset - b.offset);
  return { size, patches };
}

// --- internal ---

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** ECMA-119 §7.3.3: a 32-bit number little-endian, then big-endian. */
function bothEndian32(n: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, n, true);
  v.setUint32(4, n, false);
  return b;
}

/** Walks one tree down to `path` by its own identifiers (";1" and a trailing "." ignored, any case). */
async function findRecord(source: IsoSource, vd: VolumeDescriptor, path: string): Promise<{ at: number; record: DirRecord } | undefined> {
  const parts = splitPath(path);
  let dir = { extent: vd.root.extent * vd.blockSize, length: vd.root.dataLength };
  for (let i = 0; i < parts.length; i++) {
    const want = lookupKey(parts[i]!);
    if (dir.length > 32 * 1024 * 1024 || dir.extent + dir.length > source.size) return undefined;
    const bytes = await source.read(dir.extent, dir.length);
    let hit: { at: number; record: DirRecord } | undefined;
    for (const { pos, record } of dirRecordsAt(bytes, vd.blockSize, `directory of ${path}`)) {
      if (isDotEntry(record)) continue;
      const name = normalizeIdentifier(vd.joliet ? ucs2(record.ident) : latin1(record.ident));
      if (lookupKey(name) === want) {
        hit = { at: dir.extent + pos, record };
        break;
      }
    }
    if (!hit) return undefined;
    if (i === parts.length - 1) return hit;
    if (!(hit.record.flags & FileFlags.Directory)) return undefined;
    dir = { extent: hit.record.extent * vd.blockSize, length: hit.record.dataLength };
  }
  return undefined;
}
