/**
 * Lock files in the state directory: the server's claim on it (one netboot serves from one state
 * directory: two would both write its leases and hosts), and a short lock around the host journal's
 * rewrite that `netboot hosts` takes too, so a line it appends is never lost to a compaction. Both hold
 * the holder's PID; a lock whose holder is gone (kill -9, a crash) is taken over.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { LIMITS } from "../config.ts";
import { StoreError, errorMessage } from "../errors.ts";

/** Is the process with this PID still there? (EPERM: it is, under another user.) */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function holder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Creates `path` holding our PID, or returns the live PID that holds it. A dead holder's lock is taken over. */
export function tryLock(path: string): { ok: true } | { ok: false; pid: number | undefined } {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return { ok: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = holder(path);
      if (pid === process.pid) return { ok: true };
      // A holder that is gone, or a lock left half-written by a crash (no PID) more than a minute ago.
      const stale = pid === undefined ? Date.now() - statSync(path).mtimeMs > LIMITS.lock.staleMs : !alive(pid);
      if (!stale) return { ok: false, pid };
      rmSync(path, { force: true });
    }
  }
  return { ok: false, pid: holder(path) };
}

export function unlock(path: string): void {
  if (holder(path) === process.pid) rmSync(path, { force: true });
}

/** Runs `fn` holding the lock at `path`, waiting for it up to `waitMs` (its holders hold it for milliseconds). */
export async function withLock<T>(path: string, fn: () => T | Promise<T>, waitMs: number = LIMITS.lock.waitMs): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    const got = tryLock(path);
    if (got.ok) break;
    if (Date.now() > until) throw new StoreError("E_STORE_LOCKED", `${path} is held by process ${got.pid ?? "?"} for more than ${waitMs / 1000} s; if no netboot runs, delete it`);
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    return await fn();
  } finally {
    unlock(path);
  }
}

/**
 * The server's claim on its state directory (`netboot.pid`): refused with one line when another netboot
 * holds it. Returns the release.
 */
export function claimStateDir(dir: string): () => void {
  const path = `${dir}/netboot.pid`;
  let got;
  try {
    got = tryLock(path);
  } catch (err) {
    throw new StoreError("E_STATE_DIR", `cannot write ${path} (${errorMessage(err).replace(/^[A-Z]+: /, "").split(",")[0]})`);
  }
  if (!got.ok) {
    throw new StoreError(
      "E_STATE_BUSY",
      `another netboot (process ${got.pid ?? "?"}) serves from ${dir}: give this one its own --state-dir, or share the lab's hosts between them with --store postgres://…${got.pid === undefined && existsSync(path) ? ` (if none runs, delete ${path})` : ""}`,
    );
  }
  return () => unlock(path);
}
