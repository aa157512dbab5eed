/**
 * Boot storm: simulated UEFI PXE machines start at once against one netboot (`--dhcp server`), in
 * namespaces made here (198.18.0.0/15, the RFC 2544 benchmarking range, which exists only inside them): the
 * server's on a bridge, the clients' (scripts/bench/storm-client.ts: DHCP, TFTP of iPXE, HTTP of each one's
 * boot.cfg and every module of an ESXi-shaped image) and a probe's (test/helpers/small-probe.ts: DHCP,
 * TFTP first DATA, boot.cfg and boot.ipxe first byte, every 100 ms, what a machine arriving mid-storm
 * waits). Figures per run: total time against the ideal (all bytes ÷ nginx's single-stream MB/s over the
 * same bridge in the same run), failures, netboot's peak RSS (VmHWM) and descriptors, p50/p99 of every
 * small answer as the clients and the probe saw it, and which TFTP engine served.
 *
 * STORM_RUNS (default "200/pinned,200/unpinned,1000/pinned") lists the runs, each CLIENTS/PINNING[/STORE]:
 * - pinned: netboot on CPU 0; the clients and the probe on CPU 1, their protocol work (DHCP, TFTP, the
 *   probe) at real-time priority (SCHED_FIFO) above the curl processes that sink the bulk, as machines that
 *   each have a CPU of their own would be. The server's figures are then the server's.
 * - unpinned: everything shares both CPUs at one priority (the clients' CPU use is then in every figure).
 * - STORE file (default) or postgres (Debian's PostgreSQL, started here, on CPU 1 with the clients).
 * Every run moves the same bytes: STORM_MB (400) MiB of modules per client at 200 clients, scaled by
 * 200/CLIENTS (80 MiB at 1,000). STORM_ARGS adds serve options ("--cache-mem 0"); STORM_SOURCE=url serves
 * the ISO by URL from an nginx origin instead of the file; STORM_PROFILE=DIR has netboot write a CPU profile
 * there (bun --cpu-prof-md); STORM_WMEM="min default max" sets the server namespace's net.ipv4.tcp_wmem.
 * Every client and probe MAC is listed in the lab,
 * so each one's phases reach the host store as it boots.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startPostgres, type Postgres } from "../../test/helpers/postgres.ts";
import { percentile } from "../../test/helpers/measuring.ts";
import { probeFigure, type ProbeResults, type ProbeWhat } from "../../test/helpers/small-probe.ts";
import { Server, benchDir, bun, clientCpus, fillPseudoRandom, median, need, nginxConf, repo, report, serverCpus, sh } from "./lib.ts";

type Run = { clients: number; pinned: boolean; store: "file" | "postgres" };
const RUNS: Run[] = (process.env.STORM_RUNS ?? "200/pinned,200/unpinned,1000/pinned").split(",").map((r) => {
  const [n, pin = "pinned", store = "file"] = r.trim().split("/");
  if (!(Number(n) > 0) || !["pinned", "unpinned"].includes(pin) || !["file", "postgres"].includes(store)) throw new Error(`STORM_RUNS: "${r}" is not CLIENTS/pinned|unpinned[/file|postgres]`);
  return { clients: Number(n), pinned: pin === "pinned", store: store as Run["store"] };
});
/** The storm client's MACs (storm-client.ts). */
const clientMac = (i: number) => ["02", "5b", "00", (i >> 16) & 255, (i >> 8) & 255, i & 255].map((x) => (typeof x === "number" ? x.toString(16).padStart(2, "0") : x)).join(":");
const probeMac = (i: number) => `02:5c:00:00:00:${i.toString(16).padStart(2, "0")}`;
/** MiB of modules per client: the same bytes in all at any client count. */
const mbFor = (clients: number) => Math.max(1, Math.round((Number(process.env.STORM_MB ?? 400) * 200) / clients));
const MODULES = 20;

function stormImage(MB: number): { iso: string; tree: string; sizes: Record<string, number>; perClient: number } {
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


export async function benchStorm(): Promise<void> {
  need(["xorriso", "nginx", "curl", "ip", "taskset", "chrt"]);
  const S = `nbstorm-s-${process.pid}`;
  const C = `nbstorm-c-${process.pid}`;
  const P = `nbstorm-p-${process.pid}`;
  const cleanup = () => {
    for (const ns of [S, C, P]) sh("ip", ["netns", "del", ns]);
  };
  cleanup();
  // The server on a bridge (its --iface), the clients and the probe each on a veth into it. The clients'
  // namespace holds the whole pool as local addresses (AnyIP), so a machine uses its lease at once.
  for (const cmd of [
    ["netns", "add", S],
    ["netns", "add", C],
    ["netns", "add", P],
    ["-n", S, "link", "add", "stm-s", "type", "bridge"],
    ["link", "add", "stm-sc", "netns", S, "type", "veth", "peer", "name", "stm-c", "netns", C],
    ["link", "add", "stm-sp", "netns", S, "type", "veth", "peer", "name", "stm-p", "netns", P],
    ["-n", S, "link", "set", "stm-sc", "master", "stm-s"],
    ["-n", S, "link", "set", "stm-sp", "master", "stm-s"],
    ["-n", S, "addr", "add", "198.18.0.1/15", "dev", "stm-s"],
    ["-n", C, "addr", "add", "198.18.0.2/15", "dev", "stm-c"],
    ["-n", P, "addr", "add", "198.18.0.3/15", "dev", "stm-p"],
    ["-n", C, "route", "add", "local", "198.19.0.0/16", "dev", "lo"],
    ...[S, C, P].map((ns) => ["-n", ns, "link", "set", "lo", "up"]),
    ...["stm-s", "stm-sc", "stm-sp"].map((l) => ["-n", S, "link", "set", l, "up"]),
    ["-n", C, "link", "set", "stm-c", "up"],
    ["-n", P, "link", "set", "stm-p", "up"],
  ]) {
    const r = sh("ip", cmd);
    if (r.code !== 0) throw new Error(`ip ${cmd.join(" ")}: ${r.err}`);
  }
  // STORM_WMEM="min default max": the server namespace's TCP send buffers (how much one sendfile may move).
  if (process.env.STORM_WMEM) sh("ip", ["netns", "exec", S, "sysctl", "-q", "-w", `net.ipv4.tcp_wmem=${process.env.STORM_WMEM}`]);
  const work = join(benchDir, `storm-run-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const lines: string[] = [];
  try {
    // The ideal: nginx's single stream of one module over the same bridge, median of 3.
    const base = stormImage(mbFor(200));
    const ngx = new Server("nginx", ["ip", "netns", "exec", S, "nginx", "-c", nginxConf(join(work, "nginx"), base.tree, 8081, "auto", "198.18.0.1"), "-g", "daemon off;"]);
    let nginxMBs: number;
    try {
      await Bun.sleep(500);
      const speeds = [0, 1, 2].map(() => {
        const r = sh("ip", ["netns", "exec", C, "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", "http://198.18.0.1:8081/M01.V00"]);
        if (!(Number(r.out) > 0)) throw new Error(`nginx did not answer over the bridge: ${r.err || r.out}`);
        return Number(r.out) / 1e6;
      });
      nginxMBs = median(speeds);
    } finally {
      await ngx.stop();
    }
    const byUrl = process.env.STORM_SOURCE === "url";
    const origin = byUrl ? new Server("nginx", ["ip", "netns", "exec", S, "nginx", "-c", nginxConf(join(work, "origin"), benchDir, 8082, 1), "-g", "daemon off;"]) : undefined;
    if (origin) await Bun.sleep(500);
    let pg: Postgres | undefined;
    const columns: Record<string, string[]> = {};
    try {
      for (const run of RUNS) {
        const img = stormImage(mbFor(run.clients));
        const source = byUrl ? `http://127.0.0.1:8082/${img.iso.slice(benchDir.length + 1)}` : img.iso;
        const lab = join(work, "lab.yaml");
        const macs = [...Array.from({ length: run.clients }, (_, i) => clientMac(i)), ...Array.from({ length: 16 }, (_, i) => probeMac(i))];
        writeFileSync(lab, `images:\n  esxi: ${source}\nhosts:\n${macs.map((m) => `  - { mac: "${m}" }`).join("\n")}\n`);
        if (run.store === "postgres" && !pg) {
          pg = startPostgres();
          const cpus = process.env.PG_CPUS ?? "1";
          if (cpus !== "none") for (const pid of sh("pgrep", ["-f", pg.socketDir]).out.split("\n").filter(Boolean)) sh("taskset", ["-a", "-cp", cpus, pid]);
        }
        const tag = `${run.clients}-${run.pinned ? "pinned" : "unpinned"}-${run.store}`;
        const state = join(work, `state-${tag}`);
        const log = join(work, `netboot-${tag}.log`);
        // STORM_PROFILE=DIR: netboot writes a CPU profile there when it stops (bun --cpu-prof-md).
        const profile = process.env.STORM_PROFILE ? [`--cpu-prof-md`, `--cpu-prof-dir=${process.env.STORM_PROFILE}`, `--cpu-prof-name=storm-${run.clients}-${run.pinned ? "pinned" : "unpinned"}.md`] : [];
        const argv = [bun, ...profile, join(repo, "src/main.ts"), "serve", "--config", lab, "--iface", "stm-s", "--dhcp", "server", "--force", "--pool", "198.19.0.1-198.19.255.254", "--http-port", "80", "--state-dir", state, "--user", "root", "--no-live", ...(run.store === "postgres" ? ["--store", pg!.createDb(`storm${run.clients}`)] : []), ...(process.env.STORM_ARGS ?? "").split(" ").filter(Boolean)];
        // Pinned: the server alone on CPU 0; the machines' protocol work on CPU 1 above their bulk (curl runs SCHED_OTHER).
        const serverPrefix = run.pinned ? ["taskset", "-c", serverCpus] : [];
        const clientPrefix = run.pinned ? ["taskset", "-c", clientCpus, "chrt", "-f", "10"] : [];
        const probePrefix = run.pinned ? ["taskset", "-c", clientCpus, "chrt", "-f", "20"] : [];
        const nb = new Server("netboot", ["ip", "netns", "exec", S, ...serverPrefix, ...argv], { log });
        try {
          for (let i = 0; i < 300 && !/ready:/.test(safeRead(log)); i++) await Bun.sleep(100);
          if (!/ready:/.test(safeRead(log))) throw new Error(`netboot did not start: ${safeRead(log).slice(-500)}`);
          const engine = /TFTP on \S+ \((.*)\)$/m.exec(safeRead(log))?.[1] ?? "?";
          const dropsBefore = udpDrops(S);
          const probeOut = join(work, `probe-${tag}.json`);
          const probe = Bun.spawn(["ip", "netns", "exec", P, ...probePrefix, bun, join(repo, "test/helpers/small-probe.ts"), "--iface", "stm-p", "--server", "198.18.0.1", "--from", "198.18.0.3", "--out", probeOut, "--every", "100"], { stdout: "ignore", stderr: "pipe" });
          // Descriptors: sampled while the storm runs.
          let fds = 0;
          const fdTimer = setInterval(() => {
            try {
              fds = Math.max(fds, readdirSync(`/proc/${nb.proc.pid}/fd`).length);
            } catch {}
          }, 250);
          const start = performance.now();
          const out = join(work, `results-${tag}.json`);
          const client = Bun.spawn(["ip", "netns", "exec", C, ...clientPrefix, bun, join(repo, "scripts/bench/storm-client.ts"), "--iface", "stm-c", "--server", "198.18.0.1", "--clients", String(run.clients), "--out", out, "--sizes", JSON.stringify(img.sizes), ...(run.pinned ? ["--bulk-other"] : [])], { stdout: "ignore", stderr: "pipe" });
          const code = await client.exited;
          const seconds = (performance.now() - start) / 1000;
          clearInterval(fdTimer);
          probe.kill("SIGTERM");
          await probe.exited;
          if (code !== 0) throw new Error(`storm client: ${await new Response(client.stderr).text()}`);
          const drops = udpDrops(S) - dropsBefore;
          // Every client's and probe's record, kept beside the report (which second of the storm a p99 came from).
          mkdirSync(join(benchDir, "results"), { recursive: true });
          for (const [from, name] of [[out, "clients"], [probeOut, "probe"]] as const) if (existsSync(from)) copyFileSync(from, join(benchDir, "results", `storm-${tag}-${name}.json`));
          const hwm = Number(readFileSync(`/proc/${nb.proc.pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/)![1]) / 1024;
          const parsed = JSON.parse(readFileSync(out, "utf8")) as { clients: Array<Record<string, unknown>>; lagMs: number[] };
          let probed: ProbeResults = { probes: [], lagMs: [] };
          try {
            probed = JSON.parse(readFileSync(probeOut, "utf8")) as ProbeResults;
          } catch {
            console.error(`[storm] the probe wrote nothing: ${await new Response(probe.stderr).text()}`);
          }
          const probe1 = (what: ProbeWhat) => {
            const a = probeFigure(probed, what, 50);
            const b = probeFigure(probed, what, 99);
            if (!a || !b) return "- (no answer)";
            return `${a.ms.toFixed(1)} / ${b.ms.toFixed(1)} ms (${a.answered}${a.failed ? `, ${a.failed} unanswered` : ""})`;
          };
          const results = parsed.clients;
          const clientPct = (k: string) => {
            const v = results.filter((x) => typeof x[k] === "number").map((x) => Number(x[k]));
            return v.length ? `${percentile(v, 50).toFixed(1)} / ${percentile(v, 99).toFixed(1)} ms` : "-";
          };
          const lag = (xs: number[]) => (xs.length ? `${percentile(xs, 99).toFixed(1)} / ${Math.max(...xs).toFixed(0)} ms` : "-");
          const ok = results.filter((x) => x.ok);
          const failed = results.filter((x) => !x.ok);
          const bytes = ok.reduce((n, x) => n + Number(x.httpBytes) + Number(x.tftpBytes), 0);
          const ideal = bytes / 1e6 / nginxMBs;
          const ttfb = ok.map((x) => Number(x.bootcfgTtfbMs));
          const done = ok.map((x) => Number(x.doneMs) / 1000);
          columns[`${run.clients} clients × ${mbFor(run.clients)} MiB, ${run.pinned ? "pinned" : "unpinned"}${run.store === "postgres" ? ", PostgreSQL store" : ""}`] = [
            `${Math.max(...done, 0).toFixed(1)} s (client run ${seconds.toFixed(1)} s)`,
            `${ideal.toFixed(1)} s (${(bytes / 1e9).toFixed(1)} GB at nginx's ${nginxMBs.toFixed(0)} MB/s)`,
            `${(Math.max(...done, 0) / ideal).toFixed(2)}×`,
            `${failed.length}${failed.length ? ` (${failed.slice(0, 3).map((f) => f.error).join("; ")})` : ""}`,
            `${hwm.toFixed(0)} MB`,
            String(fds),
            String(drops),
            engine,
            `${clientPct("offerMs")}; ${clientPct("ackMs")}`,
            clientPct("tftpFirstDataMs"),
            ttfb.length ? `${percentile(ttfb, 50)} / ${percentile(ttfb, 99)} ms` : "-",
            `${percentile(done, 50).toFixed(1)} / ${percentile(done, 99).toFixed(1)} s`,
            `${probe1("dhcp-offer")}; ${probe1("dhcp-ack")}`,
            probe1("tftp-first-data"),
            `${probe1("boot.cfg-ttfb")}; ${probe1("boot.ipxe-ttfb")}`,
            `${lag(parsed.lagMs)}; ${lag(probed.lagMs)}`,
          ];
          console.error(`[storm] ${tag}: ${columns[Object.keys(columns).at(-1)!]!.slice(0, 4).join(" | ")}`);
        } finally {
          await nb.stop();
        }
      }
    } finally {
      await origin?.stop();
      pg?.stop();
    }
    const figures = [
      "total time, first DISCOVER to the last module's last byte",
      "ideal: bytes ÷ nginx single stream (same bridge, same run)",
      "ratio to ideal",
      "failures",
      "netboot peak RSS (VmHWM)",
      "netboot peak descriptors",
      "datagrams the server's kernel dropped (UdpRcvbufErrors)",
      "TFTP engine",
      "clients' DHCP: OFFER p50 / p99; ACK p50 / p99",
      "clients' TFTP first DATA (iPXE), p50 / p99",
      "clients' boot.cfg first byte, p50 / p99",
      "clients done, p50 / p99",
      "probe every 100 ms: DHCP OFFER; ACK (p50 / p99, answered)",
      "probe: TFTP first DATA of iPXE",
      "probe: boot.cfg first byte; boot.ipxe first byte",
      "event loop lag, p99 / max: clients; probe",
    ];
    const names = Object.keys(columns);
    lines.push(
      `## Boot storm: UEFI PXE clients at once, every one listed in the lab${process.env.STORM_ARGS ? `, serve ${process.env.STORM_ARGS}` : ""}${byUrl ? ", the ISO by URL from nginx" : ""}`,
      "",
      `| figure | ${names.join(" | ")} |`,
      `|---|${names.map(() => "---|").join("")}`,
      ...figures.map((f, i) => `| ${f} | ${names.map((n) => columns[n]![i]).join(" | ")} |`),
    );
  } finally {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  report("storm", lines.join("\n"));
}

/** Datagrams dropped for a full receive buffer in a namespace (all its UDP sockets) since it was made. */
function udpDrops(ns: string): number {
  const udp = sh("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"]).out.split("\n").filter((l) => l.startsWith("Udp:"));
  const [names, values] = udp.map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf("RcvbufErrors") ?? -1] ?? NaN);
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}
