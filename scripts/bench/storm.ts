/**
 * Boot storm: STORM_CLIENTS (200) simulated UEFI PXE machines start at once against one netboot
 * (`--dhcp server`) in a namespace pair made here (198.18.0.0/15, the RFC 2544 benchmarking range, which
 * exists only inside the two namespaces): DHCP, TFTP of iPXE, HTTP of each one's boot.cfg and every module
 * of an ESXi-shaped image of STORM_MB (400) MiB (scripts/bench/storm-client.ts). Figures: total time against
 * the ideal (all bytes ÷ nginx's single-stream MB/s over the same veth in the same run), failures, netboot's
 * peak RSS (VmHWM), p50/p99 time to the first byte of boot.cfg. STORM_ARGS adds serve options
 * ("--cache-mem 0"); STORM_SOURCE=url serves the ISO by URL from an nginx origin instead of the file.
 * STORM_STORES (file,postgres) runs the storm once per host store, with a lab file that lists every
 * client's MAC (each one's phases are written as it boots: offered, loader, bootcfg, modules); the
 * PostgreSQL is Debian's, started here, on CPU 1 with the clients (PG_CPUS=none: unpinned).
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startPostgres, type Postgres } from "../../test/helpers/postgres.ts";
import { Server, benchDir, bun, fillPseudoRandom, median, need, nginxConf, repo, report, sh } from "./lib.ts";

const CLIENTS = Number(process.env.STORM_CLIENTS ?? 200);
const STORES = (process.env.STORM_STORES ?? "file,postgres").split(",").map((s) => s.trim()) as Array<"file" | "postgres">;
/** The storm client's MACs (storm-client.ts). */
const clientMac = (i: number) => ["02", "5b", "00", (i >> 16) & 255, (i >> 8) & 255, i & 255].map((x) => (typeof x === "number" ? x.toString(16).padStart(2, "0") : x)).join(":");
const MB = Number(process.env.STORM_MB ?? 400);
const MODULES = 20;

function stormImage(): { iso: string; tree: string; sizes: Record<string, number>; perClient: number } {
  const tree = join(benchDir, `storm-tree-${MB}`);
  const iso = join(benchDir, `storm-${MB}.iso`);
  mkdirSync(join(tree, "EFI", "BOOT"), { recursive: true });
  const each = Math.floor((MB * 1024 * 1024) / MODULES);
  const names = Array.from({ length: MODULES }, (_, i) => (i === 0 ? "B.B00" : `M${String(i).padStart(2, "0")}.V00`));
  names.forEach((n, i) => fillPseudoRandom(join(tree, n), each, 1000 + i));
  const cfg = `bootstate=0\ntitle=Loading ESXi installer (storm)\nkernel=/b.b00\nkernelopt=runweasel cdromBoot\nmodules=${names.slice(1).map((n) => `/${n.toLowerCase()}`).join(" --- ")}\nbuild=8.0.2-0.0.22380479\nupdated=0\n`;
  writeFileSync(join(tree, "BOOT.CFG"), cfg);
  writeFileSync(join(tree, "EFI", "BOOT", "BOOT.CFG"), cfg);
  fillPseudoRandom(join(tree, "EFI", "BOOT", "BOOTX64.EFI"), 200_000, 7);
  let fresh = false;
  try {
    fresh = statSync(iso).mtimeMs >= statSync(join(tree, "BOOT.CFG")).mtimeMs - 1;
  } catch {}
  if (!fresh) {
    const r = sh("xorriso", ["-as", "mkisofs", "-quiet", "--norock", "-o", iso, tree]);
    if (r.code !== 0) throw new Error(`xorriso: ${r.err}`);
  }
  return { iso, tree, sizes: Object.fromEntries(names.map((n) => [n.toLowerCase(), each])), perClient: each * MODULES };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

export async function benchStorm(): Promise<void> {
  need(["xorriso", "nginx", "curl", "ip"]);
  const img = stormImage();
  const S = `nbstorm-s-${process.pid}`;
  const C = `nbstorm-c-${process.pid}`;
  const cleanup = () => {
    sh("ip", ["netns", "del", S]);
    sh("ip", ["netns", "del", C]);
  };
  cleanup();
  for (const cmd of [
    ["netns", "add", S],
    ["netns", "add", C],
    ["link", "add", "stm-s", "netns", S, "type", "veth", "peer", "name", "stm-c", "netns", C],
    ["-n", S, "addr", "add", "198.18.0.1/16", "dev", "stm-s"],
    ["-n", C, "addr", "add", "198.18.0.2/16", "dev", "stm-c"],
    ["-n", S, "link", "set", "stm-s", "up"],
    ["-n", C, "link", "set", "stm-c", "up"],
    ["-n", S, "link", "set", "lo", "up"],
    ["-n", C, "link", "set", "lo", "up"],
  ]) {
    const r = sh("ip", cmd);
    if (r.code !== 0) throw new Error(`ip ${cmd.join(" ")}: ${r.err}`);
  }
  const work = join(benchDir, `storm-run-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const lines: string[] = [];
  try {
    // The ideal: nginx's single stream of one module over the same veth, median of 3.
    const ngx = new Server("nginx", ["ip", "netns", "exec", S, "nginx", "-c", nginxConf(join(work, "nginx"), img.tree, 8081, "auto", "198.18.0.1"), "-g", "daemon off;"]);
    let nginxMBs: number;
    try {
      await Bun.sleep(500);
      const speeds = [0, 1, 2].map(() => {
        const r = sh("ip", ["netns", "exec", C, "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", "http://198.18.0.1:8081/M01.V00"]);
        if (!(Number(r.out) > 0)) throw new Error(`nginx did not answer over the veth: ${r.err || r.out}`);
        return Number(r.out) / 1e6;
      });
      nginxMBs = median(speeds);
    } finally {
      await ngx.stop();
    }
    // STORM_SOURCE=url: the same ISO read by netboot from an nginx origin inside the server namespace.
    const byUrl = process.env.STORM_SOURCE === "url";
    const origin = byUrl ? new Server("nginx", ["ip", "netns", "exec", S, "nginx", "-c", nginxConf(join(work, "origin"), benchDir, 8082, 1), "-g", "daemon off;"]) : undefined;
    if (origin) await Bun.sleep(500);
    const source = byUrl ? `http://127.0.0.1:8082/${img.iso.slice(benchDir.length + 1)}` : img.iso;
    // The lab: every client listed, so each one's phases reach the host store as it boots.
    const lab = join(work, "lab.yaml");
    writeFileSync(lab, `images:\n  esxi: ${source}\nhosts:\n${Array.from({ length: CLIENTS }, (_, i) => `  - { mac: "${clientMac(i)}" }`).join("\n")}\n`);
    let pg: Postgres | undefined;
    const columns: Record<string, string[]> = {};
    let header = "";
    try {
      for (const store of STORES) {
        if (store === "postgres" && !pg) {
          pg = startPostgres();
          const cpus = process.env.PG_CPUS ?? "1";
          if (cpus !== "none") for (const pid of sh("pgrep", ["-f", pg.socketDir]).out.split("\n").filter(Boolean)) sh("taskset", ["-a", "-cp", cpus, pid]);
        }
        const state = join(work, `state-${store}`);
        const log = join(work, `netboot-${store}.log`);
        const argv = [bun, join(repo, "src/main.ts"), "serve", "--config", lab, "--iface", "stm-s", "--dhcp", "server", "--force", "--pool", "198.18.1.0-198.18.255.254", "--http-port", "80", "--state-dir", state, "--user", "root", "--no-live", ...(store === "postgres" ? ["--store", pg!.createDb("storm")] : []), ...(process.env.STORM_ARGS ?? "").split(" ").filter(Boolean)];
        const nb = new Server("netboot", ["ip", "netns", "exec", S, ...argv], { log });
        try {
          for (let i = 0; i < 100 && !/ready:/.test(safeRead(log)); i++) await Bun.sleep(100);
          const start = performance.now();
          const out = join(work, `results-${store}.json`);
          const r = sh("ip", ["netns", "exec", C, bun, join(repo, "scripts/bench/storm-client.ts"), "--iface", "stm-c", "--server", "198.18.0.1", "--clients", String(CLIENTS), "--out", out, "--sizes", JSON.stringify(img.sizes)]);
          if (r.code !== 0) throw new Error(`storm client: ${r.err}`);
          const seconds = (performance.now() - start) / 1000;
          const hwm = Number(readFileSync(`/proc/${nb.proc.pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/)![1]) / 1024;
          const parsed = JSON.parse(readFileSync(out, "utf8")) as { clients: Array<Record<string, unknown>>; probes: Array<{ what: string; ms: number; error?: string }>; lagMs: number[] };
          const results = parsed.clients;
          const probe = (what: string) => {
            const all = parsed.probes.filter((p) => p.what === what);
            const ok = all.filter((p) => p.ms >= 0).map((p) => p.ms);
            if (ok.length === 0) return `- (${all.length} failed)`;
            return `${pct(ok, 50).toFixed(1)} / ${pct(ok, 99).toFixed(1)} ms (${ok.length}${ok.length < all.length ? `, ${all.length - ok.length} failed` : ""})`;
          };
          const clientPct = (k: string) => {
            const v = results.filter((x) => typeof x[k] === "number").map((x) => Number(x[k]));
            return v.length ? `${pct(v, 50).toFixed(1)} / ${pct(v, 99).toFixed(1)} ms` : "-";
          };
          const ok = results.filter((x) => x.ok);
          const failed = results.filter((x) => !x.ok);
          const bytes = ok.reduce((n, x) => n + Number(x.httpBytes) + Number(x.tftpBytes), 0);
          const ideal = bytes / 1e6 / nginxMBs;
          const ttfb = ok.map((x) => Number(x.bootcfgTtfbMs));
          const at = ok.map((x) => Number(x.bootcfgAtMs));
          const done = ok.map((x) => Number(x.doneMs) / 1000);
          header = `## Boot storm: ${CLIENTS} UEFI PXE clients at once, ${MB} MiB of modules each (${(bytes / 1e9).toFixed(1)} GB in all), every client listed in the lab${process.env.STORM_ARGS ? `, serve ${process.env.STORM_ARGS}` : ""}${process.env.STORM_SOURCE === "url" ? ", the ISO by URL from nginx" : ""}`;
          columns[store === "file" ? "file store" : "PostgreSQL store"] = [
            `${Math.max(...done, 0).toFixed(1)} s (client run ${seconds.toFixed(1)} s)`,
            `${ideal.toFixed(1)} s (nginx ${nginxMBs.toFixed(0)} MB/s)`,
            `${(Math.max(...done, 0) / ideal).toFixed(2)}×`,
            `${failed.length}${failed.length ? ` (${failed.slice(0, 3).map((f) => f.error).join("; ")})` : ""}`,
            `${hwm.toFixed(0)} MB`,
            `${pct(ttfb, 50)} / ${pct(ttfb, 99)} ms`,
            `${(pct(at, 50) / 1000).toFixed(2)} / ${(pct(at, 99) / 1000).toFixed(2)} s`,
            `${pct(done, 50).toFixed(1)} / ${pct(done, 99).toFixed(1)} s`,
            `${clientPct("offerMs")}; ${clientPct("ackMs")}`,
            clientPct("tftpFirstDataMs"),
            `${probe("dhcp-offer")}; ${probe("dhcp-ack")}`,
            probe("tftp-first-data"),
            `${probe("boot.cfg-ttfb")}; ${probe("boot.ipxe-ttfb")}`,
            parsed.lagMs.length ? `${pct(parsed.lagMs, 50).toFixed(1)} / ${pct(parsed.lagMs, 99).toFixed(1)} / ${Math.max(...parsed.lagMs).toFixed(0)} ms` : "-",
          ];
        } finally {
          await nb.stop();
        }
      }
    } finally {
      await origin?.stop();
      pg?.stop();
    }
    const figures = ["total time, first DISCOVER to the last module's last byte", "ideal: bytes ÷ nginx single stream (same veth, same run)", "ratio to ideal", "failures", "netboot peak RSS (VmHWM)", "boot.cfg time to first byte, p50 / p99 (per request)", "boot.cfg first byte since the storm began, p50 / p99", "all clients done, p50 / p99", "clients' own DHCP: OFFER p50 / p99; ACK p50 / p99", "clients' own TFTP first DATA (iPXE), p50 / p99", "probe during the storm, every 100 ms: DHCP OFFER; ACK (p50 / p99, count)", "probe: TFTP first DATA of the boot file", "probe: boot.cfg first byte; boot.ipxe first byte", "the clients' own event loop: a 10 ms timer late by, p50 / p99 / max"];
    const names = Object.keys(columns);
    lines.push(header, "", `| figure | ${names.join(" | ")} |`, `|---|${names.map(() => "---|").join("")}`, ...figures.map((f, i) => `| ${f} | ${names.map((n) => columns[n]![i]).join(" | ")} |`));
  } finally {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  report("storm", lines.join("\n"));
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}
