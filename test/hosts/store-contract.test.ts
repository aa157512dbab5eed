/**
 * The host store's contract, run against both backends: the files in a state directory, and a real
 * PostgreSQL (Debian's, started here on a Unix socket). The same operations must mean the same on both:
 * what a restart keeps, what another instance (for the file store: `netboot hosts` beside the server) sees
 * and how fast, what is never written (the phases of MACs the lab does not list), and what a store that
 * cannot be read does (stops, with one line naming it, and never arms a done host again).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { redactUrl } from "../../src/config.ts";
import { StoreError } from "../../src/errors.ts";
import { bookFromFlags, type HostBook } from "../../src/hosts/book.ts";
import { FileBackend } from "../../src/hosts/store/file.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { PgBackend } from "../../src/hosts/store/postgres.ts";
import { applyOp, sameFacts, type HostRecord } from "../../src/hosts/store/record.ts";
import { MirroredStore, type BackendHooks, type HostChange, type HostStore, type StoreBackend } from "../../src/hosts/store/store.ts";
import { memoryLogger } from "../../src/log.ts";
import type { Mac } from "../../src/wire/mac.ts";
import { startPostgres, type Postgres } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/tools.ts";

const A = "52:54:00:00:31:01" as Mac;
const B = "52:54:00:00:31:02" as Mac;
const U = "52:54:00:00:31:99" as Mac; // not listed
const book: HostBook = bookFromFlags({ allow: [A, B], allowAny: false, ks: undefined, image: "esxi" });

let pg: Postgres;
let dbs = 0;
beforeAll(() => {
  pg = startPostgres();
});
afterAll(() => pg?.stop());

interface Backend {
  name: string;
  /** A fresh place to keep a lab: a state directory, or a new database. */
  fresh(): { stateDir: string; url: string | undefined };
  /** Another writer of the same lab: a second instance (postgres), `netboot hosts` beside the server (file). */
  role2: "server" | "client";
}

const backends: Backend[] = [
  { name: "file", fresh: () => ({ stateDir: tempDir("store-"), url: undefined }), role2: "client" },
  { name: "postgres", fresh: () => ({ stateDir: tempDir("store-"), url: pg.createDb(`lab${++dbs}`) }), role2: "server" },
];

/**
 * A real backend whose writes wait until released: what the store shows while a write is under way. Only
 * the timing is ours; every write lands in the real files or database.
 */
class Held implements StoreBackend {
  #held: Promise<void> | undefined;
  #release = () => {};
  readonly inner: StoreBackend;
  constructor(inner: StoreBackend) {
    this.inner = inner;
  }
  get kind() {
    return this.inner.kind;
  }
  get where() {
    return this.inner.where;
  }
  /** `answers`: the write is made at once, only its answer waits (it arrives late). */
  #answers = false;
  hold(opts: { answers?: boolean } = {}): void {
    this.#answers = opts.answers === true;
    this.#held = new Promise((r) => (this.#release = r));
  }
  release(): void {
    this.#held = undefined;
    this.#release();
  }
  load() {
    return this.inner.load();
  }
  async persist(...a: Parameters<StoreBackend["persist"]>) {
    if (!this.#answers) await this.#held;
    const answer = await this.inner.persist(...a);
    if (this.#answers) await this.#held;
    return answer;
  }
  failureLog(mac: Mac) {
    return this.inner.failureLog(mac);
  }
  tokens(...a: Parameters<StoreBackend["tokens"]>) {
    return this.inner.tokens(...a);
  }
  attach(hooks: BackendHooks) {
    this.inner.attach(hooks);
  }
  close() {
    return this.inner.close();
  }
}

const bookOf = (...macs: Mac[]) => bookFromFlags({ allow: macs, allowAny: false, ks: undefined, image: "esxi" });
/** What a record says, its revision and time aside. */
const facts = (r: HostRecord | undefined) => (r ? { ...r, rev: 0, updated: 0 } : undefined);

const until = async (ok: () => boolean, ms: number) => {
  const t0 = Date.now();
  while (!ok() && Date.now() - t0 < ms) await Bun.sleep(10);
  return Date.now() - t0;
};

for (const b of backends) {
  describe(`host store contract: ${b.name}`, () => {
    const open = (where: { stateDir: string; url: string | undefined }, role: "server" | "client" = "server") => openHostStore(where, book, memoryLogger(), role);

    test("every listed host has its token from the start, the same after a restart; an unlisted MAC has none until asked", async () => {
      const where = b.fresh();
      const s1 = await open(where);
      const ta = s1.get(A)?.token;
      expect(ta).toMatch(/^[0-9a-f]{32}$/);
      expect(s1.get(B)?.token).toMatch(/^[0-9a-f]{32}$/);
      expect(s1.get(B)?.token).not.toBe(ta);
      expect(s1.get(U)).toBeUndefined();
      await s1.close();
      const s2 = await open(where);
      expect(s2.get(A)?.token).toBe(ta!);
      expect(await s2.token(A)).toBe(ta!);
      await s2.close();
    });

    test("phases: marks with their times, a restart of the install forgets the last one's; done survives a restart", async () => {
      const where = b.fresh();
      const s = await open(where);
      await s.mark(A, "offered", { restart: true });
      await s.mark(A, "loader");
      await s.mark(A, "modules");
      const r = s.get(A)!;
      expect(r.phase).toBe("modules");
      expect(Object.keys(r.reached).sort()).toEqual(["loader", "modules", "offered"]);
      expect(r.startedAt).toBe(r.reached.offered!);
      const done = await s.done(A);
      expect(done.phase).toBe("done");
      expect(done.doneAt).toBeGreaterThanOrEqual(r.startedAt!);
      await s.close();
      const again = await open(where);
      expect(again.get(A)).toMatchObject({ phase: "done", doneAt: done.doneAt, startedAt: r.startedAt });
      // A new install (mode install) starts from scratch.
      await again.mark(A, "offered", { restart: true });
      expect(again.get(A)).toMatchObject({ phase: "offered", doneAt: undefined, reached: { offered: expect.any(Number) } });
      expect(Object.keys(again.get(A)!.reached)).toEqual(["offered"]);
      await again.close();
    });

    test("failed keeps the reason and the installer's log; rearm forgets the install but not the token", async () => {
      const where = b.fresh();
      const s = await open(where);
      const token = s.get(B)!.token;
      await s.mark(B, "installing", { restart: true });
      const log = new TextEncoder().encode("line 1\nerror: no disk found\n");
      await s.failed(B, "error: no disk found", log);
      await s.close();
      const s2 = await open(where);
      expect(s2.get(B)).toMatchObject({ phase: "failed", failure: "error: no disk found", failureLog: true });
      expect(new TextDecoder().decode(await s2.failureLog(B))).toBe("line 1\nerror: no disk found\n");
      await s2.rearm(B);
      expect(s2.get(B)).toMatchObject({ phase: undefined, failedAt: undefined, failure: undefined, startedAt: undefined, token });
      await s2.close();
      const s3 = await open(where);
      expect(s3.get(B)).toMatchObject({ phase: undefined, token });
      await s3.close();
    });

    test("an unlisted MAC: its phases are followed in memory only; its BSDP choice and Secure Boot mark are kept", async () => {
      const where = b.fresh();
      const s = await open(where);
      await s.mark(U, "offered", { restart: true });
      await s.bsdp(U, 0x81000123);
      await s.signedLoader(U, "iPXE never started");
      expect(s.get(U)).toMatchObject({ phase: "offered", bsdp: { image: 0x81000123 }, signedLoader: { reason: "iPXE never started" } });
      await s.close();
      const s2 = await open(where);
      expect(s2.get(U)).toMatchObject({ phase: undefined, bsdp: { image: 0x81000123 }, signedLoader: { reason: "iPXE never started" } });
      await s2.signedLoader(U, undefined);
      await s2.bsdp(U, null);
      expect(s2.get(U)?.signedLoader).toBeUndefined();
      expect(s2.get(U)?.bsdp).toEqual({ image: undefined });
      await s2.close();
      // Neither kept now: nothing of it is left.
      const s3 = await open(where);
      expect(s3.get(U)).toBeUndefined();
      await s3.close();
    });

    test("done, failed, rearm and a token reach memory and the watchers only once written; a mark after one waits its turn", async () => {
      const where = b.fresh();
      const log = memoryLogger();
      const listed = (m: Mac) => book.lookup(m) !== undefined;
      const held = new Held(where.url ? await PgBackend.open(where.url, log, listed) : new FileBackend(where.stateDir, { log, role: "server" }));
      const s = await MirroredStore.open(book, held, log);
      const told: string[] = [];
      s.watch((c) => told.push(`${c.op} ${c.record?.phase}`));
      await s.mark(A, "offered", { restart: true });
      held.hold();
      let acked = false;
      const done = s.done(A).then(() => (acked = true));
      const mark = s.mark(A, "offered", { restart: true }); // a new install, asked right after the done
      await Bun.sleep(100);
      // Not written yet: nobody hears of it, and the request path does not see it.
      expect([s.get(A)?.phase, acked, told]).toEqual(["offered", false, ["mark offered"]]);
      held.release();
      await done;
      await mark;
      expect(told).toEqual(["mark offered", "done done", "mark offered"]);
      const mine = s.get(A);
      await s.close();
      // Memory was what a restart reads, in the same order.
      const again = await open(where);
      expect(facts(again.get(A))).toEqual(facts(mine));
      await again.close();
    });

    test("a MAC listed after its first facts keeps them, with its new token", async () => {
      const where = b.fresh();
      const s = await open(where);
      await s.bsdp(U, 5);
      await s.signedLoader(U, "iPXE never started");
      await s.close();
      const withU = bookOf(A, B, U);
      const s2 = await openHostStore(where, withU, memoryLogger());
      const token = s2.get(U)?.token;
      expect(token).toMatch(/^[0-9a-f]{32}$/);
      expect(s2.get(U)).toMatchObject({ bsdp: { image: 5 }, signedLoader: { reason: "iPXE never started" } });
      await s2.mark(U, "offered", { restart: true });
      await s2.close();
      const s3 = await openHostStore(where, withU, memoryLogger());
      expect(s3.get(U)).toMatchObject({ token, phase: "offered", bsdp: { image: 5 }, signedLoader: { reason: "iPXE never started" } });
      await s3.close();
    });

    test("a host taken out of the lab file keeps its token and its done, and a new install of it is kept", async () => {
      const where = b.fresh();
      const s = await open(where);
      const token = s.get(A)!.token;
      await s.done(A);
      await s.close();
      const onlyB = bookOf(B);
      const s2 = await openHostStore(where, onlyB, memoryLogger());
      expect(s2.get(A)).toMatchObject({ token, phase: "done" });
      expect((await s2.snapshot(A)).listed).toBe(true);
      await s2.mark(A, "offered", { restart: true });
      await s2.close();
      const s3 = await openHostStore(where, onlyB, memoryLogger());
      expect(s3.get(A)).toMatchObject({ token, phase: "offered" });
      await s3.close();
    });

    test("a flood of made-up Macs that only speak BSDP writes nothing", async () => {
      const where = b.fresh();
      const s = await open(where);
      const made = (i: number) => `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` as Mac;
      for (let i = 0; i < 300; i++) await s.bsdp(made(i));
      expect(s.get(made(0))?.bsdp).toEqual({ image: undefined }); // followed in memory (the TFTP block cap)
      await s.close();
      if (where.url) expect(pg.psql(new URL(where.url).pathname.slice(1), "select count(*) from netboot_hosts where rev > 0").trim()).toBe("2");
      else expect(Object.keys(JSON.parse(readFileSync(join(where.stateDir, "hosts.json"), "utf8")).hosts).sort()).toEqual([A, B]);
      const s2 = await open(where);
      expect((await s2.list()).filter((h) => !h.listed)).toEqual([]);
      await s2.close();
    });

    test("the same operation twice changes nothing and tells nobody", async () => {
      const s = await open(b.fresh());
      const told: HostChange[] = [];
      s.watch((c) => told.push(c));
      await s.bsdp(U, 7);
      await s.bsdp(U, 7);
      await s.bsdp(U);
      await s.mark(A, "loader");
      await s.mark(A, "loader");
      expect(told.map((c) => `${c.mac} ${c.op}`)).toEqual([`${U} bsdp`, `${A} mark`]);
      await s.close();
    });

    test(`a change made by ${b.role2 === "client" ? "`netboot hosts` beside the server" : "another instance"} reaches the server within 1 s, and its watchers`, async () => {
      const where = b.fresh();
      const s = await open(where);
      await s.done(A);
      const told: HostChange[] = [];
      s.watch((c) => told.push(c));
      const other = await open(where, b.role2);
      expect(other.get(A)?.phase).toBe("done"); // it reads what the server wrote
      await other.rearm(A);
      const took = await until(() => s.get(A)?.phase === undefined, 1000);
      expect(s.get(A)?.phase).toBeUndefined();
      expect(took).toBeLessThan(1000);
      expect(told.some((c) => c.mac === A && c.remote && c.record?.phase === undefined && c.previous?.phase === "done")).toBe(true);
      // And the other way (postgres: both are servers; file: the client reads the files again).
      await s.done(B);
      if (b.role2 === "server") {
        await until(() => other.get(B)?.phase === "done", 1000);
        expect(other.get(B)?.phase).toBe("done");
      }
      await other.close();
      await s.close();
      const after = await open(where);
      expect(after.get(A)?.phase).toBeUndefined();
      expect(after.get(B)?.phase).toBe("done");
      await after.close();
    });

    test("instances starting together on a new lab agree on every host's token", async () => {
      const where = b.fresh();
      const [s, other] = await Promise.all([open(where), open(where, b.role2)]);
      if (b.role2 === "server") expect(other.get(A)?.token).toBe(s.get(A)!.token!);
      else {
        // `netboot hosts` opened after the server's start reads the tokens it made.
        const late = await open(where, "client");
        expect(late.get(A)?.token).toBe(s.get(A)!.token!);
        await late.close();
      }
      const [t1, t2] = await Promise.all([s.token(A), (b.role2 === "server" ? other : s).token(A)]);
      expect(t1).toBe(t2);
      await other.close();
      await s.close();
      const again = await open(where);
      expect(again.get(A)?.token).toBe(t1);
      await again.close();
    });
  });
}

test("postgres: two instances writing one host at once end where the database is", async () => {
  const url = pg.createDb("race");
  const [s1, s2] = await Promise.all([openHostStore({ url, stateDir: tempDir() }, book, memoryLogger()), openHostStore({ url, stateDir: tempDir() }, book, memoryLogger())]);
  // Few phases: the two often mark the same one (nothing to write for the second, whose memory must still follow the row).
  const phases = ["loader", "bootcfg", "modules"] as const;
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 300; i++) {
    const s = rand() < 0.5 ? s1 : s2;
    const r = rand();
    if (r < 0.75) ops.push(s.mark(A, phases[Math.floor(rand() * phases.length)]!, { restart: rand() < 0.1 }));
    else if (r < 0.9) ops.push(s.done(A));
    else ops.push(s.rearm(A));
    if (i % 3 === 0) await Bun.sleep(rand() * 3);
  }
  await Promise.allSettled(ops);
  const fresh = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger());
  await until(() => sameFacts(s1.get(A), fresh.get(A)) && sameFacts(s2.get(A), fresh.get(A)), 3000);
  expect(facts(s1.get(A))).toEqual(facts(fresh.get(A)));
  expect(facts(s2.get(A))).toEqual(facts(fresh.get(A)));
  await Promise.all([s1.close(), s2.close(), fresh.close()]);
});

/** Two instances on a new database: s1's writes (or their answers) can be held, s2 writes at once. */
async function heldAndOther(db: string) {
  const url = pg.createDb(db);
  const log = memoryLogger();
  const held = new Held(await PgBackend.open(url, log, (m) => book.lookup(m) !== undefined));
  const s1 = await MirroredStore.open(book, held, log);
  const s2 = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger());
  return { url, held, s1, s2 };
}

test("postgres: what one instance marks while the other's same mark is on its way ends as the row has it", async () => {
  const { url, held, s1, s2 } = await heldAndOther("same-mark");
  held.hold();
  const first = s1.mark(A, "loader");
  await Bun.sleep(5);
  await s2.mark(A, "loader"); // the row's time is s2's
  await Bun.sleep(200); // s1 hears of it (NOTIFY) while its own write waits
  held.release();
  await first;
  const row = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger());
  expect(s1.get(A)?.reached.loader).toBe(row.get(A)!.reached.loader!);
  expect(facts(s1.get(A))).toEqual(facts(row.get(A)));
  await Promise.all([s1.close(), s2.close(), row.close()]);
});

test("postgres: another instance's change that arrives while this one's older answer is on its way is not lost", async () => {
  const { url, held, s1, s2 } = await heldAndOther("late-answer");
  await s1.mark(A, "offered", { restart: true });
  held.hold({ answers: true });
  const first = s1.mark(A, "loader"); // written now; its answer comes late
  await Bun.sleep(100);
  await s2.mark(A, "bootcfg"); // on top of it, in the database
  await Bun.sleep(200); // s1 hears of it (NOTIFY) while its own answer waits
  held.release();
  await first;
  await until(() => s1.get(A)?.phase === "bootcfg", 1000);
  const row = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger());
  expect(row.get(A)?.phase).toBe("bootcfg");
  expect(facts(s1.get(A))).toEqual(facts(row.get(A)));
  await Promise.all([s1.close(), s2.close(), row.close()]);
});

test("a finished install moves only when a new one starts: a late mark does not undo a done", () => {
  const done = applyOp(applyOp(undefined, A, { op: "mark", phase: "modules", restart: true }, 1), A, { op: "done" }, 2)!;
  expect(applyOp(done, A, { op: "mark", phase: "bootcfg" }, 3)).toBe(done);
  expect(applyOp(done, A, { op: "mark", phase: "offered", restart: true }, 3)?.phase).toBe("offered");
});

test("file: a line appended beside a running server that is not an operation is skipped with a warning; the ones after it are applied", async () => {
  const dir = tempDir("store-");
  const log = memoryLogger();
  const s = await openHostStore({ url: undefined, stateDir: dir }, book, log);
  await s.done(A);
  appendFileSync(join(dir, "hosts.journal"), `not json\n${JSON.stringify({ at: Date.now(), mac: A, op: "rearm", by: "someone" })}\n`);
  // Woken as `netboot hosts` wakes it (which itself refuses to start on such a journal).
  await new Promise<void>((resolve) => connect(join(dir, "hosts.wake")).on("close", () => resolve()).on("error", () => resolve()).end("wake\n"));
  await until(() => s.get(A)?.phase === undefined, 1000);
  expect(s.get(A)?.phase).toBeUndefined();
  expect(log.lines.some((l) => l.level === "warn" && /hosts\.journal: a line appended beside this server is not a host operation .*; skipped/.test(l.msg))).toBe(true);
  await s.close();
  // The stop folded memory into a snapshot: the next start reads it.
  const again = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger());
  expect(again.get(A)).toMatchObject({ phase: undefined, token: expect.any(String) });
  await again.close();
});

describe("a store that cannot be read stops the start with one line naming it, and arms nobody", () => {
  test("file: hosts.json that is not JSON, not a host state file, or a record that is not one", async () => {
    for (const [content, why] of [
      ["{torn", /is not a host state file \(/],
      ["[1,2]", /is not a host state file \(no hosts object\)/],
      [JSON.stringify({ format: "netboot-hosts", version: 2, hosts: { [A]: { mac: A, phase: "nonsense" } } }), /hosts\.52:54:00:00:31:01 is not a host record \(phase "nonsense" is not one\)/],
      [JSON.stringify({ format: "netboot-hosts", version: 9, hosts: {} }), /written by a newer netboot \(version 9\)/],
    ] as const) {
      const dir = tempDir("store-");
      writeFileSync(join(dir, "hosts.json"), content);
      const err = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).toContain(join(dir, "hosts.json"));
      expect((err as Error).message.split("\n").length).toBe(1);
    }
  });

  test("file: a journal line in the middle that is not an operation stops the start; a torn last line is skipped with a warning", async () => {
    const dir = tempDir("store-");
    const s = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger());
    await s.done(A);
    await s.close();
    const line = (o: object) => JSON.stringify(o) + "\n";
    writeFileSync(join(dir, "hosts.journal"), line({ at: 1, mac: B, op: "mark", phase: "loader" }) + `{"at":2,"mac":"${A}","op":"re`);
    const log = memoryLogger();
    const s2 = await openHostStore({ url: undefined, stateDir: dir }, book, log);
    expect(s2.get(A)?.phase).toBe("done");
    expect(s2.get(B)?.phase).toBe("loader");
    expect(log.lines.some((l) => l.level === "warn" && /last line was cut short/.test(l.msg))).toBe(true);
    await s2.close();
    writeFileSync(join(dir, "hosts.journal"), `{"at":2,"mac":"${A}","op":"rearm"}\nnot json\n` + line({ at: 3, mac: B, op: "done" }));
    const before = [readFileSync(join(dir, "hosts.json")), readFileSync(join(dir, "hosts.journal"))];
    const err = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toMatch(/hosts\.journal: line 2 is not a host operation/);
    // Nothing was rewritten: the snapshot (A done) and the journal are as they were, byte for byte.
    expect([readFileSync(join(dir, "hosts.json")), readFileSync(join(dir, "hosts.journal"))]).toEqual(before);
    expect(JSON.parse(before[0]!.toString()).hosts[A].phase).toBe("done");
  });

  test("postgres: a row that is not a host record; a database that is not there; nothing listening", async () => {
    const url = pg.createDb("broken");
    const s = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger());
    await s.done(A);
    await s.close();
    pg.psql("broken", `update netboot_hosts set record = '{"mac":"${A}","phase":42}' where mac = '${A}'`);
    const err = await openHostStore({ url, stateDir: tempDir() }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/netboot_hosts is not a host record \(phase is not text\); fix it, or delete it/);
    expect((err as Error).message).toContain("postgres://netboot@localhost/broken");
    const missing = await openHostStore({ url: pg.url("nope"), stateDir: tempDir() }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect((missing as Error).message).toMatch(/host store postgres:\/\/netboot@localhost\/nope.*database "nope" does not exist: create it first/);
    // `netboot hosts` on a database no server has used: nothing listed, nothing created, a write refused in one line.
    const empty = pg.createDb("empty");
    const client = await openHostStore({ url: empty, stateDir: tempDir() }, book, memoryLogger(), "client");
    expect(await client.list()).toHaveLength(2); // the book's hosts, with no records
    expect((await client.list()).every((h) => h.record === undefined)).toBe(true);
    expect(((await client.done(A).then(() => undefined, (e: unknown) => e)) as Error).message).toContain("no netboot tables there yet; start `netboot serve` with this --store first");
    await client.close();
    expect(pg.psql("empty", "select count(*) from pg_tables where tablename like 'netboot%'").trim()).toBe("0");
    const away = await openHostStore({ url: "postgres://netboot:secret-pw@localhost/x?host=/tmp/no-such-dir", stateDir: tempDir() }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect((away as Error).message).toMatch(/^host store postgres:\/\/netboot:\*\*\*\*@localhost\/x\?host=\/tmp\/no-such-dir: cannot connect/);
    expect((away as Error).message).not.toContain("secret-pw");
  });

  test("a URL as it is shown: the password goes, in the user part (whole, even with an @ or / in it) and in the query", () => {
    expect(redactUrl("postgres://u:secret@h:5432/db")).toBe("postgres://u:****@h:5432/db");
    expect(redactUrl("postgres://u:p@ss/w@h/db")).toBe("postgres://u:****@h/db");
    expect(redactUrl("postgres://u@h/db?password=x&sslmode=require")).toBe("postgres://u@h/db?password=****&sslmode=require");
    expect(redactUrl("postgres://h/db?sslpassword=abc")).toBe("postgres://h/db?sslpassword=****");
    expect(redactUrl("postgresql:///lab?host=/run/postgresql&user=netboot")).toBe("postgresql:///lab?host=/run/postgresql&user=netboot");
  });
});
