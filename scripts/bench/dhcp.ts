/**
 * DHCP: DORA exchanges per second with perfdhcp (Debian's kea-admin package), netboot in `server` mode
 * against dnsmasq in the same run, each started fresh per run in a namespace pair made here (addresses from
 * 198.18.0.0/15, the RFC 2544 benchmarking range, which exist only inside the two namespaces). Offered
 * rates 500/s (latency at normal load) and 5000/s (overload: capacity). Server on CPU 0, perfdhcp on CPU 1.
 *
 * netboot runs twice, with the same lab file listing DHCP_CLIENTS (5000) hosts, and perfdhcp takes its
 * MACs from that list (-M, a random one per exchange, PXEClient vendor class): each host's first DISCOVER
 * is answered with its boot file and marks it `offered` in the host store, so the store is written while
 * DHCP answers. Once with the file store (--state-dir), once with PostgreSQL (--store, Debian's server
 * started here, over its Unix socket, a fresh database per run): the request path must not wait for it.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startPostgres } from "../../test/helpers/postgres.ts";
import { Server, bun, need, repo, report, sh, table, testData, type Row } from "./lib.ts";

const SECONDS = Number(process.env.DHCP_SECONDS ?? 5);
const CLIENTS = Number(process.env.DHCP_CLIENTS ?? 5000);
const RATES = [Number(process.env.DHCP_RATE_LOW ?? 500), Number(process.env.DHCP_RATE_HIGH ?? 5000)];
const RUNS = Number(process.env.DHCP_RUNS ?? process.env.RUNS ?? 3);

export async function benchDhcp(): Promise<void> {
  need(["perfdhcp", "dnsmasq", "ip", "taskset", "ss", "psql"]);
  const data = testData();
  const pg = startPostgres();
  // PostgreSQL beside the client (CPU 1), not on netboot's CPU: PG_CPUS=none leaves it unpinned.
  const pgCpus = process.env.PG_CPUS ?? "1";
  if (pgCpus !== "none") for (const pid of sh("pgrep", ["-f", pg.socketDir]).out.split("\n").filter(Boolean)) sh("taskset", ["-a", "-cp", pgCpus, pid]);
  const S = `nbbench-s-${process.pid}`;
  const C = `nbbench-c-${process.pid}`;
  const ns = (n: string, argv: string[]) => sh("ip", ["netns", "exec", n, ...argv]);
  const cleanup = () => {
    sh("ip", ["netns", "del", S]);
    sh("ip", ["netns", "del", C]);
  };
  cleanup();
  for (const cmd of [
    ["ip", "netns", "add", S],
    ["ip", "netns", "add", C],
    ["ip", "link", "add", "pdh-s", "netns", S, "type", "veth", "peer", "name", "pdh-c", "netns", C],
    ["ip", "-n", S, "addr", "add", "198.18.0.1/16", "dev", "pdh-s"],
    ["ip", "-n", C, "addr", "add", "198.18.0.2/16", "dev", "pdh-c"],
    ["ip", "-n", S, "link", "set", "pdh-s", "up"],
    ["ip", "-n", C, "link", "set", "pdh-c", "up"],
    ["ip", "-n", S, "link", "set", "lo", "up"],
    ["ip", "-n", C, "link", "set", "lo", "up"],
  ]) {
    const r = sh(cmd[0]!, cmd.slice(1));
    if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.err}`);
  }
  // State (leases, dnsmasq's lease file) in memory by default; DHCP_STATE_DIR=/var/tmp puts it on a disk, where
  // the fsync before each ACK costs something.
  const work = join(process.env.DHCP_STATE_DIR ?? "/dev/shm", `netboot-bench-dhcp-${process.pid}`);
  mkdirSync(work, { recursive: true });
  // The lab's hosts, and the same MACs for perfdhcp to pick from.
  const macs = Array.from({ length: CLIENTS }, (_, i) => `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, "0")).join(":")}`);
  const lab = join(work, "lab.yaml");
  writeFileSync(lab, `images:\n  esxi: ${data.iso}\nhosts:\n${macs.map((m) => `  - { mac: "${m}" }`).join("\n")}\n`);
  const macList = join(work, "macs.txt");
  writeFileSync(macList, macs.join("\n") + "\n");
  let db = 0;
  const netboot = (run: string, store: string[]) => [bun, join(repo, "src/main.ts"), "serve", "--config", lab, "--iface", "pdh-s", "--dhcp", "server", "--force", "--pool", "198.18.1.0-198.18.255.254", "--state-dir", run, "--no-tftp", "--http-port", "8080", "-q", ...store];
  const marks: Record<string, number[]> = {};
  const servers: Record<string, (run: string) => string[]> = {
    "netboot (file store)": (run) => netboot(run, []),
    "netboot (PostgreSQL)": (run) => netboot(run, ["--store", pg.createDb(`bench${++db}`)]),
    dnsmasq: (run) => ["dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=pdh-s", "--bind-interfaces", "--dhcp-range=198.18.1.0,198.18.255.254,255.255.0.0,1h", "--dhcp-lease-max=200000", "--dhcp-authoritative", "--no-ping", `--dhcp-leasefile=${run}/dnsmasq.leases`, `--log-facility=${run}/dnsmasq.log`, "--user=root", "--group=root"],
  };
  const pxe = Buffer.from("PXEClient:Arch:00007:UNDI:003016").toString("hex");
  const values: Record<string, Record<string, number[]>> = {};
  const put = (k: string, name: string, v: number) => ((values[k] ??= {})[name] ??= []).push(v);
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const [name, argv] of Object.entries(servers)) {
        const run = join(work, `${name}-${i}`);
        rmSync(run, { recursive: true, force: true });
        mkdirSync(run, { recursive: true });
        const srv = new Server(name, ["ip", "netns", "exec", S, ...argv(run)], { cpus: process.env.SERVER_CPUS ?? "0", log: join(run, "stdout") });
        try {
          for (let t = 0; t < 100 && !ns(S, ["ss", "-Hlun", "sport = :67"]).out.trim(); t++) await Bun.sleep(100);
          // netboot binds its ports before it opens its state, and answers once it has: wait for that.
          if (name.startsWith("netboot")) for (let t = 0; t < 300 && ns(S, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", "http://198.18.0.1:8080/api/status"]).out !== "200"; t++) await Bun.sleep(100);
          for (const rate of RATES) {
            const out = ns(C, ["timeout", String(SECONDS + 15), "taskset", "-c", process.env.CLIENT_CPUS ?? "1", "perfdhcp", "-4", "-l", "pdh-c", "-o", `60,${pxe}`, "-r", String(rate), "-p", String(SECONDS), "-M", macList, "-W", "300000"]).out;
            const stat = parsePerfdhcp(out, SECONDS);
            put(`${rate} achieved`, name, stat.rate);
            put(`${rate} dropsDO`, name, stat.dropsDo);
            put(`${rate} dropsRA`, name, stat.dropsRa);
            put(`${rate} latDO`, name, stat.latDo);
            put(`${rate} latRA`, name, stat.latRa);
            console.error(`[dhcp] run ${i + 1}/${RUNS} ${name} @${rate}/s: ${stat.rate.toFixed(1)} DORA/s, drops ${stat.dropsDo}%/${stat.dropsRa}%, latency ${stat.latDo}/${stat.latRa} ms`);
          }
        } finally {
          await srv.stop();
        }
        // How many hosts the store marked offered while DHCP answered (what was written on the way).
        if (name.startsWith("netboot (file")) (marks[name] ??= []).push(countMarks(readFileSync(join(run, "hosts.json"), "utf8")));
        if (name.startsWith("netboot (Post")) (marks[name] ??= []).push(Number(pg.psql(`bench${db}`, "select count(*) from netboot_hosts where record->>'phase' = 'offered'").trim()));
      }
    }
  } finally {
    cleanup();
    rmSync(work, { recursive: true, force: true });
    pg.stop();
  }
  const rows: Row[] = [];
  for (const rate of RATES) {
    rows.push({ test: `offered ${rate}/s: completed DORA`, unit: "/s", values: values[`${rate} achieved`]! });
    rows.push({ test: `offered ${rate}/s: DISCOVER drops`, unit: "% (lower is better)", values: values[`${rate} dropsDO`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: REQUEST drops`, unit: "% (lower is better)", values: values[`${rate} dropsRA`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: DISCOVER→OFFER latency`, unit: "ms (lower is better)", values: values[`${rate} latDO`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: REQUEST→ACK latency`, unit: "ms (lower is better)", values: values[`${rate} latRA`]!, lowerIsBetter: true });
  }
  const written = Object.entries(marks).map(([n, xs]) => `${n}: ${xs.join(", ")}`).join("; ");
  report("dhcp", `### DHCP (perfdhcp, ${CLIENTS} listed hosts, ${SECONDS} s per rate, median (min–max) of ${RUNS} fresh starts; server CPU 0, perfdhcp CPU 1, PostgreSQL ${pgCpus === "none" ? "unpinned" : `CPU ${pgCpus}`})\n\n` + table(rows, Object.keys(servers), "netboot (file store)") + `\n\nHosts marked offered in the store per run (both rates): ${written}\n`);
}

/** Hosts the file store holds as offered once the server stopped (its journal is folded into hosts.json then). */
function countMarks(snapshot: string): number {
  const hosts = (JSON.parse(snapshot) as { hosts: Record<string, { phase?: string }> }).hosts;
  return Object.values(hosts).filter((h) => h.phase === "offered").length;
}
/** perfdhcp's statistics: completed exchanges per second of test time (its own "Rate:" also counts -W). */
export function parsePerfdhcp(out: string, seconds: number): { rate: number; dropsDo: number; dropsRa: number; latDo: number; latRa: number } {
  let section = "";
  const rx: Record<string, number> = {};
  const drops: Record<string, number> = {};
  const lat: Record<string, number> = {};
  for (const line of out.split("\n")) {
    if (line.includes("Statistics for: DISCOVER-OFFER")) section = "do";
    if (line.includes("Statistics for: REQUEST-ACK")) section = "ra";
    let m = /^received packets: (\d+)/.exec(line);
    if (m) rx[section] = Number(m[1]);
    m = /^drops ratio: ([\d.]+)/.exec(line);
    if (m) drops[section] = Number(m[1]);
    m = /^avg delay: ([\d.]+)/.exec(line);
    if (m) lat[section] = Number(m[1]);
  }
  return { rate: (rx.ra ?? 0) / seconds, dropsDo: drops.do ?? 100, dropsRa: drops.ra ?? 100, latDo: lat.do ?? NaN, latRa: lat.ra ?? NaN };
}
