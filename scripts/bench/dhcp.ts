/**
 * DHCP: DORA exchanges per second with perfdhcp (Debian's kea-admin package), netboot in `server` mode
 * against dnsmasq in the same run, each started fresh per run in a namespace pair made here (addresses from
 * 198.18.0.0/15, the RFC 2544 benchmarking range, which exist only inside the two namespaces). Offered
 * rates 500/s (latency at normal load) and 5000/s (overload: capacity); 60 000 simulated clients, so nearly
 * every exchange is a first allocation (a lease written to disk). Server on CPU 0, perfdhcp on CPU 1.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Server, bun, need, repo, report, sh, table, testData, type Row } from "./lib.ts";

const SECONDS = Number(process.env.DHCP_SECONDS ?? 5);
const CLIENTS = Number(process.env.DHCP_CLIENTS ?? 60000);
const RATES = [Number(process.env.DHCP_RATE_LOW ?? 500), Number(process.env.DHCP_RATE_HIGH ?? 5000)];
const RUNS = Number(process.env.DHCP_RUNS ?? process.env.RUNS ?? 3);

export async function benchDhcp(): Promise<void> {
  need(["perfdhcp", "dnsmasq", "ip", "taskset", "ss"]);
  const data = testData();
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
  const servers: Record<string, (run: string) => string[]> = {
    netboot: (run) => [bun, join(repo, "src/main.ts"), "serve", data.iso, "--iface", "pdh-s", "--dhcp", "server", "--force", "--pool", "198.18.1.0-198.18.255.254", "--state-dir", run, "--no-tftp", "--http-port", "8080", "-q"],
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
          for (const rate of RATES) {
            const out = ns(C, ["timeout", String(SECONDS + 15), "taskset", "-c", process.env.CLIENT_CPUS ?? "1", "perfdhcp", "-4", "-l", "pdh-c", "-o", `60,${pxe}`, "-r", String(rate), "-p", String(SECONDS), "-R", String(CLIENTS), "-W", "300000"]).out;
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
      }
    }
  } finally {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
  const rows: Row[] = [];
  for (const rate of RATES) {
    rows.push({ test: `offered ${rate}/s: completed DORA`, unit: "/s", values: values[`${rate} achieved`]! });
    rows.push({ test: `offered ${rate}/s: DISCOVER drops`, unit: "% (lower is better)", values: values[`${rate} dropsDO`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: REQUEST drops`, unit: "% (lower is better)", values: values[`${rate} dropsRA`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: DISCOVER→OFFER latency`, unit: "ms (lower is better)", values: values[`${rate} latDO`]!, lowerIsBetter: true });
    rows.push({ test: `offered ${rate}/s: REQUEST→ACK latency`, unit: "ms (lower is better)", values: values[`${rate} latRA`]!, lowerIsBetter: true });
  }
  report("dhcp", `### DHCP (perfdhcp, ${CLIENTS} clients, ${SECONDS} s per rate, median (min–max) of ${RUNS} fresh starts; server CPU 0, perfdhcp CPU 1)\n\n` + table(rows, ["netboot", "dnsmasq"]));
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
