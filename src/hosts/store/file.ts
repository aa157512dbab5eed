/**
 * The file backend of the host store (the default, in --state-dir):
 *
 *   hosts.json      the snapshot: {"format":"netboot-hosts","version":2,"hosts":{MAC: record}}, written
 *                   whole, fsynced, renamed over the old one
 *   hosts.journal   one operation per line ({"at","mac","op",…,"by"}), appended with one write each, fsynced
 *                   before a done, a failure, a rearm or a token is acknowledged; folded into a new
 *                   snapshot at start and when it grows
 *   logs/           the installers' logs sent to failed_url
 *
 * A running server applies what `netboot hosts rearm` appends beside it at once: the command, once its
 * line is written, connects to the server's socket hosts.wake in the same directory, and the server reads
 * the journal's new lines before it closes the connection (so the command returns once the server has it).
 * Where the socket's path would be too long, the directory is watched instead (fs.watch: inotify; Bun's
 * watcher was seen to drop about one event in a hundred, and every lease written wakes it), and the
 * journal is read again before each fold. One corruption policy for every file: a journal line cut short
 * at the end (a crash while writing) is skipped with a warning; anything else that does not
 * read as what it should be stops the start with one line naming the file and what to do, because
 * starting without it would arm every host again and reinstall a boot-once host already done.
 *
 * State directories of earlier versions (hosts.json version 1, signed-loader.json, bsdp.json, rearm/) are
 * read once, written as a version-2 snapshot, and kept beside it with a .v1 suffix.
 */
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { LIMITS } from "../../config.ts";
import { errorMessage, fsReason, StoreError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { ensureStateDir, writeFileAtomic } from "../../state/atomic.ts";
import { AppendJournal, completeLines } from "../../state/journal.ts";
import { withLock } from "../../state/lock.ts";
import { tryParseMac, type Mac } from "../../wire/mac.ts";
import { applyOp, parseOp, parseRecord, type HostOp, type HostRecord } from "./record.ts";
import type { BackendHooks, StoreBackend } from "./store.ts";

const FORMAT = "netboot-hosts";
const VERSION = 2;

export interface FileBackendOptions {
  log: Logger;
  /** "server": the one writer that compacts and follows the journal; "client": `netboot hosts` beside it. */
  role: "server" | "client";
}

interface Snapshot {
  format: typeof FORMAT;
  version: typeof VERSION;
  written: string;
  hosts: Record<string, HostRecord>;
}

export class FileBackend implements StoreBackend {
  readonly kind = "file" as const;
  readonly dir: string;
  readonly snapshotPath: string;
  readonly journalPath: string;
  readonly #lockPath: string;
  readonly #wakePath: string;
  readonly #log: Logger;
  readonly #role: "server" | "client";
  /** Who writes a line: the other writers' lines are what this one follows. */
  readonly #by = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  /** What the files hold, while they are read at start (afterwards the store's memory is the truth). */
  readonly #loaded = new Map<Mac, HostRecord>();
  #journal: AppendJournal | undefined;
  /** Bytes of the journal already applied. */
  #offset = 0;
  #watcher: FSWatcher | undefined;
  #wake: Server | undefined;
  #hooks: BackendHooks | undefined;
  #compacting = false;

  constructor(dir: string, opts: FileBackendOptions) {
    this.dir = dir;
    this.snapshotPath = join(dir, "hosts.json");
    this.journalPath = join(dir, "hosts.journal");
    this.#lockPath = join(dir, "hosts.journal.lock");
    this.#wakePath = join(dir, "hosts.wake");
    this.#log = opts.log;
    this.#role = opts.role;
  }

  get where(): string {
    return this.snapshotPath;
  }

  async load(): Promise<HostRecord[]> {
    if (this.#role === "client") return this.#loadBeside();
    ensureStateDir(this.dir);
    const migrated = this.#readSnapshot();
    this.#offset = 0;
    this.#openJournal();
    const journal = this.#journal!.readFrom(0);
    this.#applyLines(journal, true);
    if (migrated.includes(this.snapshotPath)) keepV1Copy(this.snapshotPath);
    // After a clean stop the snapshot holds everything and the journal is empty: nothing to fold.
    if (journal.length > 0 || migrated.length > 0 || !existsSync(this.snapshotPath)) await this.#compact();
    for (const f of migrated) this.#retire(f);
    return [...this.#loaded.values()];
  }

  /**
   * `netboot hosts` beside a running server, which may fold the journal into a new snapshot meanwhile (the
   * snapshot renamed over, then the journal emptied): read again when the snapshot changed while it read.
   * Read-only: it may read what it cannot write.
   */
  #loadBeside(): HostRecord[] {
    if (!existsSync(this.dir)) return [];
    const snapshotId = () => (existsSync(this.snapshotPath) ? `${statSync(this.snapshotPath).ino}` : "none");
    for (let attempt = 0; ; attempt++) {
      const before = snapshotId();
      this.#loaded.clear();
      this.#offset = 0;
      this.#readSnapshot();
      if (existsSync(this.journalPath)) this.#applyLines(readBytes(this.journalPath), true);
      if (snapshotId() === before || attempt >= 4) return [...this.#loaded.values()];
    }
  }

  async persist(mac: Mac, op: HostOp, at: number, opts: { durable: boolean; log?: Uint8Array | undefined }): Promise<undefined> {
    if (op.op === "failed" && opts.log) this.#writeLog(mac, opts.log);
    // The line is the operation: the snapshot is written from the store's memory (BackendHooks.records).
    const line = { at, mac, ...op, by: this.#by };
    try {
      if (this.#role === "client") {
        // Beside a running server: under the lock its compaction takes, so the line cannot fall between its
        // snapshot and its truncation.
        await withLock(this.#lockPath, () => {
          this.#openJournal();
          this.#journal!.append(line);
          this.#ownFiles();
        });
        if (opts.durable) await this.#journal!.sync();
        await this.#wakeServer();
        return undefined;
      }
      this.#journal!.append(line);
      if (opts.durable) await this.#journal!.sync();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError("E_STATE_WRITE", `cannot write ${this.journalPath} (${fsReason(err)})${this.#role === "client" ? "; is --state-dir the server's, and writable by you?" : ""}`);
    }
    if (this.#role === "server" && this.#journal!.lines >= LIMITS.hosts.journalCompactAfter) void this.#compact().catch((err) => this.#log.warn(`${this.journalPath}: not folded into ${this.snapshotPath} (${errorMessage(err)}); will try again`));
    return undefined;
  }

  async tokens(minted: ReadonlyArray<{ mac: Mac; token: string }>, at: number): Promise<HostRecord[]> {
    const out: HostRecord[] = [];
    for (const { mac, token } of minted) {
      const op: HostOp = { op: "token", token };
      const next = applyOp(this.#loaded.get(mac), mac, op, at);
      if (!next) continue;
      this.#journal!.append({ at, mac, ...op, by: this.#by });
      this.#loaded.set(mac, next);
      out.push(next);
    }
    await this.#journal!.sync();
    return out;
  }

  async failureLog(mac: Mac): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(readFileSync(this.#logPath(mac)));
    } catch {
      return undefined;
    }
  }

  /**
   * Lines other writers append (`netboot hosts rearm` beside a running server) reach the store as soon as
   * the writer wakes this server through hosts.wake, or the kernel says the directory changed; the
   * server's own lines are skipped. Records are never reloaded whole: this process is the files' only
   * other writer.
   */
  attach(hooks: BackendHooks): void {
    this.#hooks = hooks;
    this.#loaded.clear();
    if (this.#role !== "server") return;
    if (Buffer.byteLength(this.#wakePath) > 100) {
      // Too long for a socket's path: the directory is watched instead (every write in it wakes this
      // process, the leases' too, so only when there is no socket).
      this.#log.debug(`${this.#wakePath}: too long for a socket; \`netboot hosts\` beside this server is noticed by a watch of the directory`);
      try {
        this.#watcher = watch(this.dir, { persistent: false }, (_event, name) => {
          if (name === "hosts.journal") this.#readNew();
        });
        this.#watcher.on("error", () => {});
      } catch {
        // no inotify here (some network file systems): read at the next start, or at the next fold
      }
      return;
    }
    rmSync(this.#wakePath, { force: true });
    const wake = createServer((c) => {
      this.#readNew();
      c.end();
    });
    wake.on("error", (err) => this.#log.debug(`${this.#wakePath}: ${errorMessage(err)}`));
    wake.listen(this.#wakePath);
    wake.unref();
    this.#wake = wake;
  }

  async close(): Promise<void> {
    this.#watcher?.close();
    if (this.#wake) {
      this.#wake.close();
      rmSync(this.#wakePath, { force: true });
    }
    // Only a store that loaded: after a failed load the files are left exactly as they were.
    if (this.#role === "server" && this.#hooks) await this.#compact().catch((err) => this.#log.warn(`${this.journalPath}: not folded at stop (${errorMessage(err)}); it is read at the next start`));
    this.#journal?.close();
    this.#journal = undefined;
  }

  // --- internal ---

  /** Tells a running server (if any) to read the journal now; returns once it has. */
  #wakeServer(): Promise<void> {
    return new Promise((resolve) => {
      const c = connect(this.#wakePath);
      const done = () => {
        clearTimeout(timer);
        c.destroy();
        resolve();
      };
      const timer = setTimeout(done, LIMITS.hosts.wakeWaitMs);
      c.on("error", done); // no server: it reads the journal when it starts
      c.on("close", done);
      c.on("connect", () => c.end("wake\n"));
    });
  }

  #readNew(): void {
    if (!this.#journal || this.#compacting) return;
    try {
      this.#applyLines(this.#journal.readFrom(this.#offset), false);
    } catch (err) {
      this.#log.warn(`${this.journalPath}: ${errorMessage(err)}`);
    }
  }

  /** Applies the complete lines in `bytes` (from #offset); at start, a torn last line is skipped and said. */
  #applyLines(bytes: Uint8Array, atStart: boolean): void {
    const { lines, consumed, partial } = completeLines(bytes);
    const start = this.#offset;
    lines.forEach((text, i) => {
      let raw: Record<string, unknown>;
      let op: HostOp;
      let mac: Mac | undefined;
      try {
        raw = JSON.parse(text) as Record<string, unknown>;
        if (typeof raw !== "object" || raw === null) throw new Error("not an object");
        mac = tryParseMac(String(raw.mac ?? ""));
        if (!mac) throw new Error(`mac ${JSON.stringify(raw.mac)} is not a MAC`);
        if (typeof raw.at !== "number") throw new Error("no time (at)");
        op = parseOp(raw);
      } catch (err) {
        if (atStart) throw new StoreError("E_STATE_CORRUPT", `${this.journalPath}: line ${i + 1} is not a host operation (${errorMessage(err)}); ${whatToDo(this.journalPath)}`);
        // Written beside a running server by something else: skipped (the next start reads it, and stops on it).
        this.#log.warn(`${this.journalPath}: a line appended beside this server is not a host operation (${errorMessage(err)}); skipped`);
        return;
      }
      if (atStart) this.#importOp(mac, op, raw.at as number);
      else if (raw.by !== this.#by) this.#hooks?.op(mac, op, raw.at as number);
    });
    this.#offset = start + consumed;
    if (atStart && new TextDecoder().decode(partial).trim()) {
      this.#log.warn(`${this.journalPath}: its last line was cut short (a crash while writing?) and is skipped; the ${lines.length} before it are kept`);
      this.#offset += partial.length;
    }
  }

  #openJournal(): void {
    if (this.#journal) return;
    if (this.#role === "client" && !existsSync(this.journalPath)) {
      // Made here beside a server that runs as another user: theirs, not ours (see #ownFiles).
      writeFileSync(this.journalPath, "");
      this.#ownFiles();
    }
    try {
      this.#journal = new AppendJournal(this.journalPath);
    } catch (err) {
      throw new StoreError("E_STATE_DIR", `cannot open ${this.journalPath} (${fsReason(err)}); is --state-dir the server's, and writable by you?`);
    }
  }

  /** Reads hosts.json (a version-1 state directory too); returns the files of an old layout to retire. */
  #readSnapshot(): string[] {
    const old: string[] = [];
    if (existsSync(this.snapshotPath)) {
      const data = readJson(this.snapshotPath, "a host state file");
      const o = data as { format?: unknown; version?: unknown; hosts?: unknown };
      if (typeof o !== "object" || o === null || Array.isArray(o) || (o.hosts !== undefined && (typeof o.hosts !== "object" || o.hosts === null || Array.isArray(o.hosts)))) {
        throw new StoreError("E_STATE_CORRUPT", `${this.snapshotPath} is not a host state file (no hosts object); ${whatToDo(this.snapshotPath)}`);
      }
      if (o.version === VERSION && o.format === FORMAT) {
        for (const [key, raw] of Object.entries(o.hosts ?? {})) {
          try {
            const r = parseRecord(raw, key);
            this.#loaded.set(r.mac, r);
          } catch (err) {
            throw new StoreError("E_STATE_CORRUPT", `${this.snapshotPath}: hosts.${key} is not a host record (${errorMessage(err)}); ${whatToDo(this.snapshotPath)}`);
          }
        }
      } else if (o.version === 1 || o.version === undefined) {
        this.#importV1(o.hosts as Record<string, unknown> | undefined);
        old.push(this.snapshotPath);
      } else {
        throw new StoreError("E_STATE_VERSION", `${this.snapshotPath} was written by a newer netboot (version ${JSON.stringify(o.version)}); run that version, or move the file away`);
      }
    }
    // Files of version 1, beside hosts.json: the Secure Boot marks, the Macs' choices, rearm requests.
    const signed = join(this.dir, "signed-loader.json");
    if (existsSync(signed)) {
      const data = readJson(signed, "a Secure Boot memory file") as { hosts?: Record<string, { since?: string; reason?: unknown }> };
      for (const [m, v] of Object.entries(data?.hosts ?? {})) {
        const mac = tryParseMac(m);
        if (mac && typeof v?.reason === "string") this.#importOp(mac, { op: "signed", reason: v.reason }, Date.parse(v.since ?? "") || Date.now());
      }
      old.push(signed);
    }
    const bsdp = join(this.dir, "bsdp.json");
    if (existsSync(bsdp)) {
      const data = readJson(bsdp, "a BSDP selection file") as { selections?: Record<string, { image?: unknown; at?: string }> };
      for (const [m, v] of Object.entries(data?.selections ?? {})) {
        const mac = tryParseMac(m);
        if (mac && typeof v?.image === "number") this.#importOp(mac, { op: "bsdp", image: v.image >>> 0 }, Date.parse(v.at ?? "") || Date.now());
      }
      old.push(bsdp);
    }
    const rearm = join(this.dir, "rearm");
    if (existsSync(rearm)) {
      for (const f of readdirSync(rearm)) {
        const mac = tryParseMac(f);
        if (mac) this.#importOp(mac, { op: "rearm" }, statSync(join(rearm, f)).mtimeMs);
      }
      old.push(rearm);
    }
    return old;
  }

  #importV1(hosts: Record<string, unknown> | undefined): void {
    for (const [m, v] of Object.entries(hosts ?? {})) {
      const mac = tryParseMac(m);
      if (!mac || typeof v !== "object" || v === null) continue;
      const h = v as { phase?: unknown; startedAt?: unknown; doneAt?: unknown; failedAt?: unknown; failure?: unknown; token?: unknown };
      const num = (x: unknown) => (typeof x === "number" ? x : undefined);
      try {
        const r = parseRecord({ mac, token: h.token, phase: h.phase, startedAt: num(h.startedAt), doneAt: num(h.doneAt), failedAt: num(h.failedAt), failure: h.failure, updated: Date.now(), rev: 1 });
        this.#loaded.set(mac, r);
      } catch (err) {
        throw new StoreError("E_STATE_CORRUPT", `${this.snapshotPath}: hosts.${m} is not a host record (${errorMessage(err)}); ${whatToDo(this.snapshotPath)}`);
      }
    }
  }

  #importOp(mac: Mac, op: HostOp, at: number): void {
    const next = applyOp(this.#loaded.get(mac), mac, op, at);
    if (next) this.#loaded.set(mac, next);
    else this.#loaded.delete(mac);
  }

  /** A synced snapshot of what is kept, then the journal emptied: under the lock `netboot hosts` appends under. */
  async #compact(): Promise<void> {
    // An operation written but not yet in memory (a done being synced) would be in neither: later.
    if (!this.#journal || this.#compacting || (this.#hooks && !this.#hooks.settled())) return;
    this.#compacting = true;
    try {
      await withLock(this.#lockPath, () => {
        // What another writer appended since the last read goes into this snapshot, not lost with the journal.
        this.#compacting = false;
        this.#readNew();
        this.#compacting = true;
        const hosts: Record<string, HostRecord> = {};
        const records = this.#hooks ? [...this.#hooks.records()] : [...this.#loaded.values()];
        for (const r of records.sort((a, b) => a.mac.localeCompare(b.mac))) hosts[r.mac] = r;
        const snapshot: Snapshot = { format: FORMAT, version: VERSION, written: new Date().toISOString(), hosts };
        writeFileAtomic(this.snapshotPath, JSON.stringify(snapshot, null, 1), { fsync: true });
        this.#journal!.truncate();
        this.#offset = 0;
      });
    } finally {
      this.#compacting = false;
    }
  }

  #retire(path: string): void {
    try {
      if (path === this.snapshotPath) return; // overwritten by the version-2 snapshot; a copy was kept below
      renameSync(path, `${path}.v1`);
    } catch (err) {
      this.#log.warn(`${path}: read into ${this.snapshotPath}, but not renamed to ${path}.v1 (${fsReason(err)}); delete it`);
    }
  }

  #logPath(mac: Mac): string {
    return join(this.dir, "logs", `${mac.replaceAll(":", "-")}-failed.log`);
  }

  #writeLog(mac: Mac, log: Uint8Array): void {
    mkdirSync(join(this.dir, "logs"), { recursive: true });
    writeFileAtomic(this.#logPath(mac), log, { fsync: true });
  }

  /**
   * Files `netboot hosts` makes as root in a state directory that belongs to the user the server runs as
   * must stay writable by that user: they get the directory's owner.
   */
  #ownFiles(): void {
    if (process.getuid?.() !== 0) return;
    try {
      const st = statSync(this.dir);
      if (st.uid === 0) return;
      for (const f of [this.journalPath, this.#lockPath]) if (existsSync(f)) chownSync(f, st.uid, st.gid);
    } catch {
      // FAT: no owners to give
    }
  }
}

/**
 * Copies a version-1 hosts.json to hosts.json.v1 before the version-2 snapshot replaces it (the caller
 * writes the snapshot only after the copy is made).
 */
export function keepV1Copy(path: string): void {
  if (existsSync(path) && !existsSync(`${path}.v1`)) writeFileSync(`${path}.v1`, readFileSync(path));
}

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new StoreError("E_STATE_READ", `cannot read ${path} (${fsReason(err)}); it is not moved or rewritten: give it to the user netboot runs as (sudo chown), or run as its owner`);
  }
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    // Unreadable is not corrupt: the file may be fine (and moving it away would arm every host again).
    throw new StoreError("E_STATE_READ", `cannot read ${path} (${fsReason(err)}); it is not moved or rewritten: give it to the user netboot runs as (sudo chown), or run as its owner`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new StoreError("E_STATE_CORRUPT", `${path} is not ${what} (${errorMessage(err)}); ${whatToDo(path)}`);
  }
}

function whatToDo(path: string): string {
  return `restore it from a backup, or move it away to start with every host armed (a done boot-once host would then reinstall): mv ${path} ${path}.bad`;
}

