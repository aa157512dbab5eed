/**
 * BIOS route: SeaBIOS + QEMU's iPXE ROM sanbooting a 400 MB ESXi-shaped ISO over HTTP (ISOLINUX 6.04 →
 * syslinux's mboot.c32 → the Multiboot test kernel of test/e2e, which checks every module), from netboot
 * (the disc image with BOOT.CFG rewritten per client) against the seed recipe's way with sanboot: dnsmasq
 * for DHCP and nginx serving the same ISO and a boot.ipxe that sanboots it, in the same run, on a test LAN
 * in network namespaces made here. iPXE's SAN reads are synchronous 64 KiB GETs, so the server's latency
 * per request is what the time is made of. Figures: seconds from QEMU's start to the kernel's last line,
 * range requests, and the server's CPU seconds (utime + stime from /proc). Env: BIOS_RUNS (1),
 * BIOS_MB (400).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fnv1a } from "../../src/files/tree.ts";
import { buildGuests, parseModules, syslinuxFiles } from "../../test/e2e/guest.ts";
import { bootFirmware } from "../../test/e2e/qemu.ts";
import { createLan } from "../../test/helpers/lan.ts";
import { Server, benchDir, bun, fillPseudoRandom, need, repo, report, sh, table, type Row } from "./lib.ts";

const RUNS = Number(process.env.BIOS_RUNS ?? 1);
const MB = Number(process.env.BIOS_MB ?? 400);
const MODULES = 8;

export async function benchBios(): Promise<void> {
  need(["qemu-system-x86_64", "nginx", "dnsmasq", "xorriso", "ip", "gcc", "sbsign"]);
  const dir = join(benchDir, "bios");
  const tree = join(dir, "tree");
  mkdirSync(tree, { recursive: true });
  const guests = buildGuests();
  const sys = syslinuxFiles();
  const names = Array.from({ length: MODULES }, (_, i) => `M${i}.V00`);
  const each = Math.floor((MB * 1e6) / MODULES);
  names.forEach((n, i) => fillPseudoRandom(join(tree, n), each, 1000 + i));
  writeFileSync(join(tree, "B.B00"), readFileSync(guests.kernel));
  for (const [name, src] of Object.entries(sys)) writeFileSync(join(tree, name), readFileSync(src));
  const mods = names.map((n) => `/${n.toLowerCase()}`);
  writeFileSync(join(tree, "BOOT.CFG"), ["bootstate=0", "title=Loading ESXi installer", "prefix=", "kernel=/b.b00", "kernelopt=runweasel cdromBoot", `modules=${mods.join(" --- ")}`, "build=8.0.2-0.0.22380479", ""].join("\n"));
  writeFileSync(join(tree, "ISOLINUX.CFG"), `DEFAULT netboot\nPROMPT 0\nTIMEOUT 1\nLABEL netboot\n  KERNEL mboot.c32\n  APPEND /b.b00 runweasel --- /boot.cfg --- ${mods.join(" --- ")}\n`);
  const iso = join(dir, "esxi-bios.iso");
  if (!existsSync(iso)) {
    const r = sh("xorriso", ["-as", "mkisofs", "--norock", "-V", "ESXI-BENCH", "-b", "ISOLINUX.BIN", "-c", "BOOT.CAT", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-o", iso, tree]);
    if (r.code !== 0) throw new Error(`xorriso: ${r.err}`);
  }
  const want = names.map((n) => {
    const b = readFileSync(join(tree, n));
    return { size: b.length, fnv: fnv1a(b) };
  });
  const isoMB = readFileSync(iso).length / 1e6;
  console.error(`[bios] ${iso}: ${isoMB.toFixed(0)} MB, ${MODULES} modules of ${(each / 1e6).toFixed(0)} MB`);

  const seconds: Record<string, number[]> = { netboot: [], "dnsmasq+nginx": [] };
  const requests: Record<string, number[]> = { netboot: [], "dnsmasq+nginx": [] };
  const cpu: Record<string, number[]> = { netboot: [], "dnsmasq+nginx": [] };
  for (let run = 0; run < RUNS; run++) {
    for (const name of ["netboot", "dnsmasq+nginx"] as const) {
      const lan = createLan(240 + run, [{ name: "srv" }], ["tap0"]);
      const work = join(dir, `${name.replace("+", "-")}-${run}`);
      mkdirSync(work, { recursive: true });
      const servers: Server[] = [];
      const ns = lan.nodes.srv!.ns;
      const ip = lan.nodes.srv!.ip;
      try {
        if (name === "netboot") {
          servers.push(new Server("netboot", ["ip", "netns", "exec", ns, bun, join(repo, "src/main.ts"), "serve", iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--force", "--state-dir", work, "--no-bsdp"], { log: join(work, "netboot.log") }));
          await waitFor(() => readText(join(work, "netboot.log")).includes("ready:"), 30_000, "netboot ready");
        } else {
          const www = join(work, "www");
          mkdirSync(www, { recursive: true });
          sh("ln", ["-sf", iso, join(www, "esxi.iso")]);
          writeFileSync(join(www, "boot.ipxe"), `#!ipxe\nsanboot --no-describe http://${ip}/esxi.iso\n`);
          writeFileSync(join(work, "nginx.conf"), `user root;\nworker_processes 1;\npid ${work}/nginx.pid;\nerror_log ${work}/error.log warn;\nevents { worker_connections 1024; }\nhttp { access_log ${work}/access.log; sendfile on; tcp_nodelay on; default_type application/octet-stream; client_body_temp_path ${work}; proxy_temp_path ${work}; fastcgi_temp_path ${work}; uwsgi_temp_path ${work}; scgi_temp_path ${work}; server { listen ${ip}:80; root ${www}; } }\n`);
          servers.push(new Server("nginx", ["ip", "netns", "exec", ns, "nginx", "-c", join(work, "nginx.conf"), "-g", "daemon off;"]));
          servers.push(new Server("dnsmasq", ["ip", "netns", "exec", ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces", `--dhcp-range=10.${240 + run}.0.100,10.${240 + run}.0.200,1h`, "--no-ping", "--dhcp-userclass=set:ipxe,iPXE", `--dhcp-boot=tag:ipxe,http://${ip}/boot.ipxe`, `--dhcp-leasefile=${work}/leases`, "--user=root", "--group=root"]));
          await Bun.sleep(1000);
        }
        const q = bootFirmware("bios", lan.switchNs, "tap0", { memoryMiB: 1024 + MB * 2 });
        try {
          await waitFor(() => /NETBOOT-TEST-KERNEL-DONE/.test(q.serial()), 900_000, "the test kernel");
          const t = (performance.now() - q.started) / 1000;
          const got = parseModules(q.serial()).slice(1);
          const ok = got.length === MODULES && got.every((m, i) => m.size === want[i]!.size && m.fnv === want[i]!.fnv);
          if (!ok) throw new Error(`${name}: the kernel did not get every module byte-exact:\n${q.serial().slice(-3000)}`);
          seconds[name]!.push(t);
          const reqs = name === "netboot" ? countLines(readText(join(work, "netboot.log")), /\.iso" 206 /) : countLines(readText(join(work, "access.log")), /\.iso HTTP\/1\.1" 206 /);
          requests[name]!.push(reqs);
          cpu[name]!.push(servers.reduce((n, s) => n + cpuSeconds(s.proc.pid), 0));
          console.error(`[bios] run ${run + 1}/${RUNS} ${name}: ${t.toFixed(1)} s to the kernel, ${reqs} range requests, every module byte-exact`);
        } finally {
          await q.stop();
        }
      } finally {
        for (const s of servers.reverse()) await s.stop();
        lan.destroy();
      }
    }
  }
  const rows: Row[] = [
    { test: `BIOS sanboot of a ${isoMB.toFixed(0)} MB ISO to the test kernel`, unit: "s", values: seconds, lowerIsBetter: true },
    { test: "range requests (≤ 64 KiB each)", unit: "count", values: requests, lowerIsBetter: true },
    { test: "server CPU (utime + stime, all its processes)", unit: "s", values: cpu, lowerIsBetter: true },
  ];
  report("bios", `### BIOS route under QEMU (TCG), SeaBIOS + iPXE ROM sanboot (median (min–max) of ${RUNS} run(s))\n\n` + table(rows, ["netboot", "dnsmasq+nginx"]));
}

/** Lines matching `re`; the logger folds identical lines into one "(repeated N times)", which count N. */
function countLines(text: string, re: RegExp): number {
  let n = 0;
  for (const line of text.split("\n")) {
    if (!re.test(line)) continue;
    n += Number(/\(repeated (\d+) times\)/.exec(line)?.[1] ?? 1);
  }
  return n;
}

function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}

/** CPU seconds of a process and its children that were waited for (/proc/PID/stat fields 14-17). */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  let total = 0;
  const visit = (p: number) => {
    const stat = readText(`/proc/${p}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
    for (const c of readText(`/proc/${p}/task/${p}/children`).trim().split(/\s+/).filter(Boolean)) visit(Number(c));
  };
  visit(pid);
  return total;
}
