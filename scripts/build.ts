#!/usr/bin/env bun
/**
 * Builds the shipped artifacts into dist/:
 *   dist/netboot-linux-x64, -linux-arm64, -darwin-x64, -darwin-arm64   single executables (bun build --compile;
 *                                                                        Bun fetches each target's runtime from npm)
 *   dist/node/main.js                                                   a bundle for Node 20+ (`node dist/node/main.js`)
 *
 *   bun scripts/build.ts [--host] [--targets linux-x64,darwin-arm64] [--no-node]
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");
const all = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"];
const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const value = (f: string) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1] : undefined;
};
const host = `${process.platform === "darwin" ? "darwin" : "linux"}-${process.arch === "arm64" ? "arm64" : "x64"}`;
const targets = flag("--host") ? [host] : (value("--targets")?.split(",") ?? all);
for (const t of targets) if (!all.includes(t)) throw new Error(`unknown target ${t} (known: ${all.join(", ")})`);

mkdirSync(dist, { recursive: true });
const bun = process.execPath;

function run(args: string[]): void {
  console.log(`$ bun ${args.join(" ")}`);
  const r = spawnSync(bun, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

for (const t of targets) {
  const out = join(dist, `netboot-${t}`);
  // The TFTP worker thread is a second entry point (Bun bundles workers only when listed).
  run(["build", "--compile", "--minify-syntax", `--target=bun-${t}`, "src/main.ts", "src/tftp/ffi-worker.ts", "--outfile", out]);
  console.log(`  ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB)`);
}

if (!flag("--no-node")) {
  rmSync(join(dist, "node"), { recursive: true, force: true });
  // bun:ffi is only imported under Bun (the TFTP worker engine); Node uses the event-loop engine.
  // --splitting keeps dynamically imported modules in their own chunks, so that one is never loaded by node.
  run(["build", "--target=node", "--format=esm", "--splitting", "--external", "bun:ffi", "src/main.ts", "--outdir", join(dist, "node"), "--asset-naming=[name].[ext]", "--chunk-naming=chunks/[name]-[hash].[ext]"]);
  // The entry's "#!/usr/bin/env bun" line is for running from source; the bundle is for node.
  const main = join(dist, "node", "main.js");
  writeFileSync(main, readFileSync(main, "utf8").replace(/^#!.*\n(\/\/ @bun\n)?/, "#!/usr/bin/env node\n"));
  chmodSync(main, 0o755);
  console.log(`  ${main} (node >= 20)`);
}
