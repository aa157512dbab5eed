/** Test helpers: temp dirs cleaned up at exit, running the real tools the tests compare against. */
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, lstatSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const temps: string[] = [];
process.on("exit", () => {
  if (process.env.KEEP_TMP) return;
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed when the test process exits (KEEP_TMP=1 keeps it). */
export function tempDir(prefix = "netboot-test-"): string {
  const base = process.env.NETBOOT_TEST_TMP ?? tmpdir();
  const d = mkdtempSync(join(base, prefix));
  // Readable by all, as a download folder is: serve drops root (to nobody without sudo) once it has started.
  chmodSync(d, 0o755);
  temps.push(d);
  return d;
}

/** Runs a program, throws with its stderr when it fails; returns stdout. */
export function run(cmd: string, args: readonly string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (is it installed? .ci/run installs the test tools)`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${String(r.stderr).slice(-2000)}`);
  return String(r.stdout);
}

/** Fails the test (not skips) when a tool the test relies on is missing: CI must have it. */
export function requireTool(cmd: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} is not installed; run .ci/run (or apt-get install it) before the tests`);
}

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export interface TreeEntry {
  type: "file" | "dir" | "symlink";
  size: number;
  sha256?: string;
  target?: string;
}

/** Walks a directory on disk into path → entry (paths start with "/"). */
export function diskListing(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const p = `${rel}/${name}`;
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out.set(p, { type: "symlink", size: 0, target: readlinkSync(full) });
      else if (st.isDirectory()) {
        out.set(p, { type: "dir", size: 0 });
        walk(full, p);
      } else out.set(p, { type: "file", size: st.size, sha256: sha256(readFileSync(full)) });
    }
  };
  walk(root, "");
  return out;
}

/** What xorriso sees in an image: extract it with `xorriso -osirrox on -extract` and walk the result. */
export function xorrisoListing(iso: string): Map<string, TreeEntry> {
  const out = join(tempDir("xorriso-extract-"), "x");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", out], { stdio: ["ignore", "ignore", "pipe"] });
  return diskListing(out);
}

/**
 * Ends, by PID, the processes a test's own scripts recorded in `file` (one PID a line: machines started by
 * a BMC's startcmd, installed systems the harness plays), and empties the file.
 */
export function killRecorded(file: string): void {
  if (!existsSync(file)) return;
  for (const p of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
    try {
      process.kill(Number(p), "SIGKILL");
    } catch {
      // gone already
    }
  }
  writeFileSync(file, "");
}
