/** ECMA-119 (ISO 9660) volume descriptors and directory records: pure decoding, no I/O. */
import { IsoError } from "../errors.ts";

export const SECTOR = 2048;
/** ECMA-119 §6.2.1: the system area is the first 16 logical sectors; descriptors follow. */
export const DESCRIPTOR_START = 16 * SECTOR;
const STANDARD_ID = "CD001";

/** ECMA-119 §8.1.1 volume descriptor types. */
export const DescriptorType = { BootRecord: 0, Primary: 1, Supplementary: 2, Partition: 3, Terminator: 255 } as const;

export interface VolumeDescriptor {
  type: number;
  /** Byte offset of the descriptor in the image. */
  at: number;
  volumeId: string;
  /** ECMA-119 §8.4.8: volume space size in logical blocks. */
  volumeBlocks: number;
  /** ECMA-119 §8.4.12: logical block size (2048 on every CD/DVD image seen). */
  blockSize: number;
  root: DirRecord;
  /** Joliet level (1..3) when this supplementary descriptor carries the Joliet escape sequence, else 0. */
  joliet: number;
  created: Date | undefined;
}

export interface DirRecord {
  /** LEN_DR: total length of the record. */
  length: number;
  extAttrLength: number;
  extent: number;
  dataLength: number;
  recorded: Date | undefined;
  flags: number;
  /** Raw file identifier bytes (d-characters, or UCS-2 BE under Joliet). */
  ident: Uint8Array;
  /** System use area (where SUSP / Rock Ridge entries live). */
  systemUse: Uint8Array;
}

/** ECMA-119 §9.1.6 file flags. */
export const FileFlags = { Hidden: 1, Directory: 2, Associated: 4, Record: 8, Protection: 16, MultiExtent: 128 } as const;

/** Decodes one volume descriptor sector; undefined when it does not carry the standard identifier. */
export function decodeVolumeDescriptor(sector: Uint8Array, at: number): VolumeDescriptor | undefined {
  if (sector.length < SECTOR) throw new IsoError("E_ISO_TRUNCATED", `volume descriptor at byte ${at} is cut short (${sector.length} bytes)`);
  if (latin1(sector.subarray(1, 6)) !== STANDARD_ID) return undefined;
  const type = sector[0]!;
  const base: VolumeDescriptor = {
    type,
    at,
    volumeId: "",
    volumeBlocks: 0,
    blockSize: SECTOR,
    root: emptyRecord(),
    joliet: 0,
    created: undefined,
  };
  if (type !== DescriptorType.Primary && type !== DescriptorType.Supplementary) return base;
  const v = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  // Both-endian fields (ECMA-119 §7.2.3, §7.3.3): read the little-endian half. Real images are sometimes
  // mastered with a wrong big-endian half, and other readers learned to trust LE (TotalImage #45, ppsspp #14029).
  base.volumeBlocks = v.getUint32(80, true);
  base.blockSize = v.getUint16(128, true);
  if (base.blockSize !== 512 && base.blockSize !== 1024 && base.blockSize !== 2048) {
    throw new IsoError("E_ISO_BLOCKSIZE", `volume descriptor at byte ${at}: logical block size ${base.blockSize} is not 512, 1024 or 2048`);
  }
  // Joliet: escape sequences %/@ (level 1), %/C (2), %/E (3) at offset 88 of a supplementary descriptor.
  if (type === DescriptorType.Supplementary && sector[88] === 0x25 && sector[89] === 0x2f) {
    base.joliet = sector[90] === 0x40 ? 1 : sector[90] === 0x43 ? 2 : sector[90] === 0x45 ? 3 : 0;
  }
  base.volumeId = (base.joliet ? ucs2(sector.subarray(40, 72)) : latin1(sector.subarray(40, 72))).trimEnd();
  base.root = decodeDirRecord(sector.subarray(156, 190), `root record of descriptor at byte ${at}`);
  base.created = decimalDate(sector.subarray(813, 830));
  return base;
}

/** Decodes a directory record that starts at the beginning of `b` (ECMA-119 §9.1). */
export function decodeDirRecord(b: Uint8Array, where: string): DirRecord {
  const length = b[0] ?? 0;
  if (length < 34 || length > b.length) {
    throw new IsoError("E_ISO_RECORD", `bad directory record at ${where}: length ${length}`);
  }
  const v = new DataView(b.buffer, b.byteOffset, length);
  const identLength = b[32]!;
  if (33 + identLength > length) {
    throw new IsoError("E_ISO_RECORD", `bad directory record at ${where}: identifier of ${identLength} bytes overruns record of ${length}`);
  }
  const identEnd = 33 + identLength;
  const suStart = identEnd + (identLength % 2 === 0 ? 1 : 0);
  return {
    length,
    extAttrLength: b[1]!,
    extent: v.getUint32(2, true),
    dataLength: v.getUint32(10, true),
    recorded: recordDate(b.subarray(18, 25)),
    flags: b[25]!,
    ident: b.subarray(33, identEnd),
    systemUse: suStart < length ? b.subarray(suStart, length) : new Uint8Array(0),
  };
}

/**
 * Splits a directory extent into its records. Records never cross a logical sector boundary; a zero
 * length byte means "the rest of this sector is padding" (ECMA-119 §6.8.1.1).
 */
export function splitDirRecords(extent: Uint8Array, blockSize: number, where: string): DirRecord[] {
  return [...dirRecordsAt(extent, blockSize, where)].map((r) => r.record);
}

/** The records of a directory extent with their byte position in it (for patching them in place). */
export function* dirRecordsAt(extent: Uint8Array, blockSize: number, where: string): Generator<{ pos: number; record: DirRecord }> {
  let pos = 0;
  while (pos < extent.length) {
    const len = extent[pos]!;
    if (len === 0) {
      pos = (Math.floor(pos / blockSize) + 1) * blockSize;
      continue;
    }
    const sectorEnd = (Math.floor(pos / blockSize) + 1) * blockSize;
    if (pos + len > Math.min(sectorEnd, extent.length)) {
      throw new IsoError("E_ISO_RECORD", `directory record at ${where}+${pos} (length ${len}) crosses a sector boundary or the end of the directory`);
    }
    yield { pos, record: decodeDirRecord(extent.subarray(pos, pos + len), `${where}+${pos}`) };
    pos += len;
  }
}

export function isDirectory(r: DirRecord): boolean {
  return (r.flags & FileFlags.Directory) !== 0;
}

/** "." and ".." are the single bytes 0x00 and 0x01 (ECMA-119 §6.8.2.2). */
export function isDotEntry(r: DirRecord): boolean {
  return r.ident.length === 1 && (r.ident[0] === 0 || r.ident[0] === 1);
}

export function latin1(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** Joliet identifiers are UCS-2 big-endian (surrogate pairs decode as UTF-16). */
export function ucs2(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
  return s.replace(/\u0000+$/, "");
}

// --- internal ---

function emptyRecord(): DirRecord {
  return { length: 0, extAttrLength: 0, extent: 0, dataLength: 0, recorded: undefined, flags: 0, ident: new Uint8Array(0), systemUse: new Uint8Array(0) };
}

/** ECMA-119 §9.1.5: years since 1900, month, day, hour, minute, second, offset from GMT in 15-minute units. */
function recordDate(b: Uint8Array): Date | undefined {
  if (b.length < 7 || b[1] === 0) return undefined;
  const offset = (b[6]! << 24) >> 24;
  const utc = Date.UTC(1900 + b[0]!, b[1]! - 1, b[2]!, b[3]!, b[4]!, b[5]!);
  const d = new Date(utc - offset * 15 * 60 * 1000);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** ECMA-119 §8.4.26.1: "YYYYMMDDHHMMSScc" digits plus a GMT offset byte. */
function decimalDate(b: Uint8Array): Date | undefined {
  const s = latin1(b.subarray(0, 16));
  if (!/^\d{16}$/.test(s) || s.startsWith("0000")) return undefined;
  const offset = (b[16]! << 24) >> 24;
  const utc = Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8), +s.slice(8, 10), +s.slice(10, 12), +s.slice(12, 14));
  const d = new Date(utc - offset * 15 * 60 * 1000);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
