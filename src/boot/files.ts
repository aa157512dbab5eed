/**
 * The boot namespace: every name a client may ask for, over HTTP or TFTP, and what it gets. One place,
 * so both protocols serve the same files:
 *
 *   NAME/<any path in the image>          the image's own files, any case, with or without ";1"
 *   NAME/mboot.efi                        EFI/BOOT/BOOTX64.EFI (the seed recipe's name for the loader)
 *   NAME/boot.cfg, NAME/efi/boot/boot.cfg rewritten boot.cfg (for the client's MAC when it is known)
 *   NAME/01-<mac>/boot.cfg                rewritten /BOOT.CFG for that MAC
 *   NAME/efi/boot/01-<mac>/boot.cfg       rewritten /EFI/BOOT/BOOT.CFG for that MAC (mboot.efi probes
 *   01-<mac>/boot.cfg                       <its own directory>/01-<mac>/boot.cfg first)
 *   NAME/crypto64.efi                     EFI/BOOT/CRYPTO64.EFI, when the image has one (mboot.efi looks
 *                                           for it next to itself)
 *   NAME/01-<mac>/ks.cfg, NAME/ks.cfg     the kickstart, when one is configured
 *   NAME.iso, NAME/01-<mac>.iso           the ISO itself with BOOT.CFG rewritten for the client: what BIOS
 *                                           clients boot by iPXE's sanboot (a CD-ROM over HTTP)
 *   boot.ipxe                             the iPXE script that chain-loads the ESXi loader (boot/ipxe.ts)
 *   ipxe/undionly.kpxe, ipxe/snponly.efi, ipxe/ipxe.efi   Debian's iPXE binaries
 *
 * A boot.cfg read over TFTP says `prefix=NAME` (a TFTP path: mboot sends whatever path it builds to the
 * TFTP server, a URL too) and `tftpblksize=`; over HTTP `prefix=http://IP[:PORT]/NAME/`. In the disc
 * image the paths stay as the image has them (the loader reads them from the CD); only kernelopt changes.
 */
import type { FileData, FileInfo } from "../files/tree.ts";
import { memoryData } from "../files/tree.ts";
import { macDirName, tryParseMac, type Mac } from "../wire/mac.ts";
import { rewriteBootCfg, serializeBootCfg, type BootCfg, type RewriteOptions } from "./esxi/bootcfg.ts";
import type { BootImage } from "./image.ts";
import { ipxeScript } from "./ipxe.ts";
import type { BootDecision } from "./types.ts";

export interface BootFilesConfig {
  /** Served images; the first is the default (for the bare 01-<mac>/boot.cfg path). */
  images: readonly BootImage[];
  /** How clients reach our HTTP server: "http://10.0.0.1" or "http://10.0.0.1:8080" (no trailing slash). */
  httpBase: string;
  /**
   * The kickstart for this MAC, rendered for it, or why it is refused (not armed, asked from an address
   * that is not the host's): a 403. Absent when no machine has one.
   */
  kickstart?: ((mac: Mac | undefined, image: BootImage, client: ClientHint) => Promise<Uint8Array | { refused: string }>) | undefined;
  /** Whether this MAC's boot.cfg names its kickstart (it is armed and has one). Without it, every MAC's does. */
  hasKickstart?: ((mac: Mac | undefined) => boolean) | undefined;
  /** The policy's answer for an iPXE client with this MAC: what /boot.ipxe says to it. */
  ipxeDecision?: ((mac: Mac | undefined) => BootDecision) | undefined;
  /**
   * Why this MAC must get nothing that could start an installer (boot-once: done, installed, mode local;
   * or not listed): its boot.cfg, its disc and the loader are then refused, also when its firmware asks
   * for them straight by a URL it kept, with no DHCP first. Undefined: serve them.
   */
  bootRefusal?: ((mac: Mac) => string | undefined) | undefined;
  /** The image a MAC boots (for the bare 01-<mac>/boot.cfg and the iPXE script); else the first. */
  imageFor?: ((mac: Mac | undefined) => BootImage | undefined) | undefined;
  keepCdromBoot?: boolean;
  extraKernelopt?: string | undefined;
  /** iPXE binaries by file name ("snponly.efi"), served as ipxe/<name>. */
  ipxe?: ReadonlyMap<string, Uint8Array>;
  /** `tftpblksize=` for a boot.cfg read over TFTP (mboot asks for 1468 otherwise); absent: not set. */
  tftpBlksize?: number | undefined;
}

/** Who is asking: lets a MAC-less boot.cfg be rewritten for the right machine. */
export interface ClientHint {
  address?: string | undefined;
  /** MAC the server learned for this address from its own DHCP traffic. */
  mac?: Mac | undefined;
  /** The protocol asking: a boot.cfg read over TFTP needs TFTP paths (default "http"). */
  via?: "http" | "tftp" | undefined;
}

/** How a boot.cfg will be read: by URL, by TFTP path, or from the disc image itself (BIOS sanboot). */
export type BootCfgRoute = "http" | "tftp" | "disc";

/**
 * What a served file is, set here where the name is resolved (phases, metrics and hints read it; the words
 * for people are made from it in hosts/describe.ts):
 *
 *   nbp      an iPXE binary (ipxe/…), the first stage a PXE ROM fetches
 *   script   boot.ipxe
 *   loader   the ESXi loader (NAME/mboot.efi, EFI/BOOT/BOOTX64.EFI, EFI/BOOT/BOOTAA64.EFI)
 *   crypto   EFI/BOOT/CRYPTO64.EFI (mboot.efi looks for it next to itself)
 *   bootcfg  a boot.cfg, rewritten for the client and route
 *   module   any other file of the image: the kernel and modules the loader reads
 *   disc     the ISO as a CD for BIOS sanboot
 *   ks       a kickstart
 */
export type FileKind = "nbp" | "script" | "loader" | "crypto" | "bootcfg" | "module" | "disc" | "ks";

export type Resolved =
  /** `generated`: made here for this client (boot.cfg, script, kickstart, disc, iPXE), not a file of the image. */
  | { result: "file"; kind: FileKind; data: FileData; mac: Mac | undefined; image: BootImage | undefined; generated: boolean }
  /** `kind` when the name says what it would have been (crypto64.efi, which mboot.efi asks for whether the image has it or not). */
  | { result: "missing"; reason: string; mac: Mac | undefined; kind?: FileKind }
  /** There, but not for this client (a kickstart for another host, or for one that is not armed). */
  | { result: "forbidden"; kind: FileKind; reason: string; mac: Mac | undefined; image: BootImage | undefined }
  | { result: "directory"; info: FileInfo; image: BootImage };

export interface BootFiles {
  readonly config: BootFilesConfig;
  resolve(parts: readonly string[], client?: ClientHint): Promise<Resolved>;
  /** Rewritten boot.cfg text (also for `netboot bootcfg`). */
  bootCfgFor(image: BootImage, flavour: "bios" | "efi", mac: Mac | undefined, route?: BootCfgRoute): string | undefined;
  /** URL of the image's directory on our HTTP server ("http://IP[:PORT]/NAME/"). */
  imageUrl(image: BootImage): string;
  kickstartUrl(image: BootImage, mac: Mac | undefined): string | undefined;
}

export function createBootFiles(config: BootFilesConfig): BootFiles {
  const byName = new Map(config.images.map((i) => [i.name.toLowerCase(), i]));
  const imageUrl = (image: BootImage) => `${config.httpBase}/${image.name}/`;
  const kickstartUrl = (image: BootImage, mac: Mac | undefined) =>
    config.kickstart && (config.hasKickstart?.(mac) ?? true) ? `${imageUrl(image)}${mac ? `${macDirName(mac)}/` : ""}ks.cfg` : undefined;
  const imageFor = (mac: Mac | undefined) => config.imageFor?.(mac) ?? config.images[0];

  const bootCfgFor = (image: BootImage, flavour: "bios" | "efi", mac: Mac | undefined, route: BootCfgRoute = "http"): string | undefined => {
    const esxi = image.esxi;
    if (!esxi) return undefined;
    const original: BootCfg | undefined = flavour === "efi" ? (esxi.efiCfg ?? esxi.biosCfg) : (esxi.biosCfg ?? esxi.efiCfg);
    if (!original) return undefined;
    const opts = rewriteFor(route, {
      imageUrl: imageUrl(image),
      imageName: image.name,
      ks: kickstartUrl(image, mac),
      mac,
      keepCdromBoot: config.keepCdromBoot,
      extraKernelopt: config.extraKernelopt,
      tftpBlksize: config.tftpBlksize,
    });
    return serializeBootCfg(rewriteBootCfg(original, opts));
  };

  /**
   * The disc image with its boot.cfg files rewritten for this client: /BOOT.CFG, what BIOS reads (iPXE's
   * sanboot reads the image as a CD), and /EFI/BOOT/BOOT.CFG, what UEFI reads when it boots the image as a
   * CD (BMC virtual media) or as a RAM disk (UEFI HTTP boot of the URL). On UEFI the image's El Torito
   * image (efiboot.img, left untouched) starts esx-boot's isobounce, which loads esx-boot's ISO9660 driver
   * and starts \EFI\BOOT\BOOTX64.EFI from the ISO tree (esx-boot uefi/isobounce/isobounce.c; the RAM
   * disk's VirtualCD node: uefi/efiutils/volume.c get_boot_device()); mboot takes boot.cfg from its own
   * directory (mboot/config.c locate_config_file()), with no per-MAC lookup since a CD or RAM disk is not
   * a network boot (uefi/efiutils/net.c is_network_boot()), and makes no HTTP request of its own
   * (uefi/efiutils/ishttp.c). So the host's ks= must be in that file.
   */
  const disc = async (image: BootImage, mac: Mac | undefined): Promise<Resolved> => {
    if (!image.tree.disc) return { result: "missing", reason: `${image.name} is not read from an ISO image (a directory has no disc to boot)`, mac };
    const files: Array<{ path: string; content: Uint8Array }> = [];
    if (image.esxi?.biosCfg) files.push({ path: "/BOOT.CFG", content: new TextEncoder().encode(bootCfgFor(image, "bios", mac, "disc")!) });
    if (image.esxi?.efiCfg) files.push({ path: "/EFI/BOOT/BOOT.CFG", content: new TextEncoder().encode(bootCfgFor(image, "efi", mac, "disc")!) });
    if (files.length === 0) return { result: "missing", reason: `${image.name} has no BOOT.CFG`, mac };
    const data = await image.tree.disc.withFiles(files);
    return { result: "file", kind: "disc", data, mac, image, generated: true };
  };

  const generated = (image: BootImage, kind: "bootcfg" | "script" | "ks", text: string | Uint8Array | undefined, mac: Mac | undefined): Resolved => {
    if (text === undefined) return { result: "missing", reason: `${image.name} has no ${kind === "bootcfg" ? "boot.cfg" : kind}`, mac };
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    return { result: "file", kind, data: memoryData(bytes, image.mtime), mac, image, generated: true };
  };

  const resolve = async (parts: readonly string[], client: ClientHint = {}): Promise<Resolved> => {
    const r = await resolveFor(parts, client);
    // Boot-once on every path: what starts an installer is refused to a machine that must not get one.
    if (r.result === "file" && (r.kind === "bootcfg" || r.kind === "disc" || r.kind === "loader") && r.mac && config.bootRefusal) {
      const why = config.bootRefusal(r.mac);
      if (why) return { result: "forbidden", kind: r.kind, reason: why, mac: r.mac, image: r.image };
    }
    return r;
  };

  const resolveFor = async (parts: readonly string[], client: ClientHint): Promise<Resolved> => {
    const lower = parts.map((p) => p.toLowerCase());
    const first = lower[0];
    if (first === undefined) return { result: "missing", reason: "no file name", mac: undefined };
    const route: BootCfgRoute = client.via ?? "http";

    // 01-<mac>/boot.cfg at the top: what mboot.efi probes when it was loaded from the root.
    const topMac = macDir(first);
    if (topMac && lower.length === 2 && lower[1] === "boot.cfg") {
      const image = imageFor(topMac);
      if (!image) return { result: "missing", reason: "no image", mac: topMac };
      return generated(image, "bootcfg", bootCfgFor(image, "efi", topMac, route), topMac);
    }

    if (lower.length === 1 && first === "boot.ipxe") {
      const d = config.ipxeDecision?.(client.mac);
      const image = d?.action === "boot" ? d.image : imageFor(client.mac);
      if (!image) return { result: "missing", reason: "no image", mac: client.mac };
      const text = ipxeScript({ image, httpBase: config.httpBase, mac: client.mac, refused: d?.action === "ignore" ? d.reason : undefined, local: d?.action === "local" ? d.reason : undefined });
      return generated(image, "script", text, client.mac);
    }
    if (lower.length === 2 && first === "ipxe") {
      const bin = config.ipxe?.get(lower[1]!);
      if (!bin) return { result: "missing", reason: `no iPXE binary ${parts[1]} (see --ipxe-dir)`, mac: client.mac };
      return { result: "file", kind: "nbp", data: memoryData(bin, undefined), mac: client.mac, image: undefined, generated: true };
    }
    if (lower.length === 1 && first.endsWith(".iso") && byName.has(first.slice(0, -4))) return disc(byName.get(first.slice(0, -4))!, client.mac);

    const image = byName.get(first);
    if (!image) return { result: "missing", reason: `no image named ${parts[0]}`, mac: topMac };
    const rest = lower.slice(1);
    const key = rest.join("/");
    const mac1 = rest.length >= 2 ? macDir(rest[0]!) : undefined;
    const mac3 = rest.length === 4 && rest[0] === "efi" && rest[1] === "boot" ? macDir(rest[2]!) : undefined;

    if (rest.length === 1 && rest[0]!.endsWith(".iso")) {
      const isoMac = macDir(rest[0]!.slice(0, -4));
      if (isoMac) return disc(image, isoMac);
    }
    if (image.esxi) {
      if (key === "mboot.efi") {
        if (!image.esxi.efiLoader) return { result: "missing", reason: `${image.name} has no EFI/BOOT/BOOTX64.EFI`, mac: client.mac };
        return treeFile(image, image.esxi.efiLoader, "loader", client.mac);
      }
      if (key === "crypto64.efi") return image.esxi.cryptoModule ? treeFile(image, image.esxi.cryptoModule, "crypto", client.mac) : { result: "missing", reason: `${image.name} has no EFI/BOOT/CRYPTO64.EFI (the loader goes on without it)`, mac: client.mac, kind: "crypto" };
      if (key === "boot.cfg") return generated(image, "bootcfg", bootCfgFor(image, "bios", client.mac, route), client.mac);
      if (key === "efi/boot/boot.cfg") return generated(image, "bootcfg", bootCfgFor(image, "efi", client.mac, route), client.mac);
      if (mac1 && rest.length === 2 && rest[1] === "boot.cfg") return generated(image, "bootcfg", bootCfgFor(image, "bios", mac1, route), mac1);
      if (mac3 && rest[3] === "boot.cfg") return generated(image, "bootcfg", bootCfgFor(image, "efi", mac3, route), mac3);
    }
    if (config.kickstart && (key === "ks.cfg" || (mac1 && rest.length === 2 && rest[1] === "ks.cfg"))) {
      const mac = mac1 ?? client.mac;
      const ks = await config.kickstart(mac, image, client);
      if (!(ks instanceof Uint8Array)) return { result: "forbidden", kind: "ks", reason: ks.refused, mac, image };
      return generated(image, "ks", ks, mac);
    }
    const path = "/" + parts.slice(1).join("/");
    const loader = isLoaderPath(image, path);
    return treeFile(image, path, loader ? "loader" : "module", mac1 ?? mac3 ?? (loader ? client.mac : undefined));
  };

  return { config, resolve, bootCfgFor, imageUrl, kickstartUrl };
}

/** What the rewrite does on each route (also for `netboot bootcfg`). */
export function rewriteFor(
  route: BootCfgRoute,
  o: { imageUrl: string; imageName: string; ks: string | undefined; mac: Mac | undefined; keepCdromBoot?: boolean | undefined; extraKernelopt?: string | undefined; tftpBlksize?: number | undefined },
): RewriteOptions {
  return {
    // TFTP: relative, no leading "/" (mboot sends it as the file name; "/NAME" and tftp:// do not work).
    prefix: route === "http" ? o.imageUrl : route === "tftp" ? o.imageName : undefined,
    ks: o.ks,
    keepCdromBoot: o.keepCdromBoot,
    extraKernelopt: o.extraKernelopt,
    // mboot.c32 has no NIC of its own to name (UEFI mboot adds BOOTIF itself).
    bootif: route === "disc" && o.mac ? macDirName(o.mac) : undefined,
    defaults: route === "tftp" && o.tftpBlksize ? { tftpblksize: String(o.tftpBlksize) } : undefined,
  };
}

// --- internal ---

function macDir(part: string): Mac | undefined {
  return /^01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/.test(part) ? tryParseMac(part) : undefined;
}

async function treeFile(image: BootImage, path: string, kind: FileKind, mac: Mac | undefined): Promise<Resolved> {
  const info = await image.tree.stat(path);
  if (!info) return { result: "missing", reason: `${path} is not in ${image.name}`, mac };
  if (info.type === "dir") return { result: "directory", info, image };
  return { result: "file", kind, data: await image.tree.open(info), mac, image, generated: false };
}

/** The image's own loaders asked by their paths in the tree (ARM64 UEFI gets EFI/BOOT/BOOTAA64.EFI so). */
function isLoaderPath(image: BootImage, path: string): boolean {
  const p = path.toLowerCase().replace(/;1$/, "");
  return [image.esxi?.efiLoader, image.esxi?.arm64Loader].some((l) => l !== undefined && l.toLowerCase() === p);
}
