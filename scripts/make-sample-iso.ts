#!/usr/bin/env bun
/**
 * Makes the built-in sample image, scripts/sample-esxi.iso: a few hundred KB laid out like a stock ESXi
 * installer ISO (plain ISO 9660, upper-case 8.3 names with ";1", no Rock Ridge, no Joliet), with the
 * 8.0 U2 boot.cfg key set, and an El Torito boot record (ISOLINUX.BIN, BOOT.CAT) as on the real ISO, so
 * the BIOS route's disc image is made from it too. The kernel, modules and ISOLINUX.BIN are deterministic
 * filler, not VMware or syslinux code; the demo (`npm start`) serves this image and walks it as mboot would.
 *
 *   bun scripts/make-sample-iso.ts [OUT.iso]     (needs xorriso)
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const out = process.argv[2] ?? join(import.meta.dir, "sample-esxi.iso");
const build = "8.0.2-0.0.22380479";
const modules = ["jumpstrt.gz", "useropts.gz", "features.gz", "k.b00", "uc_intel.b00", "uc_amd.b00", "procfs.b00", "vmx.v00", "vim.v00", "sb.v00", "s.v00", "imgdb.tgz", "imgpayld.tgz"];

const bootCfg = [
  "bootstate=0",
  "title=Loading ESXi installer (netboot sample image)",
  "timeout=5",
  "prefix=",
  "kernel=/b.b00",
  "kernelopt=runweasel cdromBoot",
  `modules=${modules.map((m) => `/${m}`).join(" --- ")}`,
  `build=${build}`,
  "updated=0",
  "",
].join("\n");

/** Deterministic filler (xorshift32) with a readable header, so the image is reproducible. */
function filler(name: string, size: number, seed: number): Uint8Array {
  const head = new TextEncoder().encode(`netboot sample ${name}: placeholder bytes, not VMware software\n`);
  const out = new Uint8Array(size);
  let x = seed || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  out.set(head.subarray(0, Math.min(head.length, size)));
  return out;
}

const tree = mkdtempSync(join(tmpdir(), "netboot-sample-"));
const put = (path: string, data: string | Uint8Array) => {
  const full = join(tree, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, data);
};
try {
  put("BOOT.CFG", bootCfg);
  put("EFI/BOOT/BOOT.CFG", bootCfg);
  put("EFI/BOOT/BOOTX64.EFI", filler("bootx64.efi", 24 * 1024, 99));
  put("MBOOT.C32", filler("mboot.c32", 8 * 1024, 98));
  put("ISOLINUX.BIN", filler("isolinux.bin", 2048, 97));
  put("ISOLINUX.CFG", "DEFAULT menu.c32\nLABEL install\n  KERNEL mboot.c32\n  APPEND -c boot.cfg\n");
  put("B.B00", filler("b.b00", 64 * 1024, 1));
  modules.forEach((m, i) => put(m.toUpperCase(), filler(m, 4096 + ((i * 7919) % 24) * 1024, i + 2)));
  const r = spawnSync(
    "xorriso",
    ["-as", "mkisofs", "--norock", "-iso-level", "1", "-no-pad", "-V", "NETBOOT-SAMPLE", "--modification-date=2026112200000000", "-b", "ISOLINUX.BIN", "-c", "BOOT.CAT", "-no-emul-boot", "-boot-load-size", "4", "-o", out, tree],
    { stdio: ["ignore", "inherit", "pipe"], encoding: "utf8", env: { ...process.env, SOURCE_DATE_EPOCH: "1795305600" } },
  );
  if (r.error) throw new Error(`xorriso: ${r.error.message} (apt-get install xorriso)`);
  if (r.status !== 0) throw new Error(`xorriso failed: ${r.stderr}`);
  console.log(`wrote ${out}`);
} finally {
  rmSync(tree, { recursive: true, force: true });
}
