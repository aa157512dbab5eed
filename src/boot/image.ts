/** A served image: a file tree plus its name in URLs, and what it holds when it is an ESXi installer. */
import type { ImageSpec } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { openTree } from "../files/open.ts";
import type { FileTree } from "../files/tree.ts";
import { readAll } from "../files/tree.ts";
import type { Logger } from "../log.ts";
import { parseBootCfg, summarizeBootCfg, type BootCfg, type BootCfgSummary } from "./esxi/bootcfg.ts";

export interface EsxiInfo {
  /** /BOOT.CFG (read by mboot.c32 under BIOS), parsed. */
  biosCfg: BootCfg | undefined;
  /** /EFI/BOOT/BOOT.CFG (read by BOOTX64.EFI = mboot.efi), parsed. */
  efiCfg: BootCfg | undefined;
  summary: BootCfgSummary;
  /** "ESXi 8.0.2 (22380479)": for menus (BSDP) and logs. */
  displayName: string;
  /** Paths in the tree, as the tree spells them. */
  efiLoader: string | undefined;
  arm64Loader: string | undefined;
  biosLoader: string | undefined;
  /** EFI/BOOT/CRYPTO64.EFI, which mboot.efi looks for next to itself (esx-boot mboot.c). */
  cryptoModule: string | undefined;
}

export interface BootImage {
  /** First path segment in URLs and TFTP names ("/NAME/b.b00"). */
  name: string;
  tree: FileTree;
  esxi: EsxiInfo | undefined;
  mtime: Date | undefined;
}

/** URL-safe image name from a source path: "VMware-VMvisor-Installer-8.0U2.x86_64.iso" → "VMware-VMvisor-Installer-8.0U2.x86_64". */
export function imageNameFromSource(source: string): string {
  const trimmed = source.replace(/[?#].*$/, "").replace(/[/\\]+$/, "");
  const base = trimmed.slice(Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1);
  const stem = base.replace(/\.(iso|zip)$/i, "");
  const safe = stem.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  return safe || "image";
}

/** Names the boot namespace uses for itself at the top level. */
const RESERVED = new Set(["ipxe", "boot.ipxe", "status", "api", "events", "images", "metrics"]);

export function isValidImageName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !/^01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/i.test(name) && !RESERVED.has(name.toLowerCase());
}

/** Looks the tree over: ESXi is recognised by BOOT.CFG and/or EFI/BOOT/BOOT.CFG with a kernel= line. */
export async function loadImage(tree: FileTree, name: string): Promise<BootImage> {
  const readCfg = async (path: string): Promise<BootCfg | undefined> => {
    const info = await tree.stat(path);
    if (!info || info.type !== "file" || info.size > 1024 * 1024) return undefined;
    const cfg = parseBootCfg(new TextDecoder().decode(await readAll(await tree.open(info))));
    return summarizeBootCfg(cfg).kernel ? cfg : undefined;
  };
  const biosCfg = await readCfg("/BOOT.CFG");
  const efiCfg = await readCfg("/EFI/BOOT/BOOT.CFG");
  const root = await tree.stat("/");
  let esxi: EsxiInfo | undefined;
  if (biosCfg || efiCfg) {
    const summary = summarizeBootCfg((efiCfg ?? biosCfg)!);
    const path = async (p: string) => {
      const i = await tree.stat(p);
      return i?.type === "file" ? i.path : undefined;
    };
    esxi = {
      biosCfg,
      efiCfg,
      summary,
      displayName: esxiDisplayName(summary, name),
      efiLoader: await path("/EFI/BOOT/BOOTX64.EFI"),
      arm64Loader: await path("/EFI/BOOT/BOOTAA64.EFI"),
      biosLoader: await path("/MBOOT.C32"),
      cryptoModule: await path("/EFI/BOOT/CRYPTO64.EFI"),
    };
  }
  return { name, tree, esxi, mtime: root?.mtime };
}

export function esxiDisplayName(s: BootCfgSummary, fallback: string): string {
  if (s.version) return s.buildNumber ? `ESXi ${s.version} (${s.buildNumber})` : `ESXi ${s.version}`;
  return s.title ?? fallback;
}

/**
 * The bytes a loader fetches for this image: its kernel and every module of boot.cfg (the EFI one, else
 * BIOS), as the tree holds them. What the operator's progress bar fills against; undefined when it is not
 * an ESXi installer.
 */
export async function bootBytes(image: BootImage): Promise<number | undefined> {
  const s = image.esxi?.summary;
  if (!s?.kernel) return undefined;
  let total = 0;
  for (const m of [s.kernel, ...s.modules]) {
    const name = m.split(/\s+/)[0]!;
    if (name.includes("://")) continue;
    const info = await image.tree.stat("/" + name.replace(/^[/\\]+/, ""));
    if (info?.type === "file") total += info.size;
  }
  return total;
}

/**
 * Opens every served image (a source each: ISO, directory, URL, zip) and says what each is. Names must be
 * distinct and valid (the first path segment of every URL). Closes what it opened when one fails.
 */
export async function openImages(specs: readonly ImageSpec[], opts: { cacheDir: string | undefined; log: Logger }): Promise<{ images: BootImage[]; close(): Promise<void> }> {
  const images: BootImage[] = [];
  const close = async () => {
    for (const i of images) await Promise.resolve(i.tree.close()).catch(() => {});
  };
  try {
    for (const spec of specs) {
      const name = spec.name ?? imageNameFromSource(spec.source);
      if (!isValidImageName(name)) throw new ConfigError("E_NAME", `image name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-" (and not a 01-<mac> name); --name, or the lab file's images:`);
      if (images.some((i) => i.name.toLowerCase() === name.toLowerCase())) throw new ConfigError("E_NAME", `two images are named ${name}: give them names (the lab file's images:, or --name for one)`);
      const tree = await openTree(spec.source, { cacheDir: opts.cacheDir, log: opts.log.child("source") });
      let image: BootImage;
      try {
        image = await loadImage(tree, name);
      } catch (err) {
        await Promise.resolve(tree.close()).catch(() => {});
        throw err;
      }
      images.push(image);
      opts.log.info(`image ${image.name}: ${tree.description}`);
      if (image.esxi) {
        const e = image.esxi;
        opts.log.info(`ESXi installer: ${e.displayName}${e.summary.title ? ` — "${e.summary.title}"` : ""}; ${e.summary.modules.length} modules`);
        if (!e.efiLoader) opts.log.warn(`${image.name}: no EFI/BOOT/BOOTX64.EFI, UEFI clients cannot boot it`);
      } else {
        opts.log.warn(`${image.name}: no BOOT.CFG or EFI/BOOT/BOOT.CFG with a kernel= line; serving its files as they are (not an ESXi installer?)`);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { images, close };
}

/** What the status page says of each image: its name, what it is, where it comes from, its boot bytes. */
export async function imageSummaries(images: readonly BootImage[]): Promise<Array<{ name: string; title: string; source: string; bootBytes: number | undefined }>> {
  const out = [];
  for (const i of images) out.push({ name: i.name, title: i.esxi?.displayName ?? i.tree.kind, source: i.tree.description, bootBytes: await bootBytes(i) });
  return out;
}
