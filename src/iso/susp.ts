/** System Use Sharing Protocol (IEEE P1281) and Rock Ridge (IEEE P1282) entries: pure decoding. */
import { latin1 } from "./ecma119.ts";

export interface SuspEntry {
  sig: string;
  version: number;
  data: Uint8Array;
}

export interface Continuation {
  block: number;
  offset: number;
  length: number;
}

export interface SuspArea {
  entries: SuspEntry[];
  /** SUSP §5.1 "CE": the entries go on in this continuation area. */
  continuation: Continuation | undefined;
}

/** Splits a system use area into entries; stops at "ST" or at anything too short to be an entry. */
export function parseSuspArea(area: Uint8Array): SuspArea {
  const entries: SuspEntry[] = [];
  let continuation: Continuation | undefined;
  let pos = 0;
  while (pos + 4 <= area.length) {
    const len = area[pos + 2]!;
    if (len < 4 || pos + len > area.length) break;
    const sig = latin1(area.subarray(pos, pos + 2));
    const data = area.subarray(pos + 4, pos + len);
    if (sig === "ST") break;
    if (sig === "CE" && data.length >= 24) {
      const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
      continuation = { block: v.getUint32(0, true), offset: v.getUint32(8, true), length: v.getUint32(16, true) };
    } else {
      entries.push({ sig, version: area[pos + 3]!, data });
    }
    pos += len;
  }
  return { entries, continuation };
}

/** SUSP §5.3 "SP" in the first record of the root directory: marks SUSP use and the bytes to skip. */
export function findSpSkip(rootDotSystemUse: Uint8Array): number | undefined {
  const { entries } = parseSuspArea(rootDotSystemUse);
  const sp = entries.find((e) => e.sig === "SP");
  if (!sp || sp.data.length < 3 || sp.data[0] !== 0xbe || sp.data[1] !== 0xef) return undefined;
  return sp.data[2]!;
}

/** What Rock Ridge says about one directory record. */
export interface RockRidge {
  /** RRIP §4.1.4 "NM", joined across CONTINUE parts; undefined when absent. */
  name: string | undefined;
  /** NM flags CURRENT/PARENT name "." or "..". */
  nameIsDot: boolean;
  /** RRIP §4.1.1 "PX" st_mode. */
  mode: number | undefined;
  /** RRIP §4.1.3 "SL": symbolic link target. */
  symlink: string | undefined;
  /** RRIP §4.1.5.1 "CL": this record stands for a directory relocated to this block. */
  childLink: number | undefined;
  /** RRIP §4.1.5.3 "RE": this directory is a relocated one; hide it where it physically sits. */
  relocated: boolean;
  /** RRIP §4.1.6 "TF" modification time. */
  mtime: Date | undefined;
}

export function decodeRockRidge(entries: readonly SuspEntry[]): RockRidge {
  const rr: RockRidge = { name: undefined, nameIsDot: false, mode: undefined, symlink: undefined, childLink: undefined, relocated: false, mtime: undefined };
  let name = "";
  let sawName = false;
  const linkParts: string[] = [];
  let joinNext = false;
  for (const e of entries) {
    const d = e.data;
    switch (e.sig) {
      case "NM": {
        const flags = d[0] ?? 0;
        if (flags & 0x06) rr.nameIsDot = true;
        name += utf8(d.subarray(1));
        sawName = true;
        break;
      }
      case "PX":
        if (d.length >= 4) rr.mode = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0, true);
        break;
      case "CL":
        if (d.length >= 4) rr.childLink = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0, true);
        break;
      case "RE":
        rr.relocated = true;
        break;
      case "SL": {
        // Entry flags byte, then component records (flags, length, content). CONTINUE on a component
        // (bit 0) joins it with the next one; CURRENT (1), PARENT (2), ROOT (3) are "." , ".." and "/".
        let p = 1;
        while (p + 2 <= d.length) {
          const cf = d[p]!;
          const clen = d[p + 1]!;
          const part = cf & 0x02 ? "." : cf & 0x04 ? ".." : cf & 0x08 ? "" : utf8(d.subarray(p + 2, p + 2 + clen));
          if (joinNext && linkParts.length > 0) linkParts[linkParts.length - 1] += part;
          else linkParts.push(part);
          joinNext = (cf & 0x01) !== 0;
          p += 2 + clen;
        }
        rr.symlink = linkParts.length === 1 && linkParts[0] === "" ? "/" : linkParts.join("/");
        break;
      }
      case "TF":
        rr.mtime = tfModify(d) ?? rr.mtime;
        break;
      default:
        break;
    }
  }
  if (sawName) rr.name = name;
  return rr;
}

/** True when a PX mode says "directory" (S_IFDIR) or "symlink" (S_IFLNK). */
export const S_IFMT = 0o170000;
export const S_IFLNK = 0o120000;

// --- internal ---

const utf8Decoder = new TextDecoder("utf-8");
function utf8(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

/** TF: flags byte, then 7- or 17-byte stamps in the order creation, modify, access, … as flagged. */
function tfModify(d: Uint8Array): Date | undefined {
  const flags = d[0] ?? 0;
  const long = (flags & 0x80) !== 0;
  const size = long ? 17 : 7;
  let p = 1;
  if (flags & 0x01) p += size; // creation
  if (!(flags & 0x02) || p + size > d.length) return undefined;
  const b = d.subarray(p, p + size);
  if (long) return undefined; // 17-byte form is rare; the directory record date is used instead.
  if (b[1] === 0) return undefined;
  const offset = (b[6]! << 24) >> 24;
  return new Date(Date.UTC(1900 + b[0]!, b[1]! - 1, b[2]!, b[3]!, b[4]!, b[5]!) - offset * 900_000);
}
