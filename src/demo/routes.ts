/**
 * Every boot route a client can take to the ESXi loader, walked against a running server the way the
 * firmware and the loader would (demo/mboot.ts): what `netboot demo` shows, and what the tests run on both
 * HTTP edges and every cache setting.
 *
 *   uefi-http   UEFI HTTP boot: the loader by URL (HEAD, GET), then its own per-MAC lookup over HTTP
 *   ipxe        UEFI PXE → iPXE: /boot.ipxe, the loader with -c <per-MAC boot.cfg URL>
 *   tftp        UEFI PXE → the signed loader by TFTP (--no-ipxe, --secure-boot): everything over TFTP
 *   bios        BIOS → iPXE: /boot.ipxe, sanboot of the disc image, whose BOOT.CFG is rewritten
 */
import { getBootCfgValue, parseBootCfg } from "../boot/esxi/bootcfg.ts";
import type { BootImage } from "../boot/image.ts";
import { readAll } from "../files/tree.ts";
import { strictFetch } from "../http/client.ts";
import { IsoImage } from "../iso/image.ts";
import { tftpRead, tftpSize } from "../tftp/client.ts";
import { macDirName, type Mac } from "../wire/mac.ts";
import { httpTransport, tftpTransport, walkLikeMboot, type WalkResult, type WalkStep } from "./mboot.ts";

export type RouteName = "uefi-http" | "ipxe" | "tftp" | "bios";
export const ROUTES: readonly RouteName[] = ["uefi-http", "ipxe", "tftp", "bios"];

export const ROUTE_TITLES: Record<RouteName, string> = {
  "uefi-http": "UEFI HTTP boot: loader by URL, per-MAC boot.cfg by HTTP",
  ipxe: "UEFI PXE → iPXE: boot.ipxe, loader -c per-MAC boot.cfg URL",
  tftp: "UEFI PXE → signed loader by TFTP: boot.cfg and modules by TFTP",
  bios: "BIOS → iPXE sanboot: the ISO as a CD, BOOT.CFG rewritten",
};

export interface RouteTarget {
  /** "http://127.0.0.1:8080" */
  base: string;
  /** TFTP server address and port (the tftp route). */
  tftp?: { address: string; port: number } | undefined;
  image: BootImage;
  mac: Mac;
  onStep?: (s: WalkStep) => void;
}

export interface RouteResult extends Pick<WalkResult, "steps" | "bootCfg" | "bytes" | "seconds" | "ok"> {
  route: RouteName;
}

export async function walkRoute(route: RouteName, target: RouteTarget): Promise<RouteResult> {
  const t0 = performance.now();
  const steps: WalkStep[] = [];
  const record = (s: WalkStep) => {
    steps.push(s);
    target.onStep?.(s);
  };
  const done = (bootCfg: string, ok: boolean): RouteResult => ({
    route,
    steps,
    bootCfg,
    bytes: steps.reduce((n, s) => n + s.bytes, 0),
    seconds: (performance.now() - t0) / 1000,
    ok: ok && steps.every((s) => s.ok),
  });
  const step = async (request: string, path: string, what: string, fn: () => Promise<Uint8Array | number>, check?: (b: Uint8Array) => Promise<string | undefined>) => {
    const start = performance.now();
    try {
      const v = await fn();
      const bytes = v instanceof Uint8Array ? v : undefined;
      const problem = bytes && check ? await check(bytes) : undefined;
      record({ request, path, what, bytes: bytes?.length ?? 0, ms: performance.now() - start, ok: !problem, problem });
      return bytes ?? v;
    } catch (err) {
      record({ request, path, what, bytes: 0, ms: performance.now() - start, ok: false, problem: (err as Error).message.replace(`${path}: `, "") });
      return undefined;
    }
  };
  const { image, mac, base } = target;
  const verify = (name: string, bytes: Uint8Array) => sameAsImage(image, name, bytes);
  const efiLoader = image.esxi?.efiLoader;
  const walk = async (w: Parameters<typeof walkLikeMboot>[0]) => {
    const r = await walkLikeMboot({ ...w, kickstart: true, verify, onStep: record });
    return done(r.bootCfg, r.ok);
  };

  switch (route) {
    case "uefi-http": {
      // edk2's HTTP boot: HEAD for the size, then GET.
      const url = `${base}/${image.name}/mboot.efi`;
      if ((await step("HEAD", url, "loader size", async () => (await strictFetch("HEAD", url)).length)) === undefined) return done("", false);
      if (!(await step("GET", url, "loader (EFI/BOOT/BOOTX64.EFI)", async () => (await strictFetch("GET", url)).body, (b) => (efiLoader ? sameAsImage(image, efiLoader, b) : Promise.resolve(undefined))))) return done("", false);
      return walk({ transport: httpTransport(), bootFile: url, mac });
    }
    case "ipxe": {
      const script = await ipxeScript(base, mac, step);
      const chain = script && /^chain (\S+) -c (\S+)/m.exec(script);
      if (!chain) return done("", false);
      const [, loader, config] = chain;
      if (!(await step("GET", loader!, "loader, as iPXE fetches it", async () => (await strictFetch("GET", loader!)).body))) return done("", false);
      return walk({ transport: httpTransport(), bootFile: loader!, config, mac });
    }
    case "tftp": {
      const t = target.tftp;
      if (!t) {
        record({ request: "-", path: "", what: "TFTP", bytes: 0, ms: 0, ok: false, problem: "no TFTP server to walk" });
        return done("", false);
      }
      // edk2's PXE: a size query, then the read with blksize 1468 and windowsize 4.
      const name = `${image.name}/mboot.efi`;
      const opts = { server: t.address, port: t.port, blksize: 1468, windowsize: 4 };
      if ((await step("TFTP size", name, "loader size", () => tftpSize(name, opts))) === undefined) return done("", false);
      if (!(await step("TFTP read", name, "loader (EFI/BOOT/BOOTX64.EFI)", async () => (await tftpRead(name, opts)).bytes, (b) => (efiLoader ? sameAsImage(image, efiLoader, b) : Promise.resolve(undefined))))) return done("", false);
      return walk({ transport: tftpTransport(t.address, t.port), bootFile: name, mac });
    }
    case "bios": {
      const script = await ipxeScript(base, mac, step);
      const url = script && /^sanboot --no-describe (\S+)/m.exec(script)?.[1];
      if (!url) {
        record({ request: "-", path: `${base}/boot.ipxe`, what: "iPXE script", bytes: 0, ms: 0, ok: false, problem: "no sanboot line for BIOS clients" });
        return done("", false);
      }
      const size = await step("HEAD", url, "disc image size", async () => (await strictFetch("HEAD", url)).length);
      if (size === undefined) return done("", false);
      let bootCfg = "";
      const disc = await step("GET", url, "disc image (read back as ISO 9660)", async () => (await strictFetch("GET", url)).body, async (b) => {
        const checked = await checkDisc(image, b, mac);
        bootCfg = checked.bootCfg;
        return checked.problem;
      });
      return done(bootCfg, disc !== undefined);
    }
  }
}

/** The bytes of `name` (a boot.cfg path, any case, leading "/" or not) as the image holds them, compared. */
export async function sameAsImage(image: BootImage, name: string, bytes: Uint8Array): Promise<string | undefined> {
  const info = await image.tree.stat("/" + name.replace(/^[/\\]+/, ""));
  if (!info || info.type !== "file") return `${name} is not in the image`;
  const want = await readAll(await image.tree.open(info));
  return sameBytes(want, bytes) ? undefined : `bytes differ from the image's ${info.path}`;
}

// --- internal ---

async function ipxeScript(base: string, mac: Mac, step: (r: string, p: string, w: string, fn: () => Promise<Uint8Array | number>) => Promise<Uint8Array | number | undefined>): Promise<string | undefined> {
  const url = `${base}/boot.ipxe`;
  const body = await step("GET", url, "iPXE script", async () => (await strictFetch("GET", url, { userAgent: "iPXE/1.0.0" })).body);
  // iPXE expands its settings in the script; ${mac:hexhyp} is the one the script uses.
  return body instanceof Uint8Array ? new TextDecoder().decode(body).replaceAll("${mac:hexhyp}", macDirName(mac).slice(3)) : undefined;
}

/**
 * What ISOLINUX and mboot.c32 would read from the disc, and UEFI's mboot from /EFI/BOOT/ when the disc is
 * a CD or a RAM disk: each boot.cfg with BOOTIF for this MAC in kernelopt and the paths as the image has
 * them, and every other file as the image holds it.
 */
async function checkDisc(image: BootImage, bytes: Uint8Array, mac: Mac): Promise<{ bootCfg: string; problem: string | undefined }> {
  let iso: IsoImage;
  try {
    iso = await IsoImage.open({ size: bytes.length, read: async (o, n) => bytes.subarray(o, o + n) });
  } catch (err) {
    return { bootCfg: "", problem: `not an ISO 9660 image: ${(err as Error).message}` };
  }
  const cfgEntry = await iso.lookup("/BOOT.CFG");
  if (!cfgEntry) return { bootCfg: "", problem: "no BOOT.CFG on the disc" };
  const bootCfg = new TextDecoder().decode(await iso.read(cfgEntry));
  const kernelopt = getBootCfgValue(parseBootCfg(bootCfg), "kernelopt") ?? "";
  if (!kernelopt.split(/\s+/).includes(`BOOTIF=${macDirName(mac)}`)) return { bootCfg, problem: `BOOT.CFG's kernelopt lacks BOOTIF=${macDirName(mac)}: ${kernelopt}` };
  const rewritten = new Set(["/BOOT.CFG"]);
  if (image.esxi?.efiCfg) {
    const efiEntry = await iso.lookup("/EFI/BOOT/BOOT.CFG");
    if (!efiEntry) return { bootCfg, problem: "no /EFI/BOOT/BOOT.CFG on the disc" };
    const efiOpt = getBootCfgValue(parseBootCfg(new TextDecoder().decode(await iso.read(efiEntry))), "kernelopt") ?? "";
    if (!efiOpt.split(/\s+/).includes(`BOOTIF=${macDirName(mac)}`)) return { bootCfg, problem: `/EFI/BOOT/BOOT.CFG's kernelopt lacks BOOTIF=${macDirName(mac)}: ${efiOpt}` };
    rewritten.add("/EFI/BOOT/BOOT.CFG");
  }
  for await (const e of iso.walk("/")) {
    if (e.type !== "file" || rewritten.has(e.path.toUpperCase())) continue;
    const problem = await sameAsImage(image, e.path, await iso.read(e));
    if (problem) return { bootCfg, problem: `on the disc: ${problem}` };
  }
  return { bootCfg, problem: undefined };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
