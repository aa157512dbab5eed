/**
 * The host store: the one owner of what netboot knows of each MAC that must outlive a restart (smee's
 * per-MAC backend, with the lab entry beside it). Its interface is async; its records are also kept in
 * memory, written through on every change and refreshed when another instance (or `netboot hosts` beside a
 * running server) changes one, so the request path reads them without a round trip (`get`).
 *
 * Two backends behind one contract (test/hosts/store-contract.test.ts runs both): files in --state-dir
 * (file.ts, the default) and PostgreSQL (postgres.ts, several instances sharing one lab). A backend
 * persists operations in order, per MAC; this class keeps the memory (the same reducer, record.ts), tells
 * the watchers, and retries a write that failed until it lands. A phase mark is in memory (and told) at
 * once and written behind; an operation someone acts on (done, failed, rearm, a token in a kickstart) is
 * in memory, told and acknowledged only once it is durable, and the marks of that MAC that follow it wait
 * their turn behind it, so memory never shows what a crash would take back, nor in another order.
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
  /** The installer's %post said done, and the installed system is yet to answer: resolves once durable. */
  installed(mac: Mac): Promise<HostRecord>;
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
  /** No operation is written but not yet in memory (what records() gives may be snapshotted). */
  settled(): boolean;
}

/** What a backend does: keep operations in order, durably when asked, and say what others changed. */
export interface StoreBackend {
  readonly kind: "file" | "postgres";
  readonly where: string;
  /** Every record kept (a listed host's whole, an unlisted MAC's durable part). */
  load(): Promise<HostRecord[]>;
  /**
   * Keeps one operation (the backend writes what durablePart keeps of its result); `durable` means on
   * disk, or committed, before this resolves. Resolves with the record as the backend now has it when it
   * may differ from what this instance's memory makes of the operation (another instance wrote between),
   * "gone" when there is none now, else undefined.
   */
  persist(mac: Mac, op: HostOp, at: number, opts: { durable: boolean; log?: Uint8Array | undefined }): Promise<HostRecord | undefined | "gone">;
  failureLog(mac: Mac): Promise<Uint8Array | undefined>;
  /**
   * Tokens for many hosts at once (a lab's first start), durably; a host that has one keeps it. Returns
   * every such host's record as the backend now has it. Called after load, before attach.
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
  /** Each record's revision as the backend last said it (PostgreSQL counts every instance's changes). */
  readonly #backendRev = new Map<Mac, number>();
  /** Per MAC: operations queued and not yet written, and of them the ones memory waits for (deferred). */
  readonly #pending = new Map<Mac, { ops: number; deferred: number }>();
  readonly #watchers = new Set<(c: HostChange) => void>();
  readonly #queues = new Map<Mac, Promise<void>>();
  /** A token being made for a MAC: a second ask waits for the same one. */
  readonly #minting = new Map<Mac, Promise<string>>();
  /** The newest record another writer left while this instance had writes of that MAC under way (undefined: gone). */
  readonly #behind = new Map<Mac, HostRecord | undefined>();
  /** Writes waiting to be retried: woken at close. */
  readonly #sleeping = new Set<() => void>();
  #failing: string | undefined;
  #closed = false;
  #watcherFailed = false;
  #retry = true;

  private constructor(book: HostBook, backend: StoreBackend, log: Logger) {
    this.book = book;
    this.#backend = backend;
    this.#log = log;
  }

  /**
   * Loads every record, gives every listed host its token (durably: kickstarts carry it), then follows
   * what others change. `tokens: false` (`netboot hosts`): none made; `retry: false`: a failed write is
   * said, not retried.
   */
  static async open(book: HostBook, backend: StoreBackend, log: Logger, opts: { tokens?: boolean; retry?: boolean } = {}): Promise<MirroredStore> {
    const store = new MirroredStore(book, backend, log);
    store.#retry = opts.retry !== false;
    for (const r of await backend.load()) store.#loaded(r);
    const tokens = opts.tokens !== false;
    if (tokens) {
      const missing = book.hosts.filter((h) => !store.#records.get(h.mac)?.token).map((h) => ({ mac: h.mac, token: randomBytes(16).toString("hex") }));
      if (missing.length) for (const r of await backend.tokens(missing, Date.now())) store.#loaded(r);
    }
    backend.attach({
      records: () => store.#kept(),
      op: (mac, op, at) => store.#remoteOp(mac, op, at),
      record: (mac, r) => store.#fromBackend(mac, r, "sync"),
      reload: (all) => store.#reload(all),
      settled: () => [...store.#pending.values()].every((p) => p.deferred === 0),
    });
    // One another instance was writing just then: the one-by-one way, which waits for its row.
    if (tokens) await Promise.all(book.hosts.filter((h) => !store.#records.get(h.mac)?.token).map((h) => store.token(h.mac)));
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

  async installed(mac: Mac): Promise<HostRecord> {
    return (await this.#apply(mac, { op: "installed" }))!;
  }

  async failed(mac: Mac, reason: string, log?: Uint8Array): Promise<void> {
    const kept = log?.length ? log.subarray(0, LIMITS.hosts.maxFailureLog) : undefined;
    await this.#apply(mac, { op: "failed", reason, log: kept !== undefined }, kept);
  }

  async rearm(mac: Mac): Promise<void> {
    await this.#apply(mac, { op: "rearm" });
  }

  token(mac: Mac): Promise<string> {
    const have = this.#records.get(mac)?.token;
    if (have) return Promise.resolve(have);
    let minting = this.#minting.get(mac);
    if (!minting) {
      minting = this.#apply(mac, { op: "token", token: randomBytes(16).toString("hex") })
        .then((r) => r?.token ?? Promise.reject(new StoreError("E_STORE_WRITE", `host store ${this.where}: no token kept for ${mac}`)))
        .finally(() => this.#minting.delete(mac));
      this.#minting.set(mac, minting);
    }
    return minting;
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
    // What is queued gets a last chance to land, then the backend goes; what did not land is said.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all([...this.#queues.values()]), new Promise((r) => (timer = setTimeout(r, LIMITS.hosts.closeWaitMs)))]);
    clearTimeout(timer);
    this.#closed = true;
    for (const wake of this.#sleeping) wake();
    const left = [...this.#pending.entries()];
    if (left.length) {
      const n = left.reduce((sum, [, p]) => sum + p.ops, 0);
      const macs = left.slice(0, 3).map(([m]) => m).join(", ") + (left.length > 3 ? ", …" : "");
      this.#log.error(`host store ${this.where}: ${n} change${n === 1 ? "" : "s"} of ${left.length} host${left.length === 1 ? "" : "s"} (${macs}) not written at stop${this.#failing ? ` (${this.#failing})` : ""}; they are lost`);
    }
    await this.#backend.close();
  }

  // --- internal ---

  /** A host of the lab: in the book, or holding a token (made for listed hosts and kickstarted ones only). */
  #listed(mac: Mac): boolean {
    return this.book.lookup(mac) !== undefined || this.#records.get(mac)?.token !== undefined;
  }

  #facts(mac: Mac): HostFacts {
    const entry = this.book.lookup(mac);
    return { mac, entry, listed: this.#listed(mac), record: this.#records.get(mac) };
  }

  #loaded(r: HostRecord): void {
    this.#records.set(r.mac, r);
    this.#backendRev.set(r.mac, r.rev);
  }

  /** Memory and the watchers, then the backend in this MAC's order; or (deferred) the backend first. */
  #apply(mac: Mac, op: HostOp, log?: Uint8Array): Promise<HostRecord | undefined> {
    if (this.#closed) return Promise.reject(new StoreError("E_STORE_CLOSED", `host store ${this.where} is closed`));
    const at = Date.now();
    const previous = this.#records.get(mac);
    const record = applyOp(previous, mac, op, at);
    if (record === previous) return Promise.resolve(record);
    const listed = this.#listed(mac);
    // A MAC the lab does not list: only what durablePart keeps is written; its phases live in memory.
    const written = listed || (op.op === "forget" ? previous !== undefined && durablePart(previous, false) !== undefined : isKeptForUnlisted(op));
    const deferred = written && (isDurableOp(op) || (this.#pending.get(mac)?.deferred ?? 0) > 0);
    if (!deferred) {
      this.#set(mac, record, previous, op.op, false);
      if (!listed && record && !previous) this.#bound();
      if (!written) return Promise.resolve(record);
    }
    return this.#write(mac, op, at, deferred, log).then(() => this.#records.get(mac));
  }

  #set(mac: Mac, record: HostRecord | undefined, previous: HostRecord | undefined, op: OpName | "sync", remote: boolean): void {
    if (record) this.#records.set(mac, record);
    else this.#records.delete(mac);
    this.#tell({ mac, op, record, previous, remote });
  }

  /**
   * Writes `op` after this MAC's earlier writes. A write that fails is said once (until one succeeds
   * again) and retried with back-off until it lands or the store closes: the caller's promise rejects at
   * the first failure (the API answers 503), the write itself is not dropped.
   */
  #write(mac: Mac, op: HostOp, at: number, deferred: boolean, log: Uint8Array | undefined): Promise<void> {
    const pending = this.#pending.get(mac) ?? { ops: 0, deferred: 0 };
    pending.ops++;
    if (deferred) pending.deferred++;
    this.#pending.set(mac, pending);
    const unpend = () => {
      pending.ops--;
      if (deferred) pending.deferred--;
      if (pending.ops === 0 && this.#pending.get(mac) === pending) this.#pending.delete(mac);
    };
    let settle!: (err?: unknown) => void;
    const result = new Promise<void>((resolve, reject) => (settle = (err) => (err === undefined ? resolve() : reject(err))));
    const run = async () => {
      let delay: number = LIMITS.hosts.retryFirstMs;
      let told = false;
      for (;;) {
        if (this.#closed) return settle(new StoreError("E_STORE_CLOSED", `host store ${this.where} closed before a write for ${mac} landed`));
        try {
          const stored = await this.#backend.persist(mac, op, at, { durable: isDurableOp(op), log });
          if (this.#failing) this.#log.info(`host store ${this.where}: writing again`);
          this.#failing = undefined;
          this.#landed(mac, op, at, stored, deferred, unpend);
          return settle();
        } catch (err) {
          const why = errorMessage(err);
          if (this.#failing === undefined && this.#retry) this.#log.warn(`host store ${this.where}: cannot write (${why}); retried until it works`);
          this.#failing = why;
          if (!told) settle(err instanceof StoreError ? err : new StoreError("E_STORE_WRITE", `host store ${this.where}: ${why}`, { cause: err }));
          told = true;
          if (!this.#retry) return unpend();
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              this.#sleeping.delete(wake);
              resolve();
            };
            const timer = setTimeout(wake, delay);
            this.#sleeping.add(wake);
          });
          delay = Math.min(delay * 2, LIMITS.hosts.retryMaxMs);
        }
      }
    };
    const p = (this.#queues.get(mac) ?? Promise.resolve()).then(run, run);
    this.#queues.set(mac, p);
    void p.finally(() => {
      if (this.#queues.get(mac) === p) this.#queues.delete(mac);
    });
    return result;
  }

  /** A write landed: a deferred operation reaches memory and the watchers now; else the backend's answer is weighed. */
  #landed(mac: Mac, op: HostOp, at: number, stored: HostRecord | "gone" | undefined, deferred: boolean, unpend: () => void): void {
    if (!deferred) {
      unpend();
      // A MAC the lab does not list: memory is the whole of it (the backend has a part), so its own write's answer changes nothing.
      if (stored !== undefined && (this.#listed(mac) || (stored !== "gone" && stored.token))) this.#fromBackend(mac, stored === "gone" ? undefined : stored, op.op);
      else if (stored !== undefined) this.#noteRev(mac, stored === "gone" ? undefined : stored);
      return this.#catchUp(mac);
    }
    const previous = this.#records.get(mac);
    const record = stored === undefined ? applyOp(previous, mac, op, at) : stored === "gone" ? undefined : stored;
    // An answer older than what another writer left meanwhile (which was written on top of it): that one.
    if (stored !== undefined && !this.#noteRev(mac, record)) {
      unpend();
      return this.#catchUp(mac);
    }
    // In memory before the count drops (the file backend snapshots memory only when nothing waits).
    if (record !== previous && !(record && previous && sameFacts(record, previous))) this.#set(mac, record, previous, op.op, false);
    else if (record) this.#records.set(mac, record);
    unpend();
    this.#catchUp(mac);
  }

  /** Nothing of this MAC under way any more: what another writer left meanwhile, when newer than the answers. */
  #catchUp(mac: Mac): void {
    if (this.#pending.has(mac) || !this.#behind.has(mac)) return;
    const record = this.#behind.get(mac);
    this.#behind.delete(mac);
    this.#fromBackend(mac, record, "sync");
  }

  /** Remembers the backend's revision; false when `record` is older than one already seen (a late answer). */
  #noteRev(mac: Mac, record: HostRecord | undefined): boolean {
    if (!record) {
      this.#backendRev.delete(mac);
      return true;
    }
    const known = this.#backendRev.get(mac);
    if (known !== undefined && record.rev < known) return false;
    this.#backendRev.set(mac, record.rev);
    return true;
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
    if (record === previous) return;
    this.#set(mac, record, previous, op.op, true);
  }

  /**
   * A record as the backend has it (another instance's change, or the answer to a write that found one).
   * Revisions are the backend's; while this instance has writes of that MAC under way its memory is ahead:
   * the record waits (#behind) and is weighed against the last write's answer (#catchUp).
   */
  #fromBackend(mac: Mac, record: HostRecord | undefined, op: OpName | "sync"): void {
    if (!this.#noteRev(mac, record)) return;
    if (this.#pending.has(mac)) return void this.#behind.set(mac, record);
    const previous = this.#records.get(mac);
    let next = record;
    if (!this.#listed(mac) && !record?.token) {
      // Of a MAC the lab does not list only the durable part travels: merged into what memory follows
      // (its phases, and that it speaks BSDP).
      if (previous) next = { ...previous, bsdp: record?.bsdp ?? (previous.bsdp ? { image: undefined } : undefined), signedLoader: record?.signedLoader };
      if (next && !record && !next.phase && !next.bsdp) next = undefined;
    }
    if (!next && !previous) return;
    if (next && previous && sameFacts(next, previous)) return;
    this.#set(mac, next, previous, op, true);
  }

  #reload(all: HostRecord[]): void {
    this.#backendRev.clear();
    const seen = new Set<Mac>();
    for (const r of all) {
      seen.add(r.mac);
      this.#fromBackend(r.mac, r, "sync");
    }
    // Unlisted MACs followed in memory only are not in a reload; only what the backend keeps can go.
    for (const [mac, r] of this.#records) if (!seen.has(mac) && durablePart(r, this.#listed(mac))) this.#fromBackend(mac, undefined, "sync");
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
