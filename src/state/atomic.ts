/** State files (leases, Mac selections) written so a crash leaves the old or the new content, never half of one. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { SourceError } from "../errors.ts";

/** Writes `path.tmp`, optionally fsyncs it, and renames it over `path` (then fsyncs the directory, so the rename holds too). */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { fsync?: boolean } = {}): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  if (opts.fsync) {
    const fd = openSync(tmp, "r");
    fsyncSync(fd);
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (opts.fsync) {
    try {
      const dir = openSync(dirname(path), "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch {
      // Some filesystems (FAT on a USB stick, some network mounts) refuse a directory fsync: the file is synced.
    }
  }
}

/** mkdir -p for the state directory, with an error that names it. */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new SourceError("E_STATE_DIR", `cannot create state directory ${dir}: ${(err as Error).message}`);
  }
}
