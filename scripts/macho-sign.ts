/**
 * Ad-hoc code signatures for the darwin executables, written here because `bun build --compile` leaves the
 * darwin-x64 one broken when it cross-compiles: it keeps Bun's own runtime signature (identifier "bun",
 * hardened runtime) whose code limit stops short of the embedded program, so page hashes no longer match
 * and macOS kills the binary at launch (oven-sh/bun#29306, deepcoldy/botmux#1287). darwin-arm64 gets a valid
 * linker-style ad-hoc signature from Bun; this writes the same kind for both.
 *
 * An ad-hoc signature is a SuperBlob (magic 0xfade0cc0) holding one CodeDirectory (0xfade0c02, version
 * 0x20400, flags CS_ADHOC | CS_LINKER_SIGNED) with a SHA-256 hash of every 4096-byte page of the file up to
 * the signature itself (the code limit), no certificate and no requirements: what ld64 writes with
 * `-adhoc_codesign` and what Bun writes for arm64 (xnu osfmk/kern/cs_blobs.h; Apple's codesign(1)). The
 * LC_CODE_SIGNATURE load command and the __LINKEDIT segment are resized to hold it, then the pages are
 * hashed (the load commands are inside the first page).
 *
 *   bun scripts/macho-sign.ts FILE [IDENTIFIER]     re-signs FILE in place
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
const CS_ADHOC = 0x2;
const CS_LINKER_SIGNED = 0x20000;
const CS_HASHTYPE_SHA256 = 2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const PAGE_SHIFT = 12;
const PAGE = 1 << PAGE_SHIFT;

export interface MachOLayout {
  cputype: number;
  /** Byte offset of the LC_CODE_SIGNATURE command, and its data (offset, size). */
  signatureCommand: number;
  dataoff: number;
  datasize: number;
  /** Byte offset of the __LINKEDIT LC_SEGMENT_64 command, its file offset and size. */
  linkedit: { at: number; fileoff: number; filesize: number; vmsize: number };
  /** __TEXT's file size: the executable segment a CodeDirectory names. */
  textFilesize: number;
}

export interface CodeDirectory {
  version: number;
  flags: number;
  identifier: string;
  hashType: number;
  pageSize: number;
  codeLimit: number;
  nSpecialSlots: number;
  hashes: Uint8Array[];
  execSegLimit: number;
}

/** The load commands a signature touches; throws for anything but a thin 64-bit Mach-O with a signature slot. */
export function machOLayout(file: Uint8Array): MachOLayout {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (v.getUint32(0, true) !== MH_MAGIC_64) throw new Error("not a thin 64-bit Mach-O file");
  const cputype = v.getUint32(4, true);
  const ncmds = v.getUint32(16, true);
  let off = 32;
  let signatureCommand = -1;
  let linkedit: MachOLayout["linkedit"] | undefined;
  let textFilesize = 0;
  for (let i = 0; i < ncmds; i++) {
    const cmd = v.getUint32(off, true);
    const size = v.getUint32(off + 4, true);
    if (cmd === LC_CODE_SIGNATURE) signatureCommand = off;
    if (cmd === LC_SEGMENT_64) {
      const name = new TextDecoder().decode(file.subarray(off + 8, off + 24)).replace(/\0.*$/s, "");
      const seg = { at: off, vmsize: Number(v.getBigUint64(off + 32, true)), fileoff: Number(v.getBigUint64(off + 40, true)), filesize: Number(v.getBigUint64(off + 48, true)) };
      if (name === "__LINKEDIT") linkedit = seg;
      if (name === "__TEXT") textFilesize = seg.filesize;
    }
    off += size;
  }
  if (signatureCommand < 0) throw new Error("no LC_CODE_SIGNATURE load command");
  if (!linkedit) throw new Error("no __LINKEDIT segment");
  return { cputype, signatureCommand, dataoff: v.getUint32(signatureCommand + 8, true), datasize: v.getUint32(signatureCommand + 12, true), linkedit, textFilesize };
}

/** Signs `file` ad hoc (a new array: the file may grow). */
export function adhocSign(file: Uint8Array, identifier: string): Uint8Array {
  const layout = machOLayout(file);
  const codeLimit = layout.dataoff;
  if (codeLimit % 16 !== 0 || codeLimit < layout.linkedit.fileoff) throw new Error(`signature offset ${codeLimit} is not where a signature can be`);
  const nCodeSlots = Math.ceil(codeLimit / PAGE);
  const ident = new TextEncoder().encode(identifier + "\0");
  const cdHeader = 88;
  const hashOffset = cdHeader + ident.length;
  const cdLength = hashOffset + nCodeSlots * 32;
  const sigLength = 20 + cdLength;
  // As ld64 and Bun write it: the data area is exactly the SuperBlob.
  const datasize = sigLength;
  const out = new Uint8Array(codeLimit + datasize);
  out.set(file.subarray(0, codeLimit));
  const v = new DataView(out.buffer);
  v.setUint32(layout.signatureCommand + 12, datasize, true);
  const linkeditSize = codeLimit + datasize - layout.linkedit.fileoff;
  // __LINKEDIT's vmsize covers its file size in 4 KiB pages, as Bun's linker writes it for both
  // architectures (the last segment: nothing is placed after it).
  v.setBigUint64(layout.linkedit.at + 48, BigInt(linkeditSize), true);
  v.setBigUint64(layout.linkedit.at + 32, BigInt(Math.ceil(linkeditSize / 0x1000) * 0x1000), true);

  const sb = codeLimit;
  v.setUint32(sb, CSMAGIC_EMBEDDED_SIGNATURE, false);
  v.setUint32(sb + 4, sigLength, false);
  v.setUint32(sb + 8, 1, false);
  v.setUint32(sb + 12, CSSLOT_CODEDIRECTORY, false);
  v.setUint32(sb + 16, 20, false);
  const cd = sb + 20;
  v.setUint32(cd, CSMAGIC_CODEDIRECTORY, false);
  v.setUint32(cd + 4, cdLength, false);
  v.setUint32(cd + 8, 0x20400, false);
  v.setUint32(cd + 12, CS_ADHOC | CS_LINKER_SIGNED, false);
  v.setUint32(cd + 16, hashOffset, false);
  v.setUint32(cd + 20, cdHeader, false);
  v.setUint32(cd + 24, 0, false); // no special slots: no Info.plist, requirements or entitlements
  v.setUint32(cd + 28, nCodeSlots, false);
  v.setUint32(cd + 32, codeLimit, false);
  out[cd + 36] = 32;
  out[cd + 37] = CS_HASHTYPE_SHA256;
  out[cd + 38] = 0;
  out[cd + 39] = PAGE_SHIFT;
  // spare2, scatterOffset, teamOffset, spare3 stay 0; codeLimit64 is 0 when codeLimit fits in 32 bits.
  v.setBigUint64(cd + 64, 0n, false);
  v.setBigUint64(cd + 72, BigInt(layout.textFilesize), false);
  v.setBigUint64(cd + 80, BigInt(CS_EXECSEG_MAIN_BINARY), false);
  out.set(ident, cd + cdHeader);
  // Pages are hashed last: the first one holds the load commands changed above.
  for (let i = 0; i < nCodeSlots; i++) {
    const page = out.subarray(i * PAGE, Math.min(codeLimit, (i + 1) * PAGE));
    out.set(createHash("sha256").update(page).digest(), cd + hashOffset + i * 32);
  }
  return out;
}

/** The CodeDirectory of a signed file, as macOS reads it. */
export function readCodeDirectory(file: Uint8Array): CodeDirectory {
  const layout = machOLayout(file);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const sb = layout.dataoff;
  if (v.getUint32(sb, false) !== CSMAGIC_EMBEDDED_SIGNATURE) throw new Error("no embedded signature SuperBlob at the LC_CODE_SIGNATURE offset");
  const count = v.getUint32(sb + 8, false);
  for (let i = 0; i < count; i++) {
    if (v.getUint32(sb + 12 + i * 8, false) !== CSSLOT_CODEDIRECTORY) continue;
    const cd = sb + v.getUint32(sb + 16 + i * 8, false);
    if (v.getUint32(cd, false) !== CSMAGIC_CODEDIRECTORY) throw new Error("slot 0 is not a CodeDirectory");
    const version = v.getUint32(cd + 8, false);
    const hashOffset = v.getUint32(cd + 16, false);
    const identOffset = v.getUint32(cd + 20, false);
    const nCode = v.getUint32(cd + 28, false);
    const hashSize = file[cd + 36]!;
    const identEnd = file.indexOf(0, cd + identOffset);
    return {
      version,
      flags: v.getUint32(cd + 12, false),
      identifier: new TextDecoder().decode(file.subarray(cd + identOffset, identEnd)),
      hashType: file[cd + 37]!,
      pageSize: 1 << file[cd + 39]!,
      codeLimit: v.getUint32(cd + 32, false),
      nSpecialSlots: v.getUint32(cd + 24, false),
      hashes: Array.from({ length: nCode }, (_, k) => file.subarray(cd + hashOffset + k * hashSize, cd + hashOffset + (k + 1) * hashSize)),
      execSegLimit: version >= 0x20400 ? Number(v.getBigUint64(cd + 72, false)) : 0,
    };
  }
  throw new Error("the SuperBlob has no CodeDirectory");
}

/** What macOS checks at launch: the code limit reaches the signature, and every page hash matches. */
export function verifySignature(file: Uint8Array): { ok: boolean; problems: string[]; cd: CodeDirectory } {
  const layout = machOLayout(file);
  const cd = readCodeDirectory(file);
  const problems: string[] = [];
  if (cd.codeLimit !== layout.dataoff) problems.push(`code limit ${cd.codeLimit} is not the signature's offset ${layout.dataoff}`);
  if (cd.hashType !== CS_HASHTYPE_SHA256) problems.push(`hash type ${cd.hashType} is not SHA-256`);
  const want = Math.ceil(cd.codeLimit / cd.pageSize);
  if (cd.hashes.length !== want) problems.push(`${cd.hashes.length} page hashes for ${want} pages`);
  let bad = 0;
  let first = -1;
  cd.hashes.forEach((h, i) => {
    const page = file.subarray(i * cd.pageSize, Math.min(cd.codeLimit, (i + 1) * cd.pageSize));
    if (!Buffer.from(createHash("sha256").update(page).digest()).equals(Buffer.from(h))) {
      bad++;
      if (first < 0) first = i;
    }
  });
  if (bad) problems.push(`${bad} of ${cd.hashes.length} page hashes are wrong (first: page ${first})`);
  if (layout.linkedit.fileoff + layout.linkedit.filesize !== file.length) problems.push(`__LINKEDIT ends at ${layout.linkedit.fileoff + layout.linkedit.filesize}, the file at ${file.length}`);
  if (layout.dataoff + layout.datasize > file.length) problems.push("the signature reaches past the end of the file");
  return { ok: problems.length === 0, problems, cd };
}

if (import.meta.main) {
  const [path, identifier = "netboot"] = process.argv.slice(2);
  if (!path) {
    console.error("usage: bun scripts/macho-sign.ts FILE [IDENTIFIER]");
    process.exit(2);
  }
  const signed = adhocSign(readFileSync(path), identifier);
  writeFileSync(path, signed);
  const r = verifySignature(signed);
  console.log(`${path}: ad-hoc signed as ${identifier}, ${r.cd.hashes.length} pages${r.ok ? "" : `; PROBLEMS: ${r.problems.join("; ")}`}`);
  if (!r.ok) process.exit(1);
}
