/** An ESXi-shaped test ISO made with xorriso: stock layout (plain ISO 9660, upper-case 8.3, no RR/Joliet). */
import { existsSync, mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pseudoRandom } from "./iso.ts";
import { run, tempDir } from "./tools.ts";

export const testModules = ["jumpstrt.gz", "useropts.gz", "features.gz", "k.b00", "uc_intel.b00", "s.v00", "imgdb.tgz", "imgpayld.tgz"];

export const bootCfgText = [
  "bootstate=0",
  "title=Loading ESXi installer",
  "timeout=5",
  "prefix=",
  "kernel=/b.b00",
  "kernelopt=runweasel cdromBoot",
  `modules=${testModules.map((m) => `/${m}`).join(" --- ")}`,
  "build=8.0.2-0.0.22380479",
  "updated=0",
  "",
].join("\n");

export interface EsxiIsoOptions {
  /** A real EFI program for EFI/BOOT/BOOTX64.EFI (firmware tests use iPXE's ipxe.efi). */
  efi?: string;
  /** Add BIG.V00 of this many bytes (block-number rollover needs > 32 MiB at blksize 512). */
  bigBytes?: number;
  extra?: Record<string, string | Uint8Array>;
  /** A Joliet tree beside the primary one. */
  joliet?: boolean;
  /** An El Torito boot record (ISOLINUX.BIN, BOOT.CAT) as the real ISO has; ISOLINUX.BIN is filler unless given. */
  elTorito?: boolean | { isolinux: string };
  /**
   * A UEFI El Torito entry, as the real ISO has (EFIBOOT.IMG, a FAT image made with dosfstools and mtools,
   * holding this EFI program as \EFI\BOOT\BOOTX64.EFI): what UEFI boots from the disc as a CD or a RAM disk.
   */
  uefiElTorito?: string;
}

const built = new Map<string, string>();

export function makeEsxiIso(opts: EsxiIsoOptions = {}): string {
  const key = JSON.stringify(opts);
  const hit = built.get(key);
  if (hit && existsSync(hit)) return hit;
  const dir = tempDir("esxi-iso-");
  const src = join(dir, "src");
  const put = (p: string, data: string | Uint8Array) => {
    mkdirSync(dirname(join(src, p)), { recursive: true });
    writeFileSync(join(src, p), data);
  };
  put("BOOT.CFG", bootCfgText);
  put("EFI/BOOT/BOOT.CFG", bootCfgText);
  if (opts.efi) {
    mkdirSync(join(src, "EFI/BOOT"), { recursive: true });
    copyFileSync(opts.efi, join(src, "EFI/BOOT/BOOTX64.EFI"));
  } else put("EFI/BOOT/BOOTX64.EFI", pseudoRandom(40_000, 99));
  put("MBOOT.C32", pseudoRandom(9_000, 98));
  put("B.B00", pseudoRandom(300_000, 1));
  testModules.forEach((m, i) => put(m.toUpperCase(), pseudoRandom(1000 + i * 37_001, i + 2)));
  put("EMPTY.V00", new Uint8Array(0));
  put("EXACT.V00", pseudoRandom(1468 * 8, 77)); // ends on a block boundary at 1468 and at 512
  put("UPGRADE/PRECHECK.PY", "print('hello')\n");
  if (opts.bigBytes) put("BIG.V00", pseudoRandom(opts.bigBytes, 5));
  for (const [p, d] of Object.entries(opts.extra ?? {})) put(p, d);
  if (opts.uefiElTorito) {
    const img = join(src, "EFIBOOT.IMG");
    run("mkfs.vfat", ["-C", img, "2880"], { stdio: ["ignore", "ignore", "pipe"] });
    run("mmd", ["-i", img, "::/EFI", "::/EFI/BOOT"]);
    run("mcopy", ["-i", img, opts.uefiElTorito, "::/EFI/BOOT/BOOTX64.EFI"]);
  }
  const iso = join(dir, "esxi.iso");
  const flags = ["--norock", "-V", "ESXI-TEST"];
  if (opts.joliet) flags.push("-J");
  if (opts.elTorito) {
    if (typeof opts.elTorito === "object") copyFileSync(opts.elTorito.isolinux, join(src, "ISOLINUX.BIN"));
    else put("ISOLINUX.BIN", pseudoRandom(2048, 97));
    flags.push("-b", "ISOLINUX.BIN", "-c", "BOOT.CAT", "-no-emul-boot", "-boot-load-size", "4");
    if (typeof opts.elTorito === "object") flags.push("-boot-info-table");
  }
  if (opts.uefiElTorito) flags.push(...(opts.elTorito ? ["-eltorito-alt-boot"] : ["-c", "BOOT.CAT"]), "-e", "EFIBOOT.IMG", "-no-emul-boot");
  run("xorriso", ["-as", "mkisofs", ...flags, "-o", iso, src], { stdio: ["ignore", "ignore", "pipe"] });
  built.set(key, iso);
  return iso;
}
