/**
 * Sources: HTTP download of every module of an ESXi-sized image (boot.cfg's kernel= and modules=, ~500 MiB,
 * sizes shaped like 8.0U2's) through netboot, one after another on one keep-alive connection as mboot
 * fetches them, with netboot reading from: the ISO file; the tree extracted from it; the ISO at a URL on
 * nginx (loopback), cold (fresh process, empty --cache-dir), warm (second pass in the same process) and
 * restarted on the --cache-dir; the URL without a disk cache (Bun's fetch, and undici). nginx serving the
 * extracted tree directly is the peer's figure for a local source; nginx as a reverse proxy of the same
 * origin (buffered; and slice 1m + proxy_cache, cold then a second pass) is the peer's figure for a URL
 * source, cold and warm; Bun's fetch alone reading the URL is the ceiling of the cold pass. netboot on CPU 0; curl and the origin nginx on CPU 1; each row with the server's CPU s/GB.
 * --cache-mem 0 everywhere: the hot-file cache sits above every source alike and is measured by `http`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Server, benchDir, bun, clientCpus, fillPseudoRandom, firstTouchSecondsPerGB, groupCpuSeconds, median, need, nginxConf, nginxProxyConf, repo, report, runs, serverCpus, sh, waitTcp } from "./lib.ts";

const MiB = 1024 * 1024;

/** name → MiB, the large ones as on an 8.0U2 installer ISO; plus 40 driver VIBs of 0.5 MiB. */
const MODULES: Array<[string, number]> = [
  ["B.B00", 0.2], ["JUMPSTRT.GZ", 0.01], ["USEROPTS.GZ", 0.01], ["FEATURES.GZ", 0.01], ["K.B00", 0.1],
  ["UC_INTEL.B00", 0.4], ["UC_AMD.B00", 0.2], ["PROCFS.B00", 0.01], ["VMX.V00", 120], ["VIM.V00", 40],
  ["TPM.V00", 0.02], ["GC.V00", 0.1], ["VSAN.V00", 40], ["VSANHEAL.V00", 12], ["ESXUPDT.V00", 2],
  ["TOOLS.T00", 30], ["XORG.V00", 4], ["S.V00", 70], ["SB.V00", 1], ["IMGDB.TGZ", 5], ["IMGPAYLD.TGZ", 150],
  ...Array.from({ length: 40 }, (_, i) => [`DRV${String(i).padStart(3, "0")}.V00`, 0.5] as [string, number]),
];

function imageData(): { iso: string; tree: string; www: string; paths: string[]; total: number } {
  const dir = join(benchDir, "sources");
  const tree = join(dir, "tree");
  const www = join(dir, "www");
  const iso = join(www, "esxi.iso");
  mkdirSync(tree, { recursive: true });
  mkdirSync(www, { recursive: true });
  // The origin also serves the extracted tree, for the nginx reverse proxy (the peer of a URL source).
  if (!existsSync(join(www, "tree"))) symlinkSync("../tree", join(www, "tree"));
  let total = 0;
  MODULES.forEach(([name, mib], i) => {
    const size = Math.round(mib * MiB) + i; // not block-aligned
    fillPseudoRandom(join(tree, name), size, 1000 + i);
    total += size;
  });
  const [kernel, ...mods] = MODULES.map(([n]) => `/${n.toLowerCase()}`);
  const cfg = `bootstate=0\ntitle=Loading ESXi installer\ntimeout=5\nprefix=\nkernel=${kernel}\nkernelopt=runweasel cdromBoot\nmodules=${mods.join(" --- ")}\nbuild=8.0.2-0.0.22380479\nupdated=0\n`;
  writeFileSync(join(tree, "BOOT.CFG"), cfg);
  mkdirSync(join(tree, "EFI", "BOOT"), { recursive: true });
  writeFileSync(join(tree, "EFI", "BOOT", "BOOT.CFG"), cfg);
  if (!existsSync(iso) || statSync(iso).mtimeMs < statSync(join(tree, "BOOT.CFG")).mtimeMs) {
    const r = sh("xorriso", ["-as", "mkisofs", "--norock", "-V", "ESXI-BENCH", "-o", iso, tree]);
    if (r.code !== 0) throw new Error(`xorriso: ${r.err}`);
  }
  return { iso, tree, www, paths: MODULES.map(([n]) => n.toLowerCase()), total };
}

/** All modules, one after another on one connection (as mboot does). Returns MB/s, or NaN on a short file. */
function downloadAll(base: string, paths: string[], sizes: number[]): number {
  const args = ["-s", "--fail"];
  for (const p of paths) args.push("-o", "/dev/null", "-w", "%{size_download}\\n", `${base}/${p}`);
  const t0 = performance.now();
  const r = sh("curl", args, { cpus: clientCpus });
  const seconds = (performance.now() - t0) / 1000;
  const got = r.out.trim().split("\n").map(Number);
  if (r.code !== 0 || got.length !== sizes.length || got.some((n, i) => n !== sizes[i])) {
    console.error(`[sources] ${base}: short or failed download (curl ${r.code}): ${r.err.trim()}`);
    return NaN;
  }
  return sizes.reduce((a, b) => a + b, 0) / seconds / 1e6;
}

function checkSums(base: string, tree: string, paths: string[]): void {
  for (const p of paths.filter((_, i) => MODULES[i]![1] >= 30)) {
    const a = sh("sh", ["-c", `curl -sf ${base}/${p} | md5sum`]).out.slice(0, 32);
    const b = sh("md5sum", [join(tree, p.toUpperCase())]).out.slice(0, 32);
    if (a !== b) throw new Error(`${base}/${p}: md5 ${a} ≠ ${b}`);
  }
}

/** Waits until netboot's --cache-dir holds every block (its .blocks map is all ones). Seconds waited. */
async function cacheComplete(dir: string, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const map = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(".blocks")) : undefined;
    if (map && readFileSync(join(dir, map)).every((b) => b === 1)) return (performance.now() - t0) / 1000;
    await Bun.sleep(100);
  }
  throw new Error(`${dir}: the disk cache did not complete in ${timeoutMs / 1000} s`);
}

export async function benchSources(): Promise<void> {
  need(["nginx", "curl", "xorriso", "taskset", "md5sum"]);
  const data = imageData();
  const sizes = MODULES.map(([, mib], i) => Math.round(mib * MiB) + i);
  const origin = { port: 8083, dir: join(benchDir, "sources", "nginx-origin") };
  const peer = { port: 8084, dir: join(benchDir, "sources", "nginx-tree") };
  const url = `http://127.0.0.1:${origin.port}/esxi.iso`;
  const cacheDir = join(benchDir, "sources", "cache");
  const netbootBase = "http://127.0.0.9:8089/esxi";
  const netboot = (source: string, extra: string[] = [], env: Record<string, string> = {}) =>
    new Server("netboot", [bun, join(repo, "src/main.ts"), "serve", source, "--ip", "127.0.0.9", "--http-port", "8089", "--name", "esxi", "--dhcp", "off", "--no-tftp", "--cache-mem", "0", "-q", ...extra], {
      cpus: serverCpus,
      env,
      log: join(benchDir, "netboot-sources.log"),
    });
  const originNginx = new Server("nginx", ["nginx", "-c", nginxConf(origin.dir, data.www, origin.port, 1), "-g", "daemon off;"], { cpus: clientCpus });
  const values: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const add = (k: string, v: number) => (values[k] ??= []).push(v);
  /** One pass of every module, with the serving process group's CPU seconds per GB it took. */
  const measure = (col: string, server: Server, base: string, paths: string[]) => {
    const c0 = groupCpuSeconds(server.proc.pid!);
    add(col, downloadAll(base, paths, sizes));
    (cpu[col] ??= []).push((groupCpuSeconds(server.proc.pid!) - c0) / (data.total / 1e9));
  };
  const CEILING = "origin read alone: 1 MiB ranges, 4 in flight, received and dropped (ceiling of URL cold)";
  const PROXY = "nginx reverse proxy of the origin's tree, no cache (peer of URL cold, no --cache-dir)";
  const SLICE_COLD = "nginx slice 1m + proxy_cache, cold (peer of URL cold)";
  const SLICE_WARM = "nginx slice 1m + proxy_cache, second pass (peer of URL warm, same process)";
  const columns = ["local ISO", "directory", "URL cold", "URL warm (same process, cache filled)", "URL warm (restart on the --cache-dir)", "URL cold, no --cache-dir", "URL cold, no --cache-dir, undici client", CEILING, "nginx, extracted tree (peer)", PROXY, SLICE_COLD, SLICE_WARM];
  const touch: number[] = [];
  // Every figure is the first pass of a freshly started server (page cache warm: the files were read in
  // run 1's check), except "same process", which is by definition the second.
  const fresh = async (source: string, extra: string[], passes: string[], env: Record<string, string> = {}) => {
    const s = netboot(source, extra, env);
    try {
      await waitTcp("127.0.0.9", 8089);
      for (const [n, col] of passes.entries()) {
        if (n > 0 && extra.includes("--cache-dir")) console.error(`[sources] disk cache complete ${(await cacheComplete(cacheDir)).toFixed(1)} s after the cold pass`);
        measure(col, s, netbootBase, data.paths);
      }
    } finally {
      await s.stop();
    }
  };
  try {
    await waitTcp("127.0.0.1", origin.port);
    {
      const s = netboot(data.iso);
      try {
        await waitTcp("127.0.0.9", 8089);
        checkSums(netbootBase, data.tree, data.paths);
      } finally {
        await s.stop();
      }
    }
    for (let i = 0; i < runs; i++) {
      await fresh(data.iso, [], ["local ISO"]);
      await fresh(data.tree, [], ["directory"]);
      rmSync(cacheDir, { recursive: true, force: true });
      await fresh(url, ["--cache-dir", cacheDir], ["URL cold", "URL warm (same process, cache filled)"]);
      await fresh(url, ["--cache-dir", cacheDir], ["URL warm (restart on the --cache-dir)"]);
      if (i === 0) {
        const s = netboot(url, ["--cache-dir", cacheDir]);
        try {
          await waitTcp("127.0.0.9", 8089);
          checkSums(netbootBase, data.tree, data.paths);
        } finally {
          await s.stop();
        }
      }
      await fresh(url, [], ["URL cold, no --cache-dir"]);
      await fresh(url, [], ["URL cold, no --cache-dir, undici client"], { NETBOOT_URL_CLIENT: "undici" });
      {
        // The ceiling of "URL cold": only receiving the same bytes from the same origin, on netboot's CPU.
        const r = sh(bun, [join(repo, "scripts/bench/origin-read.ts"), url, String(statSync(data.iso).size)], { cpus: serverCpus });
        const o = r.code === 0 ? (JSON.parse(r.out) as { bytes: number; seconds: number; cpuSeconds: number }) : undefined;
        if (!o) console.error(`[sources] origin read: ${r.err.trim()}`);
        add(CEILING, o ? o.bytes / o.seconds / 1e6 : NaN);
        (cpu[CEILING] ??= []).push(o ? o.cpuSeconds / (o.bytes / 1e9) : NaN);
      }
      const p = new Server("nginx", ["nginx", "-c", nginxConf(peer.dir, data.tree, peer.port, 1), "-g", "daemon off;"], { cpus: serverCpus });
      try {
        await waitTcp("127.0.0.1", peer.port);
        measure("nginx, extracted tree (peer)", p, `http://127.0.0.1:${peer.port}`, data.paths.map((x) => x.toUpperCase()));
      } finally {
        await p.stop();
      }
      for (const cached of [false, true]) {
        const dir = join(benchDir, "sources", cached ? "nginx-slice" : "nginx-proxy");
        const store = join(dir, "cache");
        rmSync(store, { recursive: true, force: true });
        const px = new Server("nginx", ["nginx", "-c", nginxProxyConf(dir, `127.0.0.1:${origin.port}`, 8085, cached ? store : undefined), "-g", "daemon off;"], { cpus: serverCpus });
        try {
          await waitTcp("127.0.0.1", 8085);
          for (const col of cached ? [SLICE_COLD, SLICE_WARM] : [PROXY]) measure(col, px, "http://127.0.0.1:8085/tree", data.paths.map((x) => x.toUpperCase()));
        } catch (err) {
          // An nginx without the proxy or slice module: the row stays empty, the rest of the run goes on.
          console.error(`[sources] nginx reverse proxy${cached ? " with slice + proxy_cache" : ""}: ${(err as Error).message} (see ${dir}/error.log)`);
        } finally {
          await px.stop();
        }
      }
      touch.push(firstTouchSecondsPerGB());
      console.error(`[sources] run ${i + 1}/${runs}: ${columns.map((c) => `${c} ${values[c]?.at(-1)?.toFixed(0) ?? "-"}`).join(", ")} MB/s`);
    }
  } finally {
    await originNginx.stop();
  }
  const local = median(values["local ISO"] ?? []);
  const fmt = (xs: number[] | undefined) => (!xs?.length ? "-" : `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`);
  const lines = [
    `### Sources (${MODULES.length} modules, ${(data.total / MiB).toFixed(0)} MiB, downloaded in boot.cfg order on one connection; MB/s, median (min–max) of ${runs} runs; netboot CPU ${serverCpus} with --cache-mem 0, curl and the origin nginx CPU ${clientCpus})`,
    "",
    "| netboot reading from | MB/s | × local ISO | server CPU s/GB | target |",
    "|---|---|---|---|---|",
    ...columns.map((c) => {
      const target = c.startsWith("URL cold") ? `≥ 0.8× (issue 13); ${(median(values[c] ?? []) / median(values[c.includes("no --cache-dir") ? PROXY : SLICE_COLD] ?? [])).toFixed(2)}× nginx's` : c.startsWith("URL warm") ? "≥ 0.9×" : "";
      const cpuFmt = cpu[c]?.length ? median(cpu[c]!).toFixed(2) : "-";
      return `| ${c} | ${fmt(values[c])} | ${(median(values[c] ?? []) / local).toFixed(2)}× | ${cpuFmt} | ${target} |`;
    }),
    "",
    "Server CPU: utime + stime of the serving process group per GB served (the origin nginx's, on the client CPU, not counted).",
    "The origin-read row is Bun's fetch alone on the server CPU (no cache, nothing sent on): a URL source serving cold",
    "must also send every byte, so it cannot beat that row.",
    `This machine charges ${median(touch).toFixed(2)} CPU s/GB (median; ${Math.min(...touch).toFixed(2)}–${Math.max(...touch).toFixed(2)}) for memory a fresh process touches the first time:`,
    "every cold path pays it for the pages it fills (fetched bodies, the page cache of a new file), sendfile from a cached file does not.",
  ];
  report("sources", lines.join("\n"));
}
