/**
 * The guests the route tests boot, built from the sources beside this file with Debian's compilers:
 *
 *  - loader.efi: a stand-in for ESXi's mboot.efi over PXE (guest/loader.c, gnu-efi), which reads boot.cfg
 *    and every module by TFTP through the firmware's PXE Base Code exactly as esx-boot's tftpfile.c does,
 *    and prints each module's size and checksum; signed with Debian's snakeoil key (sbsign) so OVMF's
 *    Secure Boot variant (OVMF_CODE_4M.snakeoil.fd, whose db holds that key) runs it.
 *  - kernel.elf: a Multiboot test kernel (guest/kernel.c, gcc -m32) for the BIOS route.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { run, tempDir } from "../helpers/tools.ts";

const here = join(import.meta.dir, "guest");
let built: { loader: string; signedLoader: string; kernel: string } | undefined;

export const SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key";
export const SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem";

export function buildGuests(): { loader: string; signedLoader: string; kernel: string } {
  if (built && existsSync(built.signedLoader)) return built;
  const dir = tempDir("guests-");
  const efi = ["-I/usr/include/efi", "-I/usr/include/efi/x86_64", "-I/usr/include/efi/protocol"];
  const cflags = ["-fpic", "-ffreestanding", "-fno-stack-protector", "-fno-stack-check", "-fshort-wchar", "-mno-red-zone", "-maccumulate-outgoing-args", "-Wall", "-O2", "-DEFI_FUNCTION_WRAPPER"];
  run("gcc", [...efi, ...cflags, "-c", join(here, "loader.c"), "-o", join(dir, "loader.o")]);
  run("ld", ["-shared", "-Bsymbolic", "-nostdlib", "-znocombreloc", "-L/usr/lib", "-T/usr/lib/elf_x86_64_efi.lds", "/usr/lib/crt0-efi-x86_64.o", join(dir, "loader.o"), "-o", join(dir, "loader.so"), "-lefi", "-lgnuefi"]);
  const sections = [".text", ".sdata", ".data", ".rodata", ".dynamic", ".dynsym", ".rel", ".rela", ".rel.*", ".rela.*", ".reloc"].flatMap((s) => ["-j", s]);
  run("objcopy", [...sections, "--target", "efi-app-x86_64", "--subsystem=10", join(dir, "loader.so"), join(dir, "loader.efi")]);
  // Debian ships the snakeoil key encrypted with the passphrase "snakeoil" (ovmf README.Debian).
  run("openssl", ["rsa", "-in", SNAKEOIL_KEY, "-passin", "pass:snakeoil", "-out", join(dir, "snakeoil.key")], { stdio: ["ignore", "ignore", "pipe"] });
  run("sbsign", ["--key", join(dir, "snakeoil.key"), "--cert", SNAKEOIL_CERT, "--output", join(dir, "loader-signed.efi"), join(dir, "loader.efi")], { stdio: ["ignore", "ignore", "pipe"] });
  run("sbverify", ["--cert", SNAKEOIL_CERT, join(dir, "loader-signed.efi")], { stdio: ["ignore", "ignore", "pipe"] });

  run("gcc", ["-m32", "-ffreestanding", "-fno-pic", "-fno-pie", "-fno-stack-protector", "-fno-builtin", "-nostdlib", "-O2", "-Wall", "-c", join(here, "kernel.c"), "-o", join(dir, "kernel.o")]);
  run("ld", ["-m", "elf_i386", "-T", join(here, "kernel.ld"), "-nostdlib", "--no-warn-rwx-segments", "-o", join(dir, "kernel.elf"), join(dir, "kernel.o")]);
  built = { loader: join(dir, "loader.efi"), signedLoader: join(dir, "loader-signed.efi"), kernel: join(dir, "kernel.elf") };
  return built;
}

/** Syslinux 6.04's ISOLINUX and the ELF modules its mboot.c32 needs (Debian's isolinux, syslinux-common). */
export function syslinuxFiles(): Record<string, string> {
  const bios = "/usr/lib/syslinux/modules/bios";
  const files = { "ISOLINUX.BIN": "/usr/lib/ISOLINUX/isolinux.bin", "LDLINUX.C32": `${bios}/ldlinux.c32`, "LIBCOM32.C32": `${bios}/libcom32.c32`, "MBOOT.C32": `${bios}/mboot.c32` };
  for (const f of Object.values(files)) if (!existsSync(f)) throw new Error(`${f} missing: .ci/run installs isolinux and syslinux-common`);
  return files;
}

/** What the guests print per module: "module N size=S fnv=H name=P". */
export interface GuestModule {
  index: number;
  size: number;
  fnv: string;
  name: string;
}

export function parseModules(serial: string): GuestModule[] {
  return [...serial.matchAll(/^module (\d+) size=(\d+) fnv=([0-9a-fA-F]{8}) name=(\S+)/gm)].map((m) => ({ index: Number(m[1]), size: Number(m[2]), fnv: m[3]!.toLowerCase(), name: m[4]! }));
}
