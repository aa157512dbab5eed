/**
 * THE boot policy: who gets which file. Every protocol asks it with the same BootClient and the same
 * snapshot of what the server knows of that machine (DHCP, proxyDHCP, BSDP, the iPXE script, the boot
 * namespace): pure, and asked many times per boot. First the host's rows:
 *
 *   not a network-boot request                → ignore
 *   refused (a list is kept, it is not on it)  → ignore, with the reason
 *   local (mode local; once and done)          → "local": boot from its own disk (a plain lease, no proxy
 *                                                answer, an iPXE script that exits, no BSDP image)
 *
 * then the firmware's, as real firmware behaves under QEMU (test/e2e/: OVMF, SeaBIOS with iPXE) and as the
 * peers' recipes answer it, with the host's image:
 *
 *   iPXE (user class "iPXE" or option 175)   → http://IP[:PORT]/boot.ipxe    (breaks the chain-load loop)
 *   UEFI HTTP boot (HTTPClient, arch 16)     → http://IP[:PORT]/NAME/mboot.efi, option 60 "HTTPClient"
 *   BIOS PXE (arch 0)                        → TFTP ipxe/undionly.kpxe (its script sanboots the ISO)
 *   UEFI x64 PXE (arch 7, 9)                 → TFTP ipxe/snponly.efi; the signed NAME/mboot.efi with
 *                                              --no-ipxe, --secure-boot, or for a host whose iPXE never
 *                                              started (Secure Boot refused it: hosts/signed-loader.ts)
 *   ARM64 UEFI (arch 11 PXE, 19 HTTP)        → the image's EFI/BOOT/BOOTAA64.EFI, when it has one
 *   anything else                            → ignore, with the reason
 */
import { IPXE_PATH, type ServeConfig } from "../config.ts";
import { Arch } from "./arch.ts";
import type { BootImage } from "./image.ts";
import { biosUnbootable } from "./ipxe.ts";
import type { BootClient, BootDecision, Decline, Firmware } from "./types.ts";
import { macDirName } from "../wire/mac.ts";

export interface IpxeBinaries {
  /** BIOS: iPXE over the PXE ROM's UNDI driver. */
  undionly: boolean;
  /** UEFI: iPXE over the firmware's SNP driver (what Macs and most PCs need). */
  snponly: boolean;
}

export interface PolicyConfig {
  /** Served images; a host without one of its own boots the first. */
  images: readonly BootImage[];
  /** "http://IP[:PORT]" */
  httpBase: string;
  /** Which iPXE binaries we can serve; none when --no-ipxe or when they are missing. */
  ipxe: IpxeBinaries;
  /** --no-ipxe: UEFI PXE clients get the ESXi loader itself over TFTP. */
  noIpxe: boolean;
  /** --secure-boot: UEFI PXE clients get the ESXi loader (signed by VMware) over TFTP, never iPXE. */
  secureBoot?: boolean;
  /** What a Mac boots after BSDP (--mac-bootfile); iPXE's snponly.efi by default. */
  macBootFile?: string;
}

/** What the server knows of this one machine, as of this request (a snapshot: the policy stays pure). */
export interface HostSnapshot {
  /** Why it gets no boot answer at all (a list is kept and it is not on it). */
  refused?: string | undefined;
  /** Why it boots from its own disk (mode local; installed in mode once). */
  localBoot?: string | undefined;
  /** Its image, by name (else the first). */
  image?: string | undefined;
  /** It gets its kickstart (armed); else the interactive installer. */
  kickstart?: boolean | undefined;
  /** Why this host gets the signed ESXi loader instead of iPXE (its iPXE never started: Secure Boot). */
  signedLoader?: string | undefined;
  /** UEFI HTTP boot gets its own ISO (via: iso-url), which the firmware loads as a RAM disk, instead of the loader. */
  httpBootDisc?: boolean | undefined;
}

export const IPXE_BIOS = IPXE_PATH.bios;
export const IPXE_EFI = IPXE_PATH.efi;

/** The policy's settings for a run: the images, the HTTP base, which iPXE binaries are there to hand out. */
export function policyFor(config: ServeConfig, images: readonly BootImage[], httpBase: string, ipxeFiles: ReadonlyMap<string, unknown>): PolicyConfig {
  const ipxe = !config.ipxe.disabled;
  return {
    images,
    httpBase,
    ipxe: { undionly: ipxe && ipxeFiles.has("undionly.kpxe"), snponly: ipxe && ipxeFiles.has("snponly.efi") },
    noIpxe: config.ipxe.disabled,
    secureBoot: config.boot.secureBoot,
    macBootFile: config.bsdp.bootFile === IPXE_EFI ? undefined : config.bsdp.bootFile,
  };
}

/** Which firmware a client runs, from option 93, option 60 and iPXE's marks. */
export function firmwareOf(c: BootClient): Firmware {
  if (c.userClass.includes("iPXE") || c.ipxeOptions) return "ipxe";
  if (c.vendorClass?.startsWith("AAPLBSDPC")) return "apple";
  const http = c.vendorClass?.startsWith("HTTPClient") ?? false;
  switch (c.arch) {
    case Arch.X86Bios:
      return "bios";
    case Arch.EfiX64Bc:
    case Arch.EfiX64:
      return http ? "efi-x64-http" : "efi-x64";
    case Arch.EfiX64Http:
      return "efi-x64-http";
    case Arch.EfiArm64:
      return http ? "efi-arm64-http" : "efi-arm64";
    case Arch.EfiArm64Http:
      return "efi-arm64-http";
    case Arch.EfiIa32:
      return "efi-ia32";
    case undefined: {
      // PXE 2.1 makes option 93 mandatory, but some clients omit it: the vendor class names the
      // architecture too ("PXEClient:Arch:00007:UNDI:003000"); old BIOS ROMs send plain "PXEClient".
      const named = /^(?:PXEClient|HTTPClient):Arch:(\d{5})\b/.exec(c.vendorClass ?? "");
      if (named) return firmwareOf({ ...c, arch: Number(named[1]) });
      return c.vendorClass?.startsWith("PXEClient") ? "bios" : http ? "efi-x64-http" : "unknown";
    }
    default:
      return "unknown";
  }
}

export function decideBoot(c: BootClient, host: HostSnapshot, cfg: PolicyConfig): BootDecision {
  const firmware = firmwareOf(c);
  const ignore = (reason: string, declined: Decline = "unbootable"): BootDecision => ({ action: "ignore", firmware, reason, declined });
  const netboot = c.vendorClass?.startsWith("PXEClient") || c.vendorClass?.startsWith("HTTPClient") || firmware === "ipxe" || firmware === "apple";
  if (!netboot) return ignore("not a network-boot request (no PXEClient/HTTPClient vendor class, not iPXE)", "not-netboot");
  if (host.refused) return ignore(host.refused, "refused");
  if (host.localBoot) return { action: "local", firmware, reason: host.localBoot };
  const image = cfg.images.find((i) => i.name === host.image) ?? cfg.images[0];
  if (!image) return ignore("no image is served", "no-image");
  const esxi = image.esxi;
  const url = (path: string) => `${cfg.httpBase}/${path}`;
  const boot = (transport: "tftp" | "http", file: string, vendorClass: "PXEClient" | "HTTPClient", why: string): BootDecision => ({
    action: "boot",
    firmware,
    image,
    transport,
    file,
    vendorClass,
    why,
  });

  switch (firmware) {
    case "ipxe":
      return boot("http", url("boot.ipxe"), c.vendorClass?.startsWith("HTTPClient") ? "HTTPClient" : "PXEClient", "iPXE: script over HTTP");
    case "efi-x64-http":
      if (host.httpBootDisc && image.tree.disc) {
        // UEFI loads a URL answered as application/vnd.efi-iso as a RAM disk and boots it as a CD (boot/files.ts disc()).
        return boot("http", url(`${image.name}/${macDirName(c.mac)}.iso`), "HTTPClient", "UEFI HTTP boot of its own ISO (via: iso-url): a RAM disk");
      }
      if (!esxi?.efiLoader) return ignore(`${image.name} has no EFI/BOOT/BOOTX64.EFI`);
      return boot("http", url(`${image.name}/mboot.efi`), "HTTPClient", "UEFI HTTP boot: the ESXi loader by URL");
    case "bios": {
      if (!cfg.ipxe.undionly) return ignore("BIOS PXE needs iPXE (undionly.kpxe), which is not available (--ipxe-dir?)");
      const why = biosUnbootable(image);
      if (why) return ignore(why);
      return boot("tftp", IPXE_BIOS, "PXEClient", "BIOS PXE: iPXE (undionly.kpxe) by TFTP, then the ISO by sanboot");
    }
    case "efi-x64": {
      const signed = cfg.noIpxe ? "--no-ipxe" : cfg.secureBoot ? "--secure-boot" : host.signedLoader ? host.signedLoader : !cfg.ipxe.snponly ? "no iPXE available" : undefined;
      if (signed) {
        if (!esxi?.efiLoader) return ignore(`${image.name} has no EFI/BOOT/BOOTX64.EFI`);
        return boot("tftp", `${image.name}/mboot.efi`, "PXEClient", `UEFI PXE, ${signed}: the signed ESXi loader by TFTP`);
      }
      return boot("tftp", IPXE_EFI, "PXEClient", "UEFI PXE: iPXE (snponly.efi) by TFTP");
    }
    case "efi-arm64":
      if (!esxi?.arm64Loader) return ignore(`ARM64 UEFI client, but ${image.name} has no EFI/BOOT/BOOTAA64.EFI`);
      return boot("tftp", `${image.name}${esxi.arm64Loader}`, "PXEClient", "ARM64 UEFI PXE: the image's BOOTAA64.EFI by TFTP");
    case "efi-arm64-http":
      if (!esxi?.arm64Loader) return ignore(`ARM64 UEFI HTTP client, but ${image.name} has no EFI/BOOT/BOOTAA64.EFI`);
      return boot("http", url(`${image.name}${esxi.arm64Loader}`), "HTTPClient", "ARM64 UEFI HTTP boot: BOOTAA64.EFI by URL");
    case "apple": {
      // Macs take iPXE for UEFI through BSDP (bsdp/); a plain DHCP answer would not boot them.
      const file = cfg.macBootFile ?? IPXE_EFI;
      if (file === IPXE_EFI && !cfg.ipxe.snponly) return ignore("Mac client, but iPXE (snponly.efi) is not available");
      return boot("tftp", file, "PXEClient", file === IPXE_EFI ? "Intel Mac: iPXE (snponly.efi) by TFTP" : `Intel Mac: ${file} by TFTP (--mac-bootfile)`);
    }
    case "efi-ia32":
      return ignore("32-bit UEFI client: ESXi has no loader for it", "unsupported");
    case "unknown":
      return ignore(`unknown client architecture ${c.arch ?? "(none)"}`, "unsupported");
  }
}
