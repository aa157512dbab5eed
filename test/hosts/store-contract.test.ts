/**
 * The host store's contract, run against both backends: the files in a state directory, and a real
 * PostgreSQL (Debian's, started here on a Unix socket). The same operations must mean the same on both:
 * what a restart keeps, what another instance (for the file store: `netboot hosts` beside the server) sees
 * and how fast, what is never written (the phases of MACs the lab does not list), and what a store that
 * cannot be read does (stops, with one line naming it, and never arms a done host again).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../../src/errors.ts";
import { bookFromFlags, type HostBook } from "../../src/hosts/book.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import type { HostChange, HostStore } from "../../src/hosts/store/store.ts";
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
      const s3 = await open(where);
      expect(s3.get(U)?.bsdp).toEqual({ image: undefined });
      await s3.close();
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
    const err = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toMatch(/hosts\.journal: line 2 is not a host operation/);
    // Nothing was rewritten: A is still done.
    const s3 = await openHostStore({ url: undefined, stateDir: dir }, book, memoryLogger(), "client").catch(() => undefined);
    expect(s3).toBeUndefined();
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
    const away = await openHostStore({ url: "postgres://netboot:secret-pw@localhost/x?host=/tmp/no-such-dir", stateDir: tempDir() }, book, memoryLogger()).then(() => undefined, (e: unknown) => e);
    expect((away as Error).message).toMatch(/^host store postgres:\/\/netboot:\*\*\*\*@localhost\/x\?host=\/tmp\/no-such-dir: cannot connect/);
    expect((away as Error).message).not.toContain("secret-pw");
  });
});
