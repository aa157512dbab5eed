/**
 * The PostgreSQL backend of the host store (--store postgres://USER@HOST[:PORT]/DB, or a lab file's
 * server: { store: … }): several netboot instances, each serving its own link, share one lab's hosts.
 * Bun's built-in SQL client (Bun.SQL: no dependency, and LISTEN/NOTIFY with reconnects built in); under
 * Node this backend is refused at start with one line.
 *
 *   netboot_meta        key/value: the schema version (created and migrated at start, under an advisory lock)
 *   netboot_hosts       one row per MAC: the record as JSON (record.ts), its revision
 *   netboot_host_logs   the installers' logs sent to failed_url
 *
 * Every operation is the same reducer as the file backend's, applied to the row, written with a NOTIFY on
 * netboot_hosts that the other instances follow (they read the row again). Most take one statement: an
 * UPDATE of the row at the revision this instance last saw (a phase mark while DHCP answers costs one
 * round trip); when another instance changed it meanwhile, or for a first row, a transaction with the row
 * locked does it again on what is there. After a reconnect of the listening connection everything is
 * read again, since notifications may have been missed meanwhile.
 */
import { LIMITS, redactUrl } from "../../config.ts";
import { errorMessage, StoreError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import type { Mac } from "../../wire/mac.ts";
import { applyOp, blankRecord, durablePart, parseRecord, type HostOp, type HostRecord } from "./record.ts";
import type { BackendHooks, StoreBackend } from "./store.ts";

/** The schema this version writes; a database with a higher one was migrated by a newer netboot. */
const SCHEMA = 1;
const CHANNEL = "netboot_hosts";
/** pg_advisory_xact_lock key: instances starting together migrate one at a time ("netboot" in ASCII). */
const MIGRATE_LOCK = "31054506029395828"; // 0x6e6574626f6f74, as text: a bigint parameter

type Sql = InstanceType<typeof Bun.SQL>;

export class PgBackend implements StoreBackend {
  readonly kind = "postgres" as const;
  readonly where: string;
  readonly #sql: Sql;
  readonly #log: Logger;
  readonly #listed: (mac: Mac) => boolean;
  readonly #by = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  #subscription: { unlisten(): Promise<void> } | undefined;
  /** Each row as this instance last read or wrote it: what the one-statement update expects to find. */
  readonly #seen = new Map<Mac, HostRecord>();
  /** A server follows the other instances (LISTEN); `netboot hosts` only writes. */
  #follows = true;
  /** `netboot hosts` found no tables (no server ever used this database): nothing to list, nothing to change. */
  #absent = false;
  #closed = false;

  private constructor(url: string, sql: Sql, log: Logger, listed: (mac: Mac) => boolean) {
    this.where = redactUrl(url);
    this.#sql = sql;
    this.#log = log;
    this.#listed = listed;
  }

  /** Connects (within LIMITS.hosts.connectMs), creates or migrates the schema; one line when it cannot. */
  static async open(url: string, log: Logger, listed: (mac: Mac) => boolean, role: "server" | "client" = "server"): Promise<PgBackend> {
    const where = redactUrl(url);
    if (typeof Bun === "undefined") {
      throw new StoreError("E_STORE_NODE", `--store ${where}: the PostgreSQL store runs in the Bun build (dist/netboot-*, or bun src/main.ts), not under Node`);
    }
    const sql = new Bun.SQL(url, { max: LIMITS.hosts.pgConnections, connectionTimeout: Math.ceil(LIMITS.hosts.connectMs / 1000), idleTimeout: LIMITS.hosts.pgIdleSeconds, onclose: () => {} });
    const backend = new PgBackend(url, sql, log, listed);
    backend.#follows = role === "server";
    try {
      // A server creates or migrates the schema; `netboot hosts` only reads what is there (none: no hosts).
      if (role === "server") await backend.#migrate();
      else await backend.#check();
    } catch (err) {
      await sql.close().catch(() => {});
      throw err instanceof StoreError ? err : new StoreError("E_STORE_CONNECT", `host store ${where}: ${reachReason(err)}`, { cause: err });
    }
    return backend;
  }

  async load(): Promise<HostRecord[]> {
    if (this.#absent) return [];
    const rows = (await this.#sql`select mac, record from netboot_hosts where rev > 0`) as Array<{ mac: string; record: unknown }>;
    return rows.map((row) => {
      try {
        const r = parseRecord(row.record, row.mac);
        this.#see(r);
        return r;
      } catch (err) {
        throw new StoreError("E_STATE_CORRUPT", `host store ${this.where}: the row of ${row.mac} in netboot_hosts is not a host record (${errorMessage(err)}); fix it, or delete it (DELETE FROM netboot_hosts WHERE mac = '${row.mac}') to arm that host again`);
      }
    });
  }

  /**
   * The reducer on the row as this instance last saw it, written with the other such writes of this
   * batch (LIMITS.hosts.pgBatchMs) in one UPDATE that holds for each row only if nobody changed it since (its revision);
   * else on the locked row (another instance may have changed it since this one's memory did).
   */
  async persist(mac: Mac, op: HostOp, at: number, opts: { log?: Uint8Array | undefined }): Promise<HostRecord | "gone" | undefined> {
    if (this.#absent) throw new StoreError("E_STORE_EMPTY", `host store ${this.where}: no netboot tables there yet; start \`netboot serve\` with this --store first`);
    const seen = this.#seen.get(mac);
    if (seen && !opts.log) {
      const next = applyOp(seen, mac, op, at);
      // Nothing to write: the row as this instance knows it, which memory then follows.
      if (next === seen) return seen;
      const keep = next ? durablePart(next, this.#listed(mac)) : undefined;
      if (keep && (await this.#batched(mac, keep, seen.rev))) {
        this.#see(keep);
        return keep;
      }
    }
    return this.#locked(mac, op, at, opts);
  }

  /** Updates waiting for the batch's statement: one per MAC at most (the store writes a MAC's in order). */
  #batch: Array<{ mac: Mac; keep: HostRecord; prev: number; done: (ok: boolean) => void; fail: (err: unknown) => void }> = [];

  /** True when the row was still at revision `prev` and now holds `keep` (its NOTIFY sent with it). */
  #batched(mac: Mac, keep: HostRecord, prev: number): Promise<boolean> {
    return new Promise((done, fail) => {
      if (this.#batch.push({ mac, keep, prev, done, fail }) === 1) setTimeout(() => void this.#flush(), LIMITS.hosts.pgBatchMs);
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    try {
      const items = JSON.stringify(batch.map((b) => ({ mac: b.mac, record: b.keep, rev: b.keep.rev, prev: b.prev })));
      const rows = (await this.#sql`with v as (select * from jsonb_to_recordset(${items}::text::jsonb) as x(mac text, record jsonb, rev bigint, prev bigint)),
                                         up as (update netboot_hosts h set record = v.record, rev = v.rev, updated_at = now() from v where h.mac = v.mac and h.rev = v.prev returning h.mac, h.rev)
                                    select up.mac, pg_notify(${CHANNEL}, json_build_object('mac', up.mac, 'by', ${this.#by}::text, 'rev', up.rev)::text) from up`) as Array<{ mac: string }>;
      const written = new Set(rows.map((r) => r.mac));
      for (const b of batch) b.done(written.has(b.mac));
    } catch (err) {
      for (const b of batch) b.fail(err);
    }
  }

  /** The reducer on the locked row, in a transaction. */
  async #locked(mac: Mac, op: HostOp, at: number, opts: { log?: Uint8Array | undefined }): Promise<HostRecord | "gone" | undefined> {
    const stored = await this.#sql.begin(async (tx) => {
      // A row to lock first (a placeholder of revision 0 when there is none): two instances writing the
      // first record of a MAC at once then take turns instead of both inserting.
      await tx`insert into netboot_hosts (mac, record, rev) values (${mac}, ${blankRecord(mac, at)}, 0) on conflict (mac) do nothing`;
      const rows = (await tx`select record from netboot_hosts where mac = ${mac} for update`) as Array<{ record: unknown }>;
      const locked = parseRecord(rows[0]!.record, mac);
      const current = locked.rev === 0 ? undefined : locked;
      const listed = this.#listed(mac);
      const next = applyOp(current, mac, op, at);
      if (next === current && op.op !== "forget") {
        if (!current) await tx`delete from netboot_hosts where mac = ${mac} and rev = 0`;
        return current ?? null;
      }
      const keep = next ? durablePart(next, listed) : undefined;
      if (keep) {
        await tx`insert into netboot_hosts (mac, record, rev, updated_at) values (${mac}, ${keep}, ${keep.rev}, now())
                 on conflict (mac) do update set record = excluded.record, rev = excluded.rev, updated_at = now()`;
      } else {
        await tx`delete from netboot_hosts where mac = ${mac}`;
        await tx`delete from netboot_host_logs where mac = ${mac}`;
      }
      if (op.op === "failed" && opts.log) {
        await tx`insert into netboot_host_logs (mac, log, at) values (${mac}, ${opts.log}, now()) on conflict (mac) do update set log = excluded.log, at = now()`;
      }
      await tx`select pg_notify(${CHANNEL}, ${JSON.stringify({ mac, by: this.#by, rev: keep?.rev ?? null })})`;
      return keep ?? "gone";
    });
    if (stored && stored !== "gone") this.#see(stored);
    else if (stored === "gone") this.#seen.delete(mac);
    // null: nothing there and nothing changed (the caller's memory stands).
    return stored === null ? undefined : stored;
  }

  /** One transaction for a whole lab: the rows inserted where there are none, then read back (a host another instance made a token for keeps it). */
  async tokens(minted: ReadonlyArray<{ mac: Mac; token: string }>, at: number): Promise<HostRecord[]> {
    const rows = minted.map(({ mac, token }) => ({ mac, record: applyOp(undefined, mac, { op: "token", token }, at)!, rev: 1 }));
    const stored = (await this.#sql.begin(async (tx) => {
      for (let i = 0; i < rows.length; i += 1000) await tx`insert into netboot_hosts ${tx(rows.slice(i, i + 1000), "mac", "record", "rev")} on conflict (mac) do nothing`;
      return tx`select mac, record from netboot_hosts where rev > 0 and mac in ${tx(minted.map((m) => m.mac))}`;
    })) as Array<{ mac: string; record: unknown }>;
    return stored.map((r) => {
      const rec = parseRecord(r.record, r.mac);
      this.#see(rec);
      return rec;
    });
  }

  async failureLog(mac: Mac): Promise<Uint8Array | undefined> {
    if (this.#absent) return undefined;
    const rows = (await this.#sql`select log from netboot_host_logs where mac = ${mac}`) as Array<{ log: Uint8Array }>;
    return rows[0] ? new Uint8Array(rows[0].log) : undefined;
  }

  /** LISTEN netboot_hosts: another instance's change reaches this one as the row read again. */
  attach(hooks: BackendHooks): void {
    if (!this.#follows) return;
    let first = true;
    void this.#sql
      .listen(
        CHANNEL,
        (payload) => void this.#notified(payload, hooks),
        () => {
          if (first) return void (first = false);
          // Reconnected: what changed meanwhile was not notified to us.
          this.#log.info(`host store ${this.where}: listening again; reading every host`);
          void this.load().then(hooks.reload, (err) => this.#log.warn(`host store ${this.where}: ${errorMessage(err)}`));
        },
      )
      .then(
        (s) => {
          if (this.#closed) void s.unlisten();
          else this.#subscription = s;
        },
        (err) => this.#log.warn(`host store ${this.where}: cannot LISTEN ${CHANNEL} (${errorMessage(err)}); changes made by other instances are not followed`),
      );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#subscription?.unlisten().catch(() => {});
    await this.#sql.close({ timeout: 2 }).catch(() => {});
  }

  // --- internal ---

  /** A row as read or written: kept unless a newer one of it was seen already (answers can arrive out of order). */
  #see(r: HostRecord): void {
    const have = this.#seen.get(r.mac);
    if (!have || r.rev >= have.rev) this.#seen.set(r.mac, r);
  }

  async #notified(payload: string, hooks: BackendHooks): Promise<void> {
    let note: { mac?: string; by?: string };
    try {
      note = JSON.parse(payload) as { mac?: string; by?: string };
    } catch {
      return;
    }
    if (note.by === this.#by || typeof note.mac !== "string") return;
    try {
      const rows = (await this.#sql`select record from netboot_hosts where mac = ${note.mac} and rev > 0`) as Array<{ record: unknown }>;
      const r = rows[0] ? parseRecord(rows[0].record, note.mac) : undefined;
      if (r) this.#see(r);
      else this.#seen.delete(note.mac as Mac);
      hooks.record(note.mac as Mac, r);
    } catch (err) {
      this.#log.warn(`host store ${this.where}: a change to ${note.mac} could not be read (${errorMessage(err)})`);
    }
  }

  /** `netboot hosts`: the schema is there and not newer than this version's (nothing is created). */
  async #check(): Promise<void> {
    const [there] = (await this.#sql`select to_regclass('netboot_meta') is not null as meta, to_regclass('netboot_hosts') is not null as hosts`) as Array<{ meta: boolean; hosts: boolean }>;
    this.#absent = !there?.hosts;
    if (!there?.meta) return;
    const rows = (await this.#sql`select value from netboot_meta where key = 'schema'`) as Array<{ value: string }>;
    const have = rows[0] ? Number(rows[0].value) : 0;
    if (have > SCHEMA) throw new StoreError("E_STORE_VERSION", `host store ${this.where}: its schema (version ${have}) was written by a newer netboot; run that version`);
  }

  async #migrate(): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATE_LOCK}::bigint)`;
      await tx`create table if not exists netboot_meta (key text primary key, value text not null)`;
      const rows = (await tx`select value from netboot_meta where key = 'schema'`) as Array<{ value: string }>;
      const have = rows[0] ? Number(rows[0].value) : 0;
      if (have > SCHEMA) throw new StoreError("E_STORE_VERSION", `host store ${this.where}: its schema (version ${have}) was written by a newer netboot; run that version`);
      if (have < 1) {
        await tx`create table if not exists netboot_hosts (mac text primary key, record jsonb not null, rev bigint not null, updated_at timestamptz not null default now())`;
        await tx`create table if not exists netboot_host_logs (mac text primary key, log bytea not null, at timestamptz not null default now())`;
      }
      if (have !== SCHEMA) await tx`insert into netboot_meta (key, value) values ('schema', ${String(SCHEMA)}) on conflict (key) do update set value = excluded.value`;
    });
  }
}

/** Why a database could not be used, in words, with what to do. */
function reachReason(err: unknown): string {
  const code = (err as { code?: string }).code ?? "";
  const msg = errorMessage(err);
  if (code === "ERR_POSTGRES_CONNECTION_REFUSED" || /refused|ECONNREFUSED|ENOENT/i.test(msg)) return `cannot connect (${msg}): is PostgreSQL running there, and does --store name it?`;
  if (code === "ERR_POSTGRES_CONNECTION_TIMEOUT" || /timeout|timed out/i.test(msg)) return `no answer within ${LIMITS.hosts.connectMs / 1000} s (${msg}): is the address right, and the port open?`;
  if (/password|authentication/i.test(msg)) return `${msg}: give the password in PGPASSWORD, or in the URL`;
  if (/database .* does not exist/i.test(msg)) return `${msg}: create it first (createdb)`;
  if (/permission denied/i.test(msg)) return `${msg}: the user needs to create tables in that database the first time`;
  return msg;
}
