/**
 * A client that walks an image as ESXi's loader does (vmware/esx-boot mboot/config.c, bootlib, uefi/efiutils
 * httpfile.c and tftpfile.c), with the loader's rules rather than a lenient client's:
 *
 *  - config lookup: without -c, `<its directory>/01-<mac>/boot.cfg` is read first (a probe), then read
 *    again to be parsed; if the probe fails, `<its directory>/boot.cfg`. A -c with "://" is used as given.
 *  - prefix: boot.cfg's `prefix=`, else the directory of the config file; a path starting with "/" or "\"
 *    or holding "://" ignores the prefix (is_absolute); otherwise prefix + "/" + path.
 *  - transport: over HTTP every answer must carry Content-Length and nothing else frames it (http/client.ts);
 *    over TFTP the path is sent verbatim, a URL too, with blksize 1468 (or `tftpblksize=`) and windowsize 4.
 *  - order: every kernel/module's size first (HEAD, or a tsize query), then each one loaded (GET, or a
 *    size query and a read: three TFTP requests per module), its size checked against the first answer.
 *
 * Used by `netboot demo`, the tests and the benchmarks, against both HTTP edges and TFTP.
 */
import { getBootCfgValue, parseBootCfg, splitModules } from "../boot/esxi/bootcfg.ts";
import { strictFetch } from "../http/client.ts";
import { tftpRead, tftpSize } from "../tftp/client.ts";
import { macDirName, type Mac } from "../wire/mac.ts";

export interface LoaderTransport {
  readonly kind: "http" | "tftp";
  size(path: string): Promise<number>;
  load(path: string): Promise<Uint8Array>;
  /** boot.cfg's tftpblksize= applies from the next request on (mboot: tftp_set_block_size). */
  setBlksize?(n: number): void;
}

/** HTTP as mboot.efi does it: paths are URLs; HEAD for sizes, GET for loads. */
export function httpTransport(): LoaderTransport {
  return {
    kind: "http",
    size: async (url) => (await strictFetch("HEAD", url)).length,
    load: async (url) => (await strictFetch("GET", url)).body,
  };
}

/** TFTP as mboot.efi over PXE does it: paths are file names, sent as they are. */
export function tftpTransport(server: string, port = 69, runtime?: "bun" | "node"): LoaderTransport {
  let blksize = 1468;
  return {
    kind: "tftp",
    size: (name) => tftpSize(name, { server, port, blksize, runtime }),
    async load(name) {
      // tftp_file_load: a size query, then the read.
      await tftpSize(name, { server, port, blksize, runtime });
      return (await tftpRead(name, { server, port, blksize, windowsize: 4, runtime })).bytes;
    },
    setBlksize(n) {
      if (n >= 512 && n <= 65464) blksize = n;
    },
  };
}

export interface WalkStep {
  /** "GET", "HEAD", "TFTP size", "TFTP read". */
  request: string;
  path: string;
  what: string;
  bytes: number;
  ms: number;
  ok: boolean;
  problem: string | undefined;
}

export interface WalkOptions {
  transport: LoaderTransport;
  /** The loader's own path as its firmware got it: "http://IP/NAME/mboot.efi", or "NAME/mboot.efi" by TFTP. */
  bootFile: string;
  mac: Mac;
  /** mboot's -c (the iPXE script passes the per-MAC boot.cfg URL). */
  config?: string | undefined;
  /** Also fetch the kickstart named by ks=http… (the installer does, later). */
  kickstart?: boolean;
  /** Checks a loaded kernel/module (name as boot.cfg spells it); returns a problem, or undefined. */
  verify?: (name: string, bytes: Uint8Array) => Promise<string | undefined>;
  onStep?: (s: WalkStep) => void;
}

export interface WalkResult {
  steps: WalkStep[];
  /** The config file the loader settled on, and its text. */
  configPath: string | undefined;
  bootCfg: string;
  prefix: string;
  kernelopt: string;
  /** Kernel first, then the modules: the paths requested, and the bytes received. */
  files: Array<{ name: string; path: string; size: number }>;
  bytes: number;
  seconds: number;
  ok: boolean;
}

export function isAbsolute(path: string): boolean {
  return /^[/\\]/.test(path) || path.includes("://");
}

/** mboot's make_path: an absolute path as it is, else dir + "/" + path. */
export function makePath(dir: string, path: string): string {
  if (isAbsolute(path) || dir === "") return path;
  return dir.endsWith("/") ? dir + path : `${dir}/${path}`;
}

/** mboot's strip_basename: everything before the last "/" (and the slashes before it). */
export function dirOf(path: string): string {
  return path.replace(/[^/]*$/, "").replace(/\/+$/, "");
}

export async function walkLikeMboot(opts: WalkOptions): Promise<WalkResult> {
  const t0 = performance.now();
  const steps: WalkStep[] = [];
  const t = opts.transport;
  const record = (s: WalkStep) => {
    steps.push(s);
    opts.onStep?.(s);
  };
  const request = async <T>(kind: "size" | "load", path: string, what: string, fn: () => Promise<T>): Promise<{ value: T | undefined; step: WalkStep }> => {
    const start = performance.now();
    const name = t.kind === "http" ? (kind === "size" ? "HEAD" : "GET") : kind === "size" ? "TFTP size" : "TFTP read";
    try {
      const value = await fn();
      const bytes = value instanceof Uint8Array ? value.length : 0;
      const step = { request: name, path, what, bytes, ms: performance.now() - start, ok: true, problem: undefined };
      return { value, step };
    } catch (err) {
      return { value: undefined, step: { request: name, path, what, bytes: 0, ms: performance.now() - start, ok: false, problem: (err as Error).message.replace(`${path}: `, "") } };
    }
  };
  const result = (over: Partial<WalkResult>): WalkResult => {
    const r: WalkResult = { steps, configPath: undefined, bootCfg: "", prefix: "", kernelopt: "", files: [], bytes: 0, seconds: 0, ok: false, ...over };
    r.bytes = steps.reduce((n, s) => n + s.bytes, 0);
    r.seconds = (performance.now() - t0) / 1000;
    r.ok = over.ok !== false && steps.length > 0 && steps.every((s) => s.ok);
    return r;
  };

  // locate_config_file
  const bootDir = dirOf(opts.bootFile);
  let configPath: string;
  if (opts.config && isAbsolute(opts.config)) {
    configPath = opts.config;
  } else if (opts.config) {
    configPath = makePath(bootDir, opts.config);
  } else {
    const perMac = makePath(bootDir, `${macDirName(opts.mac)}/boot.cfg`);
    const probe = await request("load", perMac, "per-MAC boot.cfg (probe)", () => t.load(perMac));
    if (probe.value) {
      record(probe.step);
      configPath = perMac;
    } else {
      // The loader goes on to its own directory's boot.cfg; the miss is worth showing, not a failure.
      record({ ...probe.step, ok: true, problem: `not there (${probe.step.problem}); the loader falls back to ${makePath(bootDir, "boot.cfg")}` });
      configPath = makePath(bootDir, "boot.cfg");
    }
  }
  // parse_config_file reads it (again).
  const cfgRead = await request("load", configPath, "boot.cfg", () => t.load(configPath));
  record(cfgRead.step);
  if (!cfgRead.value) return result({ configPath, ok: false });
  const bootCfg = new TextDecoder().decode(cfgRead.value);
  const cfg = parseBootCfg(bootCfg);
  const prefix = getBootCfgValue(cfg, "prefix") ?? dirOf(configPath);
  const kernelopt = getBootCfgValue(cfg, "kernelopt") ?? "";
  const blk = Number(getBootCfgValue(cfg, "tftpblksize") ?? "0");
  if (blk) t.setBlksize?.(blk);
  const kernel = getBootCfgValue(cfg, "kernel");
  if (!kernel) {
    record({ request: "-", path: configPath, what: "boot.cfg", bytes: 0, ms: 0, ok: false, problem: "kernel=<FILEPATH> must be set" });
    return result({ configPath, bootCfg, prefix, kernelopt, ok: false });
  }
  const names = [kernel, ...splitModules(getBootCfgValue(cfg, "modules") ?? "")].map((m) => m.split(/\s+/)[0]!);
  const files = names.map((name) => ({ name, path: makePath(prefix, name), size: -1 }));

  // get_load_size_hint: every size first.
  for (const f of files) {
    const r = await request("size", f.path, f === files[0] ? "kernel size" : "module size", () => t.size(f.path));
    record(r.step);
    if (r.value === undefined) return result({ configPath, bootCfg, prefix, kernelopt, files, ok: false });
    f.size = r.value;
  }
  for (const f of files) {
    const r = await request("load", f.path, f === files[0] ? "kernel" : "module", () => t.load(f.path));
    if (r.value) {
      if (r.value.length !== f.size) r.step = { ...r.step, ok: false, problem: `the size query said ${f.size} bytes, the load gave ${r.value.length}` };
      else {
        const problem = await opts.verify?.(f.name, r.value);
        if (problem) r.step = { ...r.step, ok: false, problem };
      }
    }
    record(r.step);
    if (!r.value) return result({ configPath, bootCfg, prefix, kernelopt, files, ok: false });
  }
  const ks = /(?:^|\s)ks=(\S+)/.exec(kernelopt)?.[1];
  if (opts.kickstart && ks?.startsWith("http://")) {
    // The installer fetches it over HTTP, whatever carried the loader.
    const r = await request("load", ks, "kickstart", async () => (await strictFetch("GET", ks)).body);
    record({ ...r.step, request: "GET" });
  }
  return result({ configPath, bootCfg, prefix, kernelopt, files });
}
