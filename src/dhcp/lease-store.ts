/**
 * Leases on disk, so a crash or a restart loses nothing: a snapshot (leases.json, written to a temporary
 * file and renamed over the old one) plus a journal (leases.journal, one JSON line per change, written
 * before the reply goes out; an ACK waits for its fsync). Start-up loads the snapshot, replays the journal, and compacts both into a
 * new snapshot; the journal is compacted again when it grows.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LIMITS } from "../config.ts";
import { SourceError } from "../errors.ts";
import { ensureStateDir, writeFileAtomic } from "../state/atomic.ts";
import { AppendJournal } from "../state/journal.ts";
import type { Lease } from "./leases.ts";

export interface LeaseStore {
  readonly dir: string;
  /** Leases found on disk (snapshot + journal), latest state per address. */
  readonly loaded: Lease[];
  /** Appends one change; synchronous, so it is in the kernel before the reply is sent (a kill -9 keeps it). */
  record(lease: Lease): void;
  /**
   * Resolves once every change recorded so far is on disk (fsync): a power cut keeps it too. Group commit:
   * the calls made while one fsync runs share the next, so many ACKs cost one fsync.
   */
  sync(): Promise<void>;
  /** Writes a fresh snapshot of `all` and empties the journal. */
  compact(all: readonly Lease[]): void;
  /** Journal lines since the last snapshot; compact when it passes COMPACT_AFTER. */
  readonly pending: number;
  close(): void;
}

export const COMPACT_AFTER = LIMITS.dhcp.journalCompactAfter;

export function openLeaseStore(dir: string, opts: { warn?: (message: string) => void } = {}): LeaseStore {
  ensureStateDir(dir);
  const snapshot = join(dir, "leases.json");
  const journal = join(dir, "leases.journal");
  const byKey = new Map<string, Lease>();
  const key = (l: Lease) => `${l.ip}`;
  if (existsSync(snapshot)) {
    try {
      const data = JSON.parse(readFileSync(snapshot, "utf8")) as { leases?: Lease[] };
      for (const l of data.leases ?? []) if (valid(l)) byKey.set(key(l), l);
    } catch (err) {
      throw new SourceError("E_STATE_CORRUPT", `${snapshot} is not a lease file (${(err as Error).message}); move it away to start empty`);
    }
  }
  let replayed = 0;
  if (existsSync(journal)) {
    let torn = 0;
    for (const line of readFileSync(journal, "utf8").split("\n")) {
      if (!line.trim()) continue;
      replayed++;
      try {
        const l = JSON.parse(line) as Lease;
        if (valid(l)) byKey.set(key(l), l);
        else torn++;
      } catch {
        torn++; // a line cut short by a crash: everything before it counts
      }
    }
    if (torn) opts.warn?.(`${journal}: ${torn} line${torn === 1 ? "" : "s"} cut short (a crash while writing?) skipped; the leases before ${torn === 1 ? "it" : "them"} are kept`);
  }
  const loaded = [...byKey.values()];
  // On disk before the journal it replaces is emptied (at start and at each compaction: rare, so synced).
  const writeSnapshot = (all: readonly Lease[]) =>
    writeFileAtomic(snapshot, JSON.stringify({ version: 1, written: new Date().toISOString(), leases: all }, null, 1), { fsync: true });
  // After a clean stop the snapshot already holds everything (compacted then): nothing to write or sync.
  if (replayed > 0 || !existsSync(snapshot)) writeSnapshot(loaded);
  // Emptied (what it held is in the snapshot just written), then appended to: group commit in AppendJournal.
  writeFileSync(journal, "");
  const j = new AppendJournal(journal);
  return {
    dir,
    loaded,
    record: (lease) => j.append(lease),
    sync: () => j.sync(),
    compact(all) {
      writeSnapshot(all);
      j.truncate();
    },
    get pending() {
      return j.lines;
    },
    close: () => j.close(),
  };
}

function valid(l: Lease): boolean {
  return typeof l?.mac === "string" && typeof l.ip === "number" && typeof l.expires === "number" && typeof l.state === "string";
}
