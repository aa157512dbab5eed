/**
 * TFTP: the 256 MiB file on loopback, netboot reading it from inside an ISO against tftpd-hpa, atftpd and
 * dnsmasq serving the extracted file, in the same run, servers and clients on the same CPU (lock-step TFTP
 * across two vCPUs measures the hypervisor's wake-up latency, not the server); TFTP_CLIENT_CPUS puts the
 * clients elsewhere (every server thread stays on TFTP_CPUS: `taskset -p` on a running netboot moves only
 * its main thread, and its TFTP worker then shares the client's CPU). The report says which engine served
 * netboot's transfers (NETBOOT_TFTP_ENGINE=event-loop picks the other one).
 * Cases: blksize 512 and 1468 lock-step, 1468 with windowsize 8 and 32, and 8 and 32 parallel 1 MiB
 * downloads. Every download is checked byte for byte.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Server, benchDir, bun, median, need, repo, report, runs, sh, table, testData, type Row } from "./lib.ts";

const CPU = process.env.TFTP_CPUS ?? "1";
const CLIENT_CPU = process.env.TFTP_CLIENT_CPUS ?? CPU;

interface Target {
  name: string;
  host: string;
  prefix: string;
  start(): Server;
}

function atftpd(): string {
  const bin = join(benchDir, "atftpd", "usr", "sbin", "atftpd");
  if (existsSync(bin)) return bin;
  // The atftpd package conflicts with tftpd-hpa, so its binary is unpacked next to the test data.
  const tmp = join(benchDir, "atftpd-deb");
  mkdirSync(tmp, { recursive: true });
  const dl = sh("sh", ["-c", `cd ${tmp} && apt-get download atftpd && dpkg -x atftpd_*.deb ${join(benchDir, "atftpd")}`]);
  if (dl.code !== 0 || !existsSync(bin)) throw new Error(`could not unpack atftpd: ${dl.err}`);
  return bin;
}

export async function benchTftp(): Promise<void> {
  need(["in.tftpd", "dnsmasq", "tftp", "atftp", "curl", "taskset", "xorriso", "apt-get", "dpkg"]);
  const data = testData();
  const out = "/dev/shm/netboot-bench-tftp";
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const md5 = (p: string) => createHash("md5").update(readFileSync(p)).digest("hex");
  const bigMd5 = md5(join(data.tree, "BIG.BIN"));
  const smallMd5 = md5(join(data.tree, "SMALL.BIN"));
  const atftpdBin = atftpd();

  const targets: Target[] = [
    { name: "netboot", host: "127.0.0.9", prefix: "test/", start: () => new Server("netboot", [bun, join(repo, "src/main.ts"), "serve", data.iso, "--ip", "127.0.0.9", "--http-port", "8089", "--name", "test", "--dhcp", "off"], { cpus: CPU, log: join(benchDir, "netboot-tftp.log") }) },
    { name: "tftpd-hpa", host: "127.0.0.2", prefix: "", start: () => new Server("tftpd-hpa", ["in.tftpd", "-L", "-a", "127.0.0.2:69", "-s", "-u", "nobody", data.tree], { cpus: CPU }) },
    { name: "atftpd", host: "127.0.0.3", prefix: "", start: () => new Server("atftpd", [atftpdBin, "--daemon", "--no-fork", "--bind-address", "127.0.0.3", "--port", "69", "--user", "nobody.nogroup", "--logfile", "/dev/null", "--maxthread", "200", data.tree], { cpus: CPU }) },
    {
      name: "dnsmasq",
      host: "127.0.0.4",
      prefix: "",
      start: () =>
        new Server("dnsmasq", ["dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--listen-address=127.0.0.4", "--bind-interfaces", "--enable-tftp", `--tftp-root=${data.tree}`, "--tftp-max=200", "--user=nobody", `--pid-file=${join(benchDir, "dnsmasq.pid")}`, "--log-facility=/dev/null"], { cpus: CPU }),
    },
  ];

  const servers = targets.map((t) => t.start());
  try {
    await Bun.sleep(1500);
    // case name → client command for one download of `remote` into `local`
    const cases: Array<[string, (host: string, remote: string, local: string) => string[]]> = [
      ["hpa-512 (lock-step)", (h, r, l) => ["tftp", h, "69", "-m", "binary", "-c", "get", r, l]],
      ["atftp-1468 (lock-step)", (h, r, l) => ["atftp", "--option", "blksize 1468", "-g", "-r", r, "-l", l, h, "69"]],
      ["atftp-1468-w8", (h, r, l) => ["atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r", r, "-l", l, h, "69"]],
      ["atftp-1468-w32", (h, r, l) => ["atftp", "--option", "blksize 1468", "--option", "windowsize 32", "-g", "-r", r, "-l", l, h, "69"]],
    ];
    const rows: Row[] = [];
    for (const [name, argv] of cases) {
      const values: Record<string, number[]> = {};
      for (let i = 0; i < runs; i++) {
        for (const t of targets) {
          const local = join(out, "big");
          rmSync(local, { force: true });
          const t0 = performance.now();
          const r = sh("timeout", ["300", ...argv(t.host, `${t.prefix}BIG.BIN`, local)], { cpus: CLIENT_CPU });
          const s = (performance.now() - t0) / 1000;
          const ok = r.code === 0 && existsSync(local) && md5(local) === bigMd5;
          if (ok) (values[t.name] ??= []).push(data.big / 1e6 / s);
          console.error(`[tftp] ${name} run ${i + 1}/${runs} ${t.name}: ${ok ? `${(data.big / 1e6 / s).toFixed(1)} MB/s` : `FAILED (rc ${r.code})`}`);
        }
      }
      rows.push({ test: `256 MiB ${name}`, unit: "MB/s", values });
    }
    for (const n of [8, 32]) {
      for (const [name, argv] of cases.slice(0, 2)) {
        const values: Record<string, number[]> = {};
        for (let i = 0; i < runs; i++) {
          for (const t of targets) {
            const t0 = performance.now();
            const procs = Array.from({ length: n }, (_, j) => {
              const a = argv(t.host, `${t.prefix}SMALL.BIN`, join(out, `s${j}`));
              return Bun.spawn(["taskset", "-c", CLIENT_CPU, ...a], { stdout: "ignore", stderr: "ignore" });
            });
            const codes = await Promise.all(procs.map((p) => p.exited));
            const s = (performance.now() - t0) / 1000;
            const ok = codes.every((c) => c === 0) && Array.from({ length: n }, (_, j) => md5(join(out, `s${j}`)) === smallMd5).every(Boolean);
            if (ok) (values[t.name] ??= []).push(s);
            console.error(`[tftp] ${n}x1MiB ${name} run ${i + 1}/${runs} ${t.name}: ${ok ? `${s.toFixed(3)} s` : "FAILED"}`);
          }
        }
        rows.push({ test: `${n} x 1 MiB parallel, ${name}`, unit: "s (lower is better)", values, lowerIsBetter: true });
      }
    }
    const lock = rows.find((r) => r.test.includes("atftp-1468 (lock-step)"));
    const w8 = rows.find((r) => r.test.includes("w8"));
    const own = lock && w8 ? median(w8.values.netboot ?? []) / median(lock.values.netboot ?? []) : NaN;
    report(
      "tftp",
      `### TFTP (median (min–max) of ${runs} runs; servers on CPU ${CPU}, clients on CPU ${CLIENT_CPU}; netboot's engine: ${/TFTP on \S+ \((.*)\)$/m.exec(readFileSync(join(benchDir, "netboot-tftp.log"), "utf8"))?.[1] ?? "?"}; netboot reads from inside an ISO, the peers the extracted file)\n\n` +
        table(rows, ["netboot", "tftpd-hpa", "atftpd", "dnsmasq"]) +
        `\n\nnetboot windowsize 8 vs its own lock-step at 1468: ${own.toFixed(2)}×`,
    );
  } finally {
    for (const s of servers) await s.stop();
    rmSync(out, { recursive: true, force: true });
  }
}
