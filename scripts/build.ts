#!/usr/bin/env bun
/**
 * Builds the shipped artifacts into dist/:
 *   dist/netboot-linux-x64, -linux-arm64, -darwin-x64, -darwin-arm64   single executables (Bun fetches each
 *                                                                        target's runtime from npm)
 *   dist/SHA256SUMS                                                     their checksums (sha256sum -c)
 *   dist/node/main.js                                                   a bundle for Node 20+
 * Debian's iPXE binaries (package `ipxe`: undionly.kpxe, snponly.efi, ipxe.efi) are embedded in both, never
 * committed, never built here; without them the build warns and netboot looks for them at run time.
 *
 *   bun scripts/build.ts [--host] [--targets linux-x64,darwin-arm64] [--no-node] [--ipxe-dir DIR]
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import type { BunPlugin } from "bun";
import { adhocSign, verifySignature } from "./macho-sign.ts";

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

// --- iPXE binaries, embedded through a build-time module (src/files/ipxe.ts imports it when present) ---
const ipxeDir = value("--ipxe-dir") ?? "/usr/lib/ipxe";
const ipxeFiles = ["undionly.kpxe", "snponly.efi", "ipxe.efi"].filter((f) => existsSync(join(ipxeDir, f)));
if (ipxeFiles.length < 3) {
  console.warn(`warning: only ${ipxeFiles.join(", ") || "no iPXE binaries"} in ${ipxeDir} (apt-get install ipxe); the build looks for the rest at run time`);
}
// Embedded gzipped (851 + 174 + 74 KB become 423 + 99 + 74 KB); files/ipxe.ts unpacks them at start.
const packed = join(dist, ".ipxe");
rmSync(packed, { recursive: true, force: true });
mkdirSync(packed, { recursive: true });
for (const f of ipxeFiles) writeFileSync(join(packed, `${f}.gz`), gzipSync(readFileSync(join(ipxeDir, f)), { level: 9 }));
const ipxePlugin: BunPlugin = {
  name: "netboot-embedded-ipxe",
  setup(build) {
    build.onResolve({ filter: /^netboot-embedded:ipxe$/ }, () => ({ path: "ipxe", namespace: "netboot-embedded" }));
    build.onLoad({ filter: /.*/, namespace: "netboot-embedded" }, () => ({
      loader: "js",
      contents:
        ipxeFiles.map((f, i) => `import f${i} from ${JSON.stringify(join(packed, `${f}.gz`))} with { type: "file" };`).join("\n") +
        `\nexport default { ${ipxeFiles.map((f, i) => `${JSON.stringify(f)}: f${i}`).join(", ")} };\n`,
    }));
  },
};

// undici is the URL client under Node only (files/url.ts loads it on demand): the executables, which use
// Bun's fetch, leave its ~540 KB of minified code out and say so if it is ever asked for.
const noUndiciPlugin: BunPlugin = {
  name: "netboot-no-undici",
  setup(build) {
    build.onResolve({ filter: /\/net\/undici\.ts$/ }, () => ({ path: "undici", namespace: "netboot-no-undici" }));
    build.onLoad({ filter: /.*/, namespace: "netboot-no-undici" }, () => ({
      loader: "js",
      contents: `import { ConfigError } from ${JSON.stringify(join(root, "src/errors.ts"))};
const no = () => { throw new ConfigError("E_ARG", "NETBOOT_URL_CLIENT=undici: this executable leaves undici out; its URL client is Bun's fetch (unset NETBOOT_URL_CLIENT)"); };
export class Agent { constructor() { no(); } }
export const request = no;
export const errors = {};
export const interceptors = { redirect: no };`,
    }));
  },
};

// What `netboot --version` says beyond the version (cli/version.ts).
const git = (args: string[]) => {
  try {
    return execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
};
const commit = (git(["rev-parse", "--short=12", "HEAD"]) || "unknown") + (git(["status", "--porcelain", "--untracked-files=no"]) ? "+dirty" : "");
const buildInfo = (artifact: string) => ({ NETBOOT_BUILD: JSON.stringify(JSON.stringify({ commit, date: new Date().toISOString().slice(0, 10), artifact })) });

async function check(result: Awaited<ReturnType<typeof Bun.build>>, what: string): Promise<void> {
  if (!result.success) {
    for (const l of result.logs) console.error(l);
    throw new Error(`build of ${what} failed`);
  }
}

for (const t of targets) {
  const out = join(dist, `netboot-${t}`);
  // The worker threads (TFTP blocks, the DHCP interface filter) are entry points too: Bun bundles workers
  // only when they are listed.
  const r = await Bun.build({
    entrypoints: [join(root, "src/main.ts"), join(root, "src/tftp/ffi-worker.ts"), join(root, "src/net/recvif-worker.ts")],
    compile: { target: `bun-${t}` as never, outfile: out },
    // Whitespace and identifiers too: 1.68 MB of code becomes 0.49 MB; names kept (errors and logs show them).
    minify: { syntax: true, whitespace: true, identifiers: true, keepNames: true },
    define: buildInfo(`executable for ${t}`),
    plugins: [ipxePlugin, noUndiciPlugin],
  });
  await check(r, out);
  let signature = "";
  if (t.startsWith("darwin")) {
    // macOS kills a binary whose signature does not cover it: Bun leaves darwin-x64 with its own runtime
    // signature, whose code limit stops short of the embedded program (scripts/macho-sign.ts).
    const bytes = new Uint8Array(readFileSync(out));
    const before = verifySignature(bytes);
    if (before.ok) signature = `, signature valid (${before.cd.identifier}, ad hoc)`;
    else {
      const signed = adhocSign(bytes, "netboot");
      const after = verifySignature(signed);
      if (!after.ok) throw new Error(`${out}: re-signing failed: ${after.problems.join("; ")}`);
      writeFileSync(out, signed);
      signature = `, re-signed ad hoc (Bun's signature: ${before.problems.join("; ")})`;
    }
  }
  console.log(`  ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB, iPXE: ${ipxeFiles.join(", ") || "none"}${signature})`);
}

// SHA256SUMS of every executable in dist/ (`sha256sum -c SHA256SUMS` there), the ones built now and any
// left from an earlier build of other targets: one line each, in the format sha256sum writes.
{
  const lines = all
    .map((t) => join(dist, `netboot-${t}`))
    .filter((f) => existsSync(f))
    .map((f) => `${createHash("sha256").update(readFileSync(f)).digest("hex")}  ${basename(f)}`);
  writeFileSync(join(dist, "SHA256SUMS"), lines.join("\n") + "\n");
  console.log(`  ${join(dist, "SHA256SUMS")} (${lines.length} executables)`);
}

if (!flag("--no-node")) {
  const outdir = join(dist, "node");
  rmSync(outdir, { recursive: true, force: true });
  // splitting keeps dynamically imported modules apart, so the bun:ffi one is never loaded by node.
  const r = await Bun.build({
    entrypoints: [join(root, "src/main.ts")],
    outdir,
    target: "node",
    format: "esm",
    splitting: true,
    external: ["bun:ffi"],
    naming: { asset: "[name].[ext]", chunk: "chunks/[name]-[hash].[ext]" },
    define: buildInfo("Node bundle"),
    plugins: [ipxePlugin],
  });
  await check(r, outdir);
  // The entry's "#!/usr/bin/env bun" line is for running from source; the bundle is for node.
  const main = join(outdir, "main.js");
  writeFileSync(main, readFileSync(main, "utf8").replace(/^#!.*\n(\/\/ @bun\n)?/, "#!/usr/bin/env node\n"));
  chmodSync(main, 0o755);
  console.log(`  ${main} (node >= 20)`);
}
