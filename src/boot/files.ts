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
 *   NAME/01-<mac>/ks.cfg, NAME/ks.cfg     the kickstart, when one is configured
 *   boot.ipxe                             the iPXE script that chain-loads the ESXi loader (boot/ipxe.ts)
 *   ipxe/undionly.kpxe, ipxe/snponly.efi, ipxe/ipxe.efi   Debian's iPXE binaries
 */
import type { FileData, FileInfo } from "../files/tree.ts";
import { memoryData } from "../files/tree.ts";
import { macDirName, tryParseMac, type Mac } from "../wire/mac.ts";
import { rewriteBootCfg, serializeBootCfg, type BootCfg } from "./esxi/bootcfg.ts";
import type { BootImage } from "./image.ts";
import { ipxeScript } from "./ipxe.ts";

export interface BootFilesConfig {
  /** Served images; the first is the default (for the bare 01-<mac>/boot.cfg path). */
  images: readonly BootImage[];
  /** How clients reach our HTTP server: "http://10.0.0.1" or "http://10.0.0.1:8080" (no trailing slash). */
  httpBase: string;
  /** Kickstart contents; absent when no kickstart is configured. Called per request so edits apply at once. */
  kickstart?: ((mac: Mac | undefined, image: BootImage) => Promise<Uint8Array>) | undefined;
  keepCdromBoot?: boolean;
  extraKernelopt?: string | undefined;
  /** iPXE binaries by file name ("snponly.efi"), served as ipxe/<name>. */
  ipxe?: ReadonlyMap<string, Uint8Array>;
  /** Why a MAC must not boot (allowlist, boot-once); undefined to boot it. Also shapes /boot.ipxe. */
  refuse?: (mac: Mac) => string | undefined;
}

/** Who is asking: lets a MAC-less boot.cfg be rewritten for the right machine. */
export interface ClientHint {
  address?: string | undefined;
  /** MAC the server learned for this address from its own DHCP traffic. */
  mac?: Mac | undefined;
}

export type Resolved =
  | { kind: "file"; data: FileData; what: string; mac: Mac | undefined; image: BootImage | undefined }
  | { kind: "missing"; reason: string; mac: Mac | undefined }
  | { kind: "directory"; info: FileInfo; image: BootImage };

export interface BootFiles {
  readonly config: BootFilesConfig;
  resolve(parts: readonly string[], client?: ClientHint): Promise<Resolved>;
  /** Rewritten boot.cfg text (also for `netboot bootcfg`). */
  bootCfgFor(image: BootImage, flavour: "bios" | "efi", mac: Mac | undefined): string | undefined;
  /** URL of the image's directory on our HTTP server ("http://IP[:PORT]/NAME/"). */
  imageUrl(image: BootImage): string;
  kickstartUrl(image: BootImage, mac: Mac | undefined): string | undefined;
}

export function createBootFiles(config: BootFilesConfig): BootFiles {
  const byName = new Map(config.images.map((i) => [i.name.toLowerCase(), i]));
  const imageUrl = (image: BootImage) => `${config.httpBase}/${image.name}/`;
  const kickstartUrl = (image: BootImage, mac: Mac | undefined) =>
    config.kickstart ? `${imageUrl(image)}${mac ? `${macDirName(mac)}/` : ""}ks.cfg` : undefined;

  const bootCfgFor = (image: BootImage, flavour: "bios" | "efi", mac: Mac | undefined): string | undefined => {
    const esxi = image.esxi;
    if (!esxi) return undefined;
    const original: BootCfg | undefined = flavour === "efi" ? (esxi.efiCfg ?? esxi.biosCfg) : (esxi.biosCfg ?? esxi.efiCfg);
    if (!original) return undefined;
    return serializeBootCfg(
      rewriteBootCfg(original, {
        prefix: imageUrl(image),
        ks: kickstartUrl(image, mac),
        keepCdromBoot: config.keepCdromBoot,
        extraKernelopt: config.extraKernelopt,
      }),
    );
  };

  const generated = (image: BootImage, what: string, text: string | Uint8Array | undefined, mac: Mac | undefined): Resolved => {
    if (text === undefined) return { kind: "missing", reason: `${image.name} has no ${what}`, mac };
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    return { kind: "file", data: memoryData(bytes, image.mtime), what, mac, image };
  };

  const resolve = async (parts: readonly string[], client: ClientHint = {}): Promise<Resolved> => {
    const lower = parts.map((p) => p.toLowerCase());
    const first = lower[0];
    if (first === undefined) return { kind: "missing", reason: "no file name", mac: undefined };

    // 01-<mac>/boot.cfg at the top: what mboot.efi probes when it was loaded from the root.
    const topMac = macDir(first);
    if (topMac && lower.length === 2 && lower[1] === "boot.cfg") {
      const image = config.images[0];
      if (!image) return { kind: "missing", reason: "no image", mac: topMac };
      return generated(image, "boot.cfg", bootCfgFor(image, "efi", topMac), topMac);
    }

    if (lower.length === 1 && first === "boot.ipxe") {
      const image = config.images[0];
      if (!image) return { kind: "missing", reason: "no image", mac: client.mac };
      const text = ipxeScript({ image, httpBase: config.httpBase, mac: client.mac, refused: client.mac ? config.refuse?.(client.mac) : undefined });
      return generated(image, "iPXE script", text, client.mac);
    }
    if (lower.length === 2 && first === "ipxe") {
      const bin = config.ipxe?.get(lower[1]!);
      if (!bin) return { kind: "missing", reason: `no iPXE binary ${parts[1]} (see --ipxe-dir)`, mac: client.mac };
      return { kind: "file", data: memoryData(bin, undefined), what: `iPXE ${lower[1]}`, mac: client.mac, image: undefined };
    }

    const image = byName.get(first);
    if (!image) return { kind: "missing", reason: `no image named ${parts[0]}`, mac: topMac };
    const rest = lower.slice(1);
    const key = rest.join("/");
    const mac1 = rest.length >= 2 ? macDir(rest[0]!) : undefined;
    const mac3 = rest.length === 4 && rest[0] === "efi" && rest[1] === "boot" ? macDir(rest[2]!) : undefined;

    if (image.esxi) {
      if (key === "mboot.efi") {
        if (!image.esxi.efiLoader) return { kind: "missing", reason: `${image.name} has no EFI/BOOT/BOOTX64.EFI`, mac: client.mac };
        return treeFile(image, image.esxi.efiLoader, "EFI loader", client.mac);
      }
      if (key === "boot.cfg") return generated(image, "boot.cfg", bootCfgFor(image, "bios", client.mac), client.mac);
      if (key === "efi/boot/boot.cfg") return generated(image, "boot.cfg", bootCfgFor(image, "efi", client.mac), client.mac);
      if (mac1 && rest.length === 2 && rest[1] === "boot.cfg") return generated(image, "boot.cfg", bootCfgFor(image, "bios", mac1), mac1);
      if (mac3 && rest[3] === "boot.cfg") return generated(image, "boot.cfg", bootCfgFor(image, "efi", mac3), mac3);
    }
    if (config.kickstart && (key === "ks.cfg" || (mac1 && rest.length === 2 && rest[1] === "ks.cfg"))) {
      const mac = mac1 ?? client.mac;
      return generated(image, "ks.cfg", await config.kickstart(mac, image), mac);
    }
    return treeFile(image, "/" + parts.slice(1).join("/"), "file", mac1 ?? mac3);
  };

  return { config, resolve, bootCfgFor, imageUrl, kickstartUrl };
}

// --- internal ---

function macDir(part: string): Mac | undefined {
  return /^01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/.test(part) ? tryParseMac(part) : undefined;
}

async function treeFile(image: BootImage, path: string, what: string, mac: Mac | undefined): Promise<Resolved> {
  const info = await image.tree.stat(path);
  if (!info) return { kind: "missing", reason: `${path} is not in ${image.name}`, mac };
  if (info.type === "dir") return { kind: "directory", info, image };
  return { kind: "file", data: await image.tree.open(info), what, mac, image };
}
