/** `npm run build`: single executables for four targets and a Node bundle; the host ones must work. */
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { bun, cli, repo } from "./helpers/cli.ts";

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
  }, 600_000);

  test("host binary: --version and the demo (serves the sample image, walks it)", async () => {
    const exe = join(repo, "dist", `netboot-${host}`);
    const v = await cli(["--version"], { cmd: [exe] });
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const d = await cli(["demo"], { cmd: [exe], timeoutMs: 60_000 });
    expect(d.stdout).toContain("0 problems: PASS");
    expect(d.code).toBe(0);
  }, 120_000);

  test("Node 20 bundle: the same demo under node", async () => {
    const d = await cli(["demo"], { cmd: ["node", join(repo, "dist/node/main.js")], timeoutMs: 60_000 });
    expect(d.stdout).toContain("0 problems: PASS");
    expect(d.code).toBe(0);
    const nodeVersion = (await cli(["--version"], { cmd: ["node"] })).stdout.trim();
    expect(Number(nodeVersion.slice(1).split(".")[0])).toBeGreaterThanOrEqual(20);
  }, 120_000);
});
