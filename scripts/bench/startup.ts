/**
 * Start-up to serving: from exec to the first HTTP 200 of a file of the image, for the compiled executable
 * (dist/, built when missing), from source under Bun and the Node bundle; nginx's exec to its first 200
 * beside them, in the same run; for the sample image, a 256 MB ISO (bytes) and an ISO of 4,000 files in 400
 * directories (directories: start-up reads every one), that one also from a URL (nginx on loopback).
 * Also the executable's size and what it holds beyond the Bun runtime.
 */

/** 400 directories of 10 small files each, plus SMALL.BIN at the root, as an ISO (Rock Ridge, Joliet). */
function manyFilesIso(smallBin: string): string {
  const iso = join(benchDir, "many", "many.iso");
  if (existsSync(iso)) return iso;
  const tree = join(benchDir, "many-tree");
  for (let d = 0; d < 400; d++) {
    const dir = join(tree, `d${String(d).padStart(3, "0")}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 10; f++) writeFileSync(join(dir, `file-${f}.b00`), `${d}/${f}\n`.repeat(20));
  }
  copyFileSync(smallBin, join(tree, "SMALL.BIN"));
  mkdirSync(join(benchDir, "many"), { recursive: true });
  const r = sh("xorriso", ["-as", "mkisofs", "-quiet", "-R", "-J", "-o", iso, tree]);
  if (r.code !== 0) throw new Error(`xorriso: ${r.err}`);
  return iso;
}
import { copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Server, benchDir, bun, nginxConf, repo, report, runs, sh, table, testData, waitTcp, type Row } from "./lib.ts";

const host = `${process.platform === "darwin" ? "darwin" : "linux"}-${process.arch === "arm64" ? "arm64" : "x64"}`;

async function timeToServe(argv: string[], url: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "ignore" });
  try {
    for (;;) {
      if (p.exitCode !== null) throw new Error(`${argv.join(" ")} exited ${p.exitCode}`);
      const ok = await fetch(url).then((r) => r.arrayBuffer().then(() => r.status === 200), () => false);
      if (ok) return performance.now() - t0;
      await Bun.sleep(1);
    }
  } finally {
    p.kill("SIGTERM");
    await p.exited;
  }
}

export async function benchStartup(): Promise<void> {
  const exe = join(repo, "dist", `netboot-${host}`);
  if (!existsSync(exe) || !existsSync(join(repo, "dist/node/main.js"))) sh(bun, [join(repo, "scripts/build.ts"), "--host"]);
  const { iso, tree } = testData();
  const many = manyFilesIso(join(tree, "SMALL.BIN"));
  // The same ISO by URL, from nginx (ranges) on loopback.
  const urlPort = 18099;
  const urlServer = new Server("nginx", ["nginx", "-c", nginxConf(join(benchDir, "startup-url-nginx"), join(benchDir, "many"), urlPort, 1), "-g", "daemon off;"]);
  await waitTcp("127.0.0.1", urlPort);
  const sample = join(repo, "scripts/sample-esxi.iso");
  const state = join(benchDir, "startup-state");
  mkdirSync(state, { recursive: true });
  const rows: Row[] = [];
  let port = 18100;
  const images = [
    ["sample image (450 KB, 13 modules)", sample, "s/boot.cfg"],
    ["256 MB ISO", iso, "test/SMALL.BIN"],
    ["4,000 files in 400 directories", many, "many/SMALL.BIN"],
    ["4,000 files in 400 directories, by URL", `http://127.0.0.1:${urlPort}/many.iso`, "many/SMALL.BIN"],
  ] as const;
  try {
  for (const [label, image, file] of images) {
    const values: Record<string, number[]> = { netboot: [], "from source": [], "node bundle": [], nginx: [] };
    for (let i = 0; i < runs; i++) {
      for (const [k, argv] of [
        ["netboot", [exe]],
        ["from source", [bun, join(repo, "src/main.ts")]],
        ["node bundle", ["node", join(repo, "dist/node/main.js")]],
      ] as const) {
        const p = port++;
        values[k]!.push(await timeToServe([...argv, "serve", image, "--name", file.split("/")[0]!, "--ip", "127.0.0.1", "--http-port", String(p), "--tftp-port", String(p + 1000), "--dhcp", "off", "--state-dir", state], `http://127.0.0.1:${p}/${file}`));
      }
      const p = port++;
      const dir = join(benchDir, `startup-nginx-${p}`);
      const conf = nginxConf(dir, join(benchDir, "tree"), p, 1);
      values.nginx!.push(await timeToServe(["nginx", "-c", conf, "-g", "daemon off;"], `http://127.0.0.1:${p}/SMALL.BIN`));
    }
    rows.push({ test: `exec to first 200, ${label}`, unit: "ms", values, lowerIsBetter: true });
  }
  } finally {
    await urlServer.stop();
  }
  const runtime = statSync(join(repo, "node_modules/bun/bin/bun.exe")).size;
  const size = statSync(exe).size;
  report(
    "startup",
    [
      `## Start-up to serving (median of ${runs}; nginx serves the same SMALL.BIN from the extracted tree)`,
      "",
      table(rows, ["netboot", "from source", "node bundle", "nginx"]),
      "",
      `dist/netboot-${host}: ${(size / 1e6).toFixed(2)} MB; the Bun ${Bun.version} runtime alone ${(runtime / 1e6).toFixed(2)} MB; beyond it ${((size - runtime) / 1e6).toFixed(2)} MB (program, iPXE, sample image, and Bun's alignment of its payload past .bss)`,
    ].join("\n"),
  );
}
