/**
 * HTTP: netboot serving a 256 MiB file from inside an ISO against nginx (sendfile on) serving the same file
 * extracted, on loopback, in the same run. Single stream (curl) and 16 connections (wrk) on the 1 MiB file.
 * Server on CPU 0, client on CPU 1, and the single stream again with the client
 * unpinned; the peers alternate run by run. Loopback MB/s on a shared machine swings with the neighbours,
 * so each run also reads the server's CPU time (user + system of its whole process group, /proc/<pid>/stat)
 * around the transfer: CPU seconds per GiB served, which does not. A single-stream figure is the median
 * of four 256 MiB downloads on one connection.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Server, benchDir, bun, groupCpuSeconds, nginxConf, clientCpus, need, repo, report, runs, serverCpus, sh, table, testData, waitTcp, type Row } from "./lib.ts";

export async function benchHttp(): Promise<void> {
  need(["nginx", "curl", "wrk", "xorriso", "taskset"]);
  const data = testData();
  const wrkSeconds = Number(process.env.WRK_SECONDS ?? 5);
  const conns = Number(process.env.WRK_CONNS ?? 16);

  const ngxDir = join(benchDir, "nginx");
  const ngxConf = nginxConf(ngxDir, data.tree, 8081);
  const targets = {
    nginx: { base: "http://127.0.0.1:8081", start: () => new Server("nginx", ["nginx", "-c", ngxConf, "-g", "daemon off;"], { cpus: serverCpus }), host: "127.0.0.1", port: 8081 },
    netboot: {
      base: "http://127.0.0.9:8089/test",
      start: () =>
        new Server("netboot", [bun, join(repo, "src/main.ts"), "serve", data.iso, "--ip", "127.0.0.9", "--http-port", "8089", "--name", "test", "--dhcp", "off", "-q"], {
          cpus: serverCpus,
          log: join(benchDir, "netboot-http.log"),
        }),
      host: "127.0.0.9",
      port: 8089,
    },
  };
  const bigMd5 = createHash("md5").update(readFileSync(join(data.tree, "BIG.BIN"))).digest("hex");

  const single: Record<string, number[]> = { nginx: [], netboot: [] };
  const singleFree: Record<string, number[]> = { nginx: [], netboot: [] };
  const cpuSingle: Record<string, number[]> = { nginx: [], netboot: [] };
  const cpuWrk: Record<string, number[]> = { nginx: [], netboot: [] };
  const GiB = 1024 ** 3;
  const reqs: Record<string, number[]> = { nginx: [], netboot: [] };
  const mbs: Record<string, number[]> = { nginx: [], netboot: [] };
  for (const [name, t] of Object.entries(targets)) {
    const s = t.start();
    try {
      await waitTcp(t.host, t.port);
      const check = sh("sh", ["-c", `curl -sf ${t.base}/BIG.BIN | md5sum`]);
      if (!check.out.startsWith(bigMd5)) throw new Error(`${name}: BIG.BIN md5 mismatch (${check.out.trim()})`);
      console.error(`[http] ${name}: BIG.BIN md5 ok`);
    } finally {
      await s.stop();
    }
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, t] of Object.entries(targets)) {
      const s = t.start();
      try {
        await waitTcp(t.host, t.port);
        const pgid = s.proc.pid!;
        // Four downloads on one connection: 1 GiB, so the CPU time (read in 10 ms ticks) is ±3 %, not ±11 %.
        const curl = (cpus: string | undefined) => {
          const cpu0 = groupCpuSeconds(pgid);
          const args = [0, 1, 2, 3].flatMap(() => ["-o", "/dev/null", `${t.base}/BIG.BIN`]);
          const c = sh("curl", ["-s", "-w", "%{http_code} %{size_download} %{speed_download}\n", ...args], { cpus });
          const lines = c.out.trim().split("\n").map((l) => l.split(" "));
          const ok = lines.length === 4 && lines.every(([code, size]) => code === "200" && Number(size) === data.big);
          const speeds = lines.map((l) => Number(l[2]) / 1e6).sort((a, b) => a - b);
          return { ok, mbs: (speeds[1]! + speeds[2]!) / 2, cpuPerGiB: ((groupCpuSeconds(pgid) - cpu0) * GiB) / (4 * data.big) };
        };
        const pinned = curl(clientCpus);
        if (pinned.ok) {
          single[name]!.push(pinned.mbs);
          cpuSingle[name]!.push(pinned.cpuPerGiB);
        }
        const free = curl(undefined);
        if (free.ok) singleFree[name]!.push(free.mbs);
        const cpu0 = groupCpuSeconds(pgid);
        const w = sh("wrk", [`-t2`, `-c${conns}`, `-d${wrkSeconds}s`, `${t.base}/SMALL.BIN`], { cpus: clientCpus });
        const cpu = groupCpuSeconds(pgid) - cpu0;
        const rps = /Requests\/sec:\s+([\d.]+)/.exec(w.out)?.[1];
        const total = Number(/(\d+) requests in/.exec(w.out)?.[1] ?? 0);
        const errs = /Non-2xx|Socket errors/.test(w.out);
        if (rps && !errs) {
          reqs[name]!.push(Number(rps));
          mbs[name]!.push((Number(rps) * data.small) / 1e6);
          if (total) cpuWrk[name]!.push((cpu * GiB) / (total * data.small));
        }
        console.error(`[http] run ${i + 1}/${runs} ${name}: curl ${pinned.mbs.toFixed(0)} MB/s pinned (${pinned.cpuPerGiB.toFixed(3)} CPU s/GiB), ${free.mbs.toFixed(0)} MB/s unpinned; wrk ${rps ?? "fail"} req/s (${cpuWrk[name]!.at(-1)?.toFixed(3) ?? "-"} CPU s/GiB)`);
      } finally {
        await s.stop();
      }
    }
  }
  const rows: Row[] = [
    { test: "http-256MiB-curl (single stream), client pinned", unit: "MB/s", values: single },
    { test: "http-256MiB-curl (single stream), client unpinned", unit: "MB/s", values: singleFree },
    { test: "http-256MiB-curl: server CPU per GiB", unit: "CPU s/GiB", values: cpuSingle, lowerIsBetter: true },
    { test: `http-wrk-c${conns}-1MiB`, unit: "req/s", values: reqs },
    { test: `http-wrk-c${conns}-1MiB`, unit: "MB/s", values: mbs },
    { test: `http-wrk-c${conns}-1MiB: server CPU per GiB`, unit: "CPU s/GiB", values: cpuWrk, lowerIsBetter: true },
  ];
  report(
    "http",
    `### HTTP (median (min–max) of ${runs} runs; server CPU ${serverCpus}, client CPU ${clientCpus}; netboot reads from inside an ISO, nginx the extracted file)\n\n` +
      table(rows, ["netboot", "nginx"]),
  );
}
