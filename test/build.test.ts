/** `npm run build`: single executables for four targets and a Node bundle; the host ones must work. */
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { bun, cli, freePort, repo, waitFor } from "./helpers/cli.ts";
import { sampleIso } from "./helpers/app.ts";
import { requireTool, sha256, tempDir } from "./helpers/tools.ts";
import { readFileSync } from "node:fs";
import { adhocSign, readCodeDirectory, verifySignature } from "../scripts/macho-sign.ts";

/** Serves the sample with `argv`, fetches B.B00 by TFTP (tftp-hpa) and by HTTP, returns the log. */
async function serveAndFetch(argv: string[]): Promise<string> {
  requireTool("tftp");
  const http = await freePort();
  const tftp = 20000 + (http % 20000);
  const proc = Bun.spawn([...argv, "serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(http), "--tftp-port", String(tftp), "--name", "esxi", "--dhcp", "off"], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  let log = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) log += new TextDecoder().decode(c);
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  try {
    await waitFor(() => log.includes("ready:"), 20_000, "server start");
    const dir = tempDir();
    const get = Bun.spawn(["tftp", "127.0.0.1", String(tftp), "-m", "binary", "-c", "get", "esxi/B.B00", `${dir}/b`]);
    expect(await get.exited).toBe(0);
    const viaHttp = new Uint8Array(await (await fetch(`http://127.0.0.1:${http}/esxi/B.B00`)).arrayBuffer());
    expect(sha256(readFileSync(`${dir}/b`))).toBe(sha256(viaHttp));
    expect(viaHttp.length).toBe(65536);
    await waitFor(() => log.includes("sent esxi/B.B00"), 5000, "transfer log");
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
  return log;
}

const host = `${process.platform === "darwin" ? "darwin" : "linux"}-${process.arch === "arm64" ? "arm64" : "x64"}`;

describe("build", () => {
  test("scripts/build.ts builds every target and the Node bundle", async () => {
    const r = await cli([join(repo, "scripts/build.ts")], { cmd: [bun], timeoutMs: 600_000 });
    expect(r.code).toBe(0);
    for (const t of ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"]) {
      const f = join(repo, "dist", `netboot-${t}`);
      expect(existsSync(f)).toBe(true);
      expect(statSync(f).size).toBeGreaterThan(10_000_000);
    }
    expect(existsSync(join(repo, "dist/node/main.js"))).toBe(true);
    // sha256sum's own check of the checksums file, in dist/ as a user would run it after a download.
    const sums = readFileSync(join(repo, "dist/SHA256SUMS"), "utf8");
    expect(sums.trim().split("\n").map((l) => l.split("  ")[1])).toEqual(["netboot-linux-x64", "netboot-linux-arm64", "netboot-darwin-x64", "netboot-darwin-arm64"]);
    const check = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: join(repo, "dist") });
    expect(check.stdout.toString()).toBe(["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"].map((t) => `netboot-${t}: OK\n`).join(""));
    expect(check.exitCode).toBe(0);
  }, 600_000);

  test("the linux-arm64 executable starts and runs the demo to PASS (qemu-aarch64-static, Debian's arm64 libc)", async () => {
    requireTool("qemu-aarch64-static");
    expect(existsSync("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1")).toBe(true);
    const exe = join(repo, "dist", "netboot-linux-arm64");
    const d = await cli(["-L", "/usr/aarch64-linux-gnu", exe, "demo"], { cmd: ["qemu-aarch64-static"], timeoutMs: 120_000 });
    expect(d.stdout).toContain("summary: 4 routes: PASS");
    expect(d.code).toBe(0);
    const v = await cli(["-L", "/usr/aarch64-linux-gnu", exe, "--version"], { cmd: ["qemu-aarch64-static"] });
    expect(v.stdout).toContain("runtime: Bun 1.4.5 on linux-arm64 (executable for linux-arm64)");
  }, 180_000);

  test("darwin binaries: a code signature macOS accepts (every page hash, the code limit at the signature)", () => {
    for (const t of ["darwin-x64", "darwin-arm64"]) {
      const file = new Uint8Array(readFileSync(join(repo, "dist", `netboot-${t}`)));
      const r = verifySignature(file);
      expect({ t, problems: r.problems }).toEqual({ t, problems: [] });
      // Ad hoc and linker-style, no hardened runtime (which would need Bun's JIT entitlements).
      expect({ t, flags: r.cd.flags }).toEqual({ t, flags: 0x20002 });
      expect(r.cd.pageSize).toBe(4096);
    }
    // Bun's own arm64 signature is the peer: our signer, given the same identifier, writes it byte for byte.
    const arm64 = new Uint8Array(readFileSync(join(repo, "dist", "netboot-darwin-arm64")));
    const cd = readCodeDirectory(arm64);
    expect(Buffer.from(adhocSign(arm64, cd.identifier)).equals(Buffer.from(arm64))).toBe(true);
  });

  test("host binary: --version and the demo (serves the sample image, walks it)", async () => {
    const exe = join(repo, "dist", `netboot-${host}`);
    const v = await cli(["--version"], { cmd: [exe] });
    expect(v.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string; devDependencies: Record<string, string> };
    const lines = v.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`netboot ${pkg.version}`);
    // The commit it was built from, the runtime, the embedded assets (sizes of Debian's files).
    const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: repo }).stdout.toString().trim();
    expect(lines[1]).toMatch(new RegExp(`^commit: ${head}(\\+dirty)? \\(built \\d{4}-\\d\\d-\\d\\d\\)$`));
    expect(lines[2]).toBe(`runtime: Bun ${pkg.devDependencies.bun} on ${host} (executable for ${host})`);
    const kb = (f: string) => Math.round(statSync(`/usr/lib/ipxe/${f}`).size / 1e3);
    expect(lines[3]).toBe(`iPXE: embedded: undionly.kpxe ${kb("undionly.kpxe")} KB, snponly.efi ${kb("snponly.efi")} KB, ipxe.efi ${kb("ipxe.efi")} KB`);
    expect(lines[4]).toMatch(/^embedded: sample image 451 KB \(netboot demo\), status page \d+ KB$/);
    // From source, the same first line.
    expect((await cli(["--version"])).stdout.split("\n")[0]).toBe(`netboot ${pkg.version}`);
    const d = await cli(["demo"], { cmd: [exe], timeoutMs: 60_000 });
    expect(d.stdout).toContain("summary: 4 routes: PASS");
    expect(d.code).toBe(0);
  }, 120_000);

  test("host binary: serves HTTP and TFTP, TFTP on the worker engine", async () => {
    const log = await serveAndFetch([join(repo, "dist", `netboot-${host}`)]);
    expect(log).toMatch(/TFTP on 127\.0\.0\.1:\d+ \(worker/);
    expect(log).toContain("iPXE: undionly.kpxe, snponly.efi, ipxe.efi from embedded in this executable");
  }, 60_000);

  test("Node 20 bundle: serves HTTP and TFTP (event-loop engine)", async () => {
    const log = await serveAndFetch(["node", join(repo, "dist/node/main.js")]);
    expect(log).toMatch(/TFTP on 127\.0\.0\.1:\d+ \(event-loop\)/);
    // node:http sent Content-Length (headers given to writeHead), and the access log says so: no framing note.
    expect(log).toMatch(/"GET \/esxi\/B\.B00" 200 65536\n/);
    expect(log).toContain("iPXE: undionly.kpxe, snponly.efi, ipxe.efi from embedded");
  }, 60_000);

  test("the executable serves its embedded iPXE, byte for byte Debian's", async () => {
    const http = await freePort();
    const proc = Bun.spawn([join(repo, "dist", `netboot-${host}`), "serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(http), "--no-tftp", "--dhcp", "off"], { stdout: "pipe", stderr: "pipe" });
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${http}/`).catch(() => undefined))?.status === 200, 20_000, "server");
      for (const f of ["undionly.kpxe", "snponly.efi", "ipxe.efi"]) {
        const got = new Uint8Array(await (await fetch(`http://127.0.0.1:${http}/ipxe/${f}`)).arrayBuffer());
        expect({ f, sha: sha256(got) }).toEqual({ f, sha: sha256(readFileSync(`/usr/lib/ipxe/${f}`)) });
      }
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 60_000);

  test("--ipxe-dir that holds nothing is a clear error", async () => {
    const r = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", "0", "--no-tftp", "--dhcp", "off", "--ipxe-dir", tempDir()], { cmd: [join(repo, "dist", `netboot-${host}`)] });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--ipxe-dir .*: no undionly\.kpxe, snponly\.efi or ipxe\.efi there/);
  });

  test("Node 20 bundle: the same demo under node", async () => {
    const d = await cli(["demo"], { cmd: ["node", join(repo, "dist/node/main.js")], timeoutMs: 60_000 });
    expect(d.stdout).toContain("summary: 4 routes: PASS");
    expect(d.code).toBe(0);
    const nodeVersion = (await cli(["--version"], { cmd: ["node"] })).stdout.trim();
    expect(Number(nodeVersion.slice(1).split(".")[0])).toBeGreaterThanOrEqual(20);
  }, 120_000);
});
