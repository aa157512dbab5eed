/**
 * The host store: the one owner of what netboot knows of each MAC that must outlive a restart (smee's
 * per-MAC backend, with the lab entry beside it). Its interface is async; its records are also kept in
 * memory, written through on every change and refreshed when another instance (or `netboot hosts` beside a
 * running server) changes one, so the request path reads them without a round trip (`get`).
 *
 * Two backends behind one contract (test/hosts/store-contract.test.ts runs both): files in --state-dir
 * (file.ts, the default) and PostgreSQL (postgres.ts, several instances sharing one lab). A backend
 * persists operations in order, per MAC; this class applies them to memory first (the same reducer,
 * record.ts), tells the watchers, and retries a write that failed until it lands. An operation someone
 * is told about (done, failed, rearm, a token in a kickstart) is acknowledged only once it is durable.
 */
import { randomBytes } from "node:crypto";
import { LIMITS } from "../../config.ts";
import { errorMessage, StoreError } from "../../errors.ts";
import type { Phase } from "../../events.ts";
import type { Logger } from "../../log.ts";
import type { Mac } from "../../wire/mac.ts";
import type { HostBook, HostEntry } from "../book.ts";
import { applyOp, durablePart, isDurableOp, isKeptForUnlisted, sameFacts, type HostOp, type HostRecord, type OpName } from "./record.ts";

/** What is known of one MAC: its lab entry (from the book) and its record. */
export interface HostFacts {
  mac: Mac;
  entry: HostEntry | undefined;
  listed: boolean;
  record: HostRecord | undefined;
}

export interface HostChange {
  mac: Mac;
  /** The operation; "sync" when a reload from the backend brought the record. */
  op: OpName | "sync";
  record: HostRecord | undefined;
  previous: HostRecord | undefined;
  /** Made elsewhere: another instance, or `netboot hosts` beside this server. */
  remote: boolean;
}

export interface HostStore {
  readonly kind: "file" | "postgres";
  /** Where the records are, for messages: a path, or the database URL without its password. */
  readonly where: string;
  readonly book: HostBook;
  /** The record as of now, from memory: what the request path reads (no round trip). */
  get(mac: Mac): HostRecord | undefined;
  snapshot(mac: Mac): Promise<HostFacts>;
  /** Every listed host, and every other MAC with a record. */
  list(): Promise<HostFacts[]>;
  /** A phase reached (`restart`: a new install starts). Errors are logged and the write retried; never rejects. */
  mark(mac: Mac, phase: Phase, opts?: { restart?: boolean }): Promise<void>;
  /** The installer's %post said done: resolves once that is durable. */
  done(mac: Mac): Promise<HostRecord>;
  failed(mac: Mac, reason: string, log?: Uint8Array): Promise<void>;
  rearm(mac: Mac): Promise<void>;
  /** The host's callback token, made (durably) the first time it is asked for. */
  token(mac: Mac): Promise<string>;
  /** A Mac spoke BSDP; `image` its choice in the picker (null: forget it). */
  bsdp(mac: Mac, image?: number | null): Promise<void>;
  signedLoader(mac: Mac, reason: string | undefined): Promise<void>;
  /** The installer's log kept from failed_url. */
  failureLog(mac: Mac): Promise<Uint8Array | undefined>;
  /** Every change, made here or elsewhere, in the order this instance saw them. */
  watch(fn: (c: HostChange) => void): () => void;
  close(): Promise<void>;
}

/** How a backend reaches the store's memory once loaded. */
export interface BackendHooks {
  /** What is kept now (the durable part of every record): what a new snapshot holds. */
  records(): Iterable<HostRecord>;
  /** An operation another writer appended (the file backend: `netboot hosts` beside the server). */
  op(mac: Mac, op: HostOp, at: number): void;
  /** A record as another instance left it (PostgreSQL); undefined: gone. */
  record(mac: Mac, record: HostRecord | undefined): void;
  /** Every record, after a reconnect that may have missed changes. */
  reload(records: HostRecord[]): void;
}

/** What a backend does: keep operations in order, durably when asked, and say what others changed. */
export interface StoreBackend {
  readonly kind: "file" | "postgres";
  readonly where: string;
  /** Every record kept (a listed host's whole, an unlisted MAC's durable part). */
  load(): Promise<HostRecord[]>;
  /**
   * Keeps one operation. `record` is the result in this instance's memory and `keep` what of it is written
   * down (durablePart); `durable` means on disk, or committed, before this resolves. Resolves with the
   * record as the backend now has it when that may differ from `record` (another instance wrote between),
   * else undefined.
   */
  persist(mac: Mac, op: HostOp, at: number, keep: HostRecord | undefined, opts: { durable: boolean; log?: Uint8Array | undefined }): Promise<HostRecord | undefined | "gone">;
  failureLog(mac: Mac): Promise<Uint8Array | undefined>;
  /**
   * Tokens for many hosts at once (a lab's first start), durably; a host that has one keeps it. Returns
   * every such host's record as the backend now has it.
   */
  tokens(minted: ReadonlyArray<{ mac: Mac; token: string }>, at: number): Promise<HostRecord[]>;
  /** From now on: what the store holds, and where changes made elsewhere go. */
  attach(hooks: BackendHooks): void;
  close(): Promise<void>;
}

export class MirroredStore implements HostStore {
  readonly book: HostBook;
  readonly #backend: StoreBackend;
  readonly #log: Logger;
  readonly #records = new Map<Mac, HostRecord>();
  readonly #watchers = new Set<(c: HostChange) => void>();
  readonly #queues = new Map<Mac, Promise<void>>();
  #failing: string | undefined;
  #closed = false;
  #watcherFailed = false;
  #retry = true;
  #client = false;

  private constructor(book: HostBook, backend: StoreBackend, log: Logger) {
    this.book = book;
    this.#backend = backend;
    this.#log = log;
  }

  /** Loads every record, then makes sure every listed host has its token (durably: kickstarts carry it). */
  /** `tokens`: every listed host gets its token now; `retry`: a failed write is retried (a server) or not (`netboot hosts`). */
  static async open(book: HostBook, backend: StoreBackend, log: Logger, opts: { tokens?: boolean; retry?: boolean } = {}): Promise<MirroredStore> {
    const store = new MirroredStore(book, backend, log);
    store.#retry = opts.retry !== false;
    store.#client = opts.tokens === false;
    for (const r of await backend.load()) store.#records.set(r.mac, r);
    backend.attach({
      records: () => store.#kept(),
      op: (mac, op, at) => store.#remoteOp(mac, op, at),
      record: (mac, r) => store.#remote(mac, r, "sync"),
      reload: (all) => store.#reload(all),
    });
    if (opts.tokens !== false) {
      const missing = book.hosts.filter((h) => !store.#records.get(h.mac)?.token).map((h) => ({ mac: h.mac, token: randomBytes(16).toString("hex") }));
      if (missing.length) for (const r of await backend.tokens(missing, Date.now())) store.#records.set(r.mac, r);
      // One another instance was writing just then: the one-by-one way, which waits for its row.
      await Promise.all(book.hosts.filter((h) => !store.#records.get(h.mac)?.token).map((h) => store.token(h.mac)));
    }
    return store;
  }

  get kind() {
    return this.#backend.kind;
  }

  get where() {
    return this.#backend.where;
  }

  get(mac: Mac): HostRecord | undefined {
    return this.#records.get(mac);
  }

  async snapshot(mac: Mac): Promise<HostFacts> {
    return this.#facts(mac);
  }

  async list(): Promise<HostFacts[]> {
    const macs = new Set<Mac>([...this.book.hosts.map((h) => h.mac), ...this.#records.keys()]);
    return [...macs].map((m) => this.#facts(m));
  }

  async mark(mac: Mac, phase: Phase, opts: { restart?: boolean } = {}): Promise<void> {
    await this.#apply(mac, { op: "mark", phase, restart: opts.restart || undefined }).catch(() => {});
  }

  async done(mac: Mac): Promise<HostRecord> {
    return (await this.#apply(mac, { op: "done" }))!;
  }

  async failed(mac: Mac, reason: string, log?: Uint8Array): Promise<void> {
    const kept = log?.length ? log.subarray(0, LIMITS.hosts.maxFailureLog) : undefined;
    await this.#apply(mac, { op: "failed", reason, log: kept !== undefined }, kept);
  }

  async rearm(mac: Mac): Promise<void> {
    await this.#apply(mac, { op: "rearm" });
  }

  async token(mac: Mac): Promise<string> {
    const have = this.#records.get(mac)?.token;
    if (have) return have;
    const r = await this.#apply(mac, { op: "token", token: randomBytes(16).toString("hex") });
    return r!.token!;
  }

  async bsdp(mac: Mac, image?: number | null): Promise<void> {
    await this.#apply(mac, { op: "bsdp", image }).catch(() => {});
  }

  async signedLoader(mac: Mac, reason: string | undefined): Promise<void> {
    await this.#apply(mac, { op: "signed", reason }).catch(() => {});
  }

  failureLog(mac: Mac): Promise<Uint8Array | undefined> {
    return this.#backend.failureLog(mac);
  }

  watch(fn: (c: HostChange) => void): () => void {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }

  async close(): Promise<void> {
    // What is queued gets a last chance to land (a few seconds), then the backend goes.
    const pending = Promise.all([...this.#queues.values()]);
    await Promise.race([pending, new Promise((r) => setTimeout(r, 5000).unref?.())]);
    this.#closed = true;
    await this.#backend.close();
  }

  // --- internal ---

  /**
   * A host of the lab: in the book, or (`netboot hosts` without the lab file) a record that carries a
   * token, which a server makes at its start for every listed host and for no one else durably.
   */
  #listed(mac: Mac): boolean {
    return this.book.lookup(mac) !== undefined || (this.#client && this.#records.get(mac)?.token !== undefined);
  }

  #facts(mac: Mac): HostFacts {
    const entry = this.book.lookup(mac);
    return { mac, entry, listed: this.#listed(mac), record: this.#records.get(mac) };
  }

  /** Memory first (the request path sees it at once), the watchers, then the backend in this MAC's order. */
  #apply(mac: Mac, op: HostOp, log?: Uint8Array): Promise<HostRecord | undefined> {
    if (this.#closed) return Promise.reject(new StoreError("E_STORE_CLOSED", `host store ${this.where} is closed`));
    const at = Date.now();
    const previous = this.#records.get(mac);
    const record = applyOp(previous, mac, op, at);
    if (record === previous && op.op !== "forget") return Promise.resolve(record);
    if (record) this.#records.set(mac, record);
    else this.#records.delete(mac);
    this.#tell({ mac, op: op.op, record, previous, remote: false });
    const listed = this.#listed(mac);
    if (!listed && record && !previous) this.#bound();
    // A MAC the lab does not list: only its BSDP choice and Secure Boot mark are written (durablePart).
    const kept = (r: HostRecord | undefined) => r !== undefined && durablePart(r, listed) !== undefined;
    if (!listed && (!isKeptForUnlisted(op) || (op.op === "forget" && !kept(previous)))) return Promise.resolve(record);
    const keep = record ? durablePart(record, listed) : undefined;
    return this.#enqueue(mac, async () => {
      const stored = await this.#backend.persist(mac, op, at, keep, { durable: isDurableOp(op), log });
      if (stored !== undefined) this.#remote(mac, stored === "gone" ? undefined : stored, op.op);
    }).then(() => this.#records.get(mac));
  }

  /**
   * Runs `work` after this MAC's earlier writes. A write that fails is said once (until one succeeds
   * again) and retried with back-off until it lands or the store closes: the caller's promise rejects at
   * the first failure (the API answers 503), the write itself is not dropped.
   */
  #enqueue(mac: Mac, work: () => Promise<void>): Promise<void> {
    let settle!: (err?: unknown) => void;
    const result = new Promise<void>((resolve, reject) => (settle = (err) => (err === undefined ? resolve() : reject(err))));
    const run = async () => {
      let delay = 250;
      let told = false;
      for (;;) {
        if (this.#closed) return settle(new StoreError("E_STORE_CLOSED", `host store ${this.where} closed before a write for ${mac} landed`));
        try {
          await work();
          if (this.#failing) this.#log.info(`host store ${this.where}: writing again`);
          this.#failing = undefined;
          return settle();
        } catch (err) {
          const why = errorMessage(err);
          if (this.#failing === undefined && this.#retry) this.#log.warn(`host store ${this.where}: cannot write (${why}); kept in memory and retried until it works`);
          this.#failing = why;
          if (!told) settle(err instanceof StoreError ? err : new StoreError("E_STORE_WRITE", `host store ${this.where}: ${why}`, { cause: err }));
          told = true;
          if (!this.#retry) return;
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 30_000);
        }
      }
    };
    const p = (this.#queues.get(mac) ?? Promise.resolve()).then(run);
    this.#queues.set(mac, p);
    void p.then(() => {
      if (this.#queues.get(mac) === p) this.#queues.delete(mac);
    });
    return result;
  }

  /** The durable part of every record (what a snapshot of the file backend holds). */
  *#kept(): Iterable<HostRecord> {
    for (const [mac, r] of this.#records) {
      const keep = durablePart(r, this.#listed(mac));
      if (keep) yield keep;
    }
  }

  /** An operation another writer made and already kept: applied to memory, told, not written again. */
  #remoteOp(mac: Mac, op: HostOp, at: number): void {
    const previous = this.#records.get(mac);
    const record = applyOp(previous, mac, op, at);
    if (record === previous && op.op !== "forget") return;
    if (record) this.#records.set(mac, record);
    else this.#records.delete(mac);
    this.#tell({ mac, op: op.op, record, previous, remote: true });
  }

  /** A record as another instance (or the backend, answering a write) has it. */
  #remote(mac: Mac, record: HostRecord | undefined, op: OpName | "sync"): void {
    const previous = this.#records.get(mac);
    let next = record;
    if (!this.#listed(mac)) {
      // Of a MAC the lab does not list only the durable part travels: merged into what memory follows.
      if (previous && record) next = { ...previous, bsdp: record.bsdp, signedLoader: record.signedLoader };
      else if (previous) next = previous.phase ? { ...previous, bsdp: undefined, signedLoader: undefined } : undefined;
      if (sameFacts(next, previous)) return;
    } else if (record && previous && (record.rev < previous.rev || sameFacts(record, previous))) {
      if (record.rev > previous.rev) this.#records.set(mac, record);
      return;
    }
    if (!next && !previous) return;
    if (next) this.#records.set(mac, next);
    else this.#records.delete(mac);
    this.#tell({ mac, op, record: next, previous, remote: true });
  }

  #reload(all: HostRecord[]): void {
    const seen = new Set<Mac>();
    for (const r of all) {
      seen.add(r.mac);
      this.#remote(r.mac, r, "sync");
    }
    // Unlisted MACs followed in memory only are not in a reload; only what the backend keeps can go.
    for (const [mac, r] of this.#records) if (!seen.has(mac) && durablePart(r, this.#listed(mac))) this.#remote(mac, undefined, "sync");
  }

  #tell(c: HostChange): void {
    for (const w of this.#watchers) {
      try {
        w(c);
      } catch (err) {
        if (!this.#watcherFailed) this.#log.warn(`a watcher of the host store failed (said once): ${errorMessage(err)}`);
        this.#watcherFailed = true;
      }
    }
  }

  /** Past the bound of unlisted MACs, the eighth changed longest ago are forgotten (their kept part too). */
  #bound(): void {
    const max = LIMITS.hosts.maxStoredUnlisted;
    if (this.#records.size - this.book.hosts.length <= max) return;
    const unlisted = [...this.#records.values()].filter((r) => !this.#listed(r.mac));
    if (unlisted.length <= max) return;
    unlisted.sort((a, b) => a.updated - b.updated);
    for (const r of unlisted.slice(0, Math.max(1, Math.floor(max / 8)))) void this.#apply(r.mac, { op: "forget" }).catch(() => {});
  }
}
