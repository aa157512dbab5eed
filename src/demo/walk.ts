/**
 * A client that fetches an image the way ESXi's bootloader does over HTTP (vmware/esx-boot
 * uefi/efiutils/httpfile.c: HEAD for the size, then GET): the loader, then <bootdir>/01-<mac>/boot.cfg,
 * then the kernel and every module through `prefix=`, then the kickstart named in kernelopt.
 * Used by `netboot demo` and by the tests; every byte is checked against the image itself.
 */
import { getBootCfgValue, parseBootCfg, splitModules } from "../boot/esxi/bootcfg.ts";
import type { BootImage } from "../boot/image.ts";
import { readAll } from "../files/tree.ts";
import { macDirName, type Mac } from "../wire/mac.ts";

export interface WalkStep {
  url: string;
  what: string;
  status: number;
  bytes: number;
  ok: boolean;
  problem: string | undefined;
}

export interface WalkResult {
  steps: WalkStep[];
  bootCfg: string;
  bytes: number;
  seconds: number;
  ok: boolean;
}

export interface WalkOptions {
  /** "http://127.0.0.1:8080" */
  base: string;
  image: BootImage;
  mac: Mac;
  onStep?: (s: WalkStep) => void;
}

export async function walkLikeMboot(opts: WalkOptions): Promise<WalkResult> {
  const t0 = performance.now();
  const steps: WalkStep[] = [];
  const bootdir = `${opts.base}/${opts.image.name}/`;
  const step = (s: WalkStep) => {
    steps.push(s);
    opts.onStep?.(s);
  };

  const loader = await fetchLikeMboot(`${bootdir}mboot.efi`, "UEFI loader (EFI/BOOT/BOOTX64.EFI)");
  if (opts.image.esxi?.efiLoader) await verify(loader, opts.image.esxi.efiLoader);
  step(loader.step);

  const cfgUrl = `${bootdir}${macDirName(opts.mac)}/boot.cfg`;
  const cfgFetch = await fetchLikeMboot(cfgUrl, "per-MAC boot.cfg");
  step(cfgFetch.step);
  const bootCfg = new TextDecoder().decode(cfgFetch.body);
  const cfg = parseBootCfg(bootCfg);
  const prefix = getBootCfgValue(cfg, "prefix") ?? "";
  if (prefix !== bootdir) {
    step({ url: cfgUrl, what: "boot.cfg prefix", status: 0, bytes: 0, ok: false, problem: `prefix is ${JSON.stringify(prefix)}, expected ${bootdir}` });
  }
  const files = [getBootCfgValue(cfg, "kernel") ?? "", ...splitModules(getBootCfgValue(cfg, "modules") ?? "")].filter((f) => f !== "");
  for (const f of files) {
    if (/^[/\\]/.test(f)) {
      step({ url: f, what: "module path", status: 0, bytes: 0, ok: false, problem: `${f} is absolute: mboot would ignore prefix` });
      continue;
    }
    const r = await fetchLikeMboot(prefix + f, f === files[0] ? "kernel" : "module");
    await verify(r, "/" + f);
    step(r.step);
  }
  const ks = /(?:^|\s)ks=(\S+)/.exec(getBootCfgValue(cfg, "kernelopt") ?? "")?.[1];
  if (ks?.startsWith("http")) step((await fetchLikeMboot(ks, "kickstart")).step);

  const bytes = steps.reduce((n, s) => n + s.bytes, 0);
  return { steps, bootCfg, bytes, seconds: (performance.now() - t0) / 1000, ok: steps.every((s) => s.ok) };

  async function verify(r: { body: Uint8Array; step: WalkStep }, path: string): Promise<void> {
    if (!r.step.ok) return;
    const info = await opts.image.tree.stat(path);
    if (!info) {
      r.step.ok = false;
      r.step.problem = `${path} is not in the image`;
      return;
    }
    const want = await readAll(await opts.image.tree.open(info));
    if (!sameBytes(want, r.body)) {
      r.step.ok = false;
      r.step.problem = "bytes differ from the image";
    }
  }
}

// --- internal ---

async function fetchLikeMboot(url: string, what: string): Promise<{ body: Uint8Array; step: WalkStep }> {
  const fail = (status: number, problem: string) => ({ body: new Uint8Array(0), step: { url, what, status, bytes: 0, ok: false, problem } });
  let head: Response;
  try {
    head = await fetch(url, { method: "HEAD", headers: { "user-agent": "esx-boot/2.0 (netboot demo)" } });
  } catch (err) {
    return fail(0, `HEAD failed: ${(err as Error).message}`);
  }
  if (head.status !== 200) return fail(head.status, `HEAD answered ${head.status}`);
  const length = Number(head.headers.get("content-length"));
  const res = await fetch(url, { headers: { "user-agent": "esx-boot/2.0 (netboot demo)" } });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) return fail(res.status, `GET answered ${res.status}`);
  const ok = Number.isFinite(length) && length === body.length;
  return { body, step: { url, what, status: res.status, bytes: body.length, ok, problem: ok ? undefined : `HEAD said ${length} bytes, GET sent ${body.length}` } };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
