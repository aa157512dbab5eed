import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { LeasePool, type PoolConfig } from "../../src/dhcp/leases.ts";
import { openLeaseStore } from "../../src/dhcp/lease-store.ts";
import { parseIPv4, subnetOf } from "../../src/wire/ipv4.ts";
import { tempDir } from "../helpers/tools.ts";

const ip = (s: string) => parseIPv4(s);
const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";
const C = "52:54:00:00:00:0c";

function pool(over: Partial<PoolConfig> = {}, clock = { t: 1_000_000 }) {
  const p = new LeasePool(
    {
      start: ip("10.0.0.10"),
      end: ip("10.0.0.12"),
      subnet: subnetOf(ip("10.0.0.1"), 24),
      exclude: [ip("10.0.0.11")],
      reservations: [{ mac: C, ip: ip("10.0.0.50"), hostname: "esx-c" }],
      leaseSeconds: 3600,
      offerSeconds: 60,
      declineSeconds: 600,
      ...over,
    },
    () => clock.t,
  );
  return { p, clock };
}

describe("lease pool", () => {
  test("offers skip excluded addresses; a client keeps its address across DISCOVERs", () => {
    const { p } = pool();
    expect(p.offer(A)!.ip).toBe(ip("10.0.0.10"));
    expect(p.offer(B)!.ip).toBe(ip("10.0.0.12")); // .11 is the server's
    expect(p.offer(A)!.ip).toBe(ip("10.0.0.10"));
  });

  test("the pool runs out; an offer held for another client is not handed out", () => {
    const { p } = pool();
    p.offer(A);
    p.offer(B);
    expect(p.offer("52:54:00:00:00:0d")).toBeUndefined();
  });

  test("an expired offer is free again", () => {
    const { p, clock } = pool();
    p.offer(A);
    p.offer(B);
    clock.t += 61_000;
    expect(p.offer("52:54:00:00:00:0d")).toBeDefined();
  });

  test("the address a client asks for, when free", () => {
    const { p } = pool();
    expect(p.offer(A, ip("10.0.0.12"))!.ip).toBe(ip("10.0.0.12"));
    expect(p.offer(B, ip("10.0.0.12"))!.ip).toBe(ip("10.0.0.10")); // taken: another one
  });

  test("reservations: always the reserved address, with its hostname; nobody else gets it", () => {
    const { p } = pool();
    expect(p.offer(C)).toMatchObject({ ip: ip("10.0.0.50"), hostname: "esx-c" });
    expect(p.request(A, ip("10.0.0.50"))).toMatchObject({ ok: false });
    expect(p.request(C, ip("10.0.0.10"))).toMatchObject({ ok: false });
    expect(p.request(C, ip("10.0.0.50"))).toMatchObject({ ok: true });
  });

  test("request binds for the lease time; another client cannot take a bound address", () => {
    const { p, clock } = pool();
    const l = p.offer(A)!;
    const r = p.request(A, l.ip);
    expect(r).toMatchObject({ ok: true, lease: { state: "bound", expires: clock.t + 3600_000 } });
    expect(p.request(B, l.ip)).toMatchObject({ ok: false, reason: expect.stringContaining("leased to 52:54:00:00:00:0a") });
    expect(p.request(A, ip("10.0.0.11"))).toMatchObject({ ok: false }); // excluded
    expect(p.request(A, ip("10.0.1.5"))).toMatchObject({ ok: false }); // outside the range
  });

  test("release frees the address; decline keeps it out for a while", () => {
    const { p, clock } = pool();
    const a = p.request(A, ip("10.0.0.10"));
    expect(a.ok).toBe(true);
    expect(p.release(A, ip("10.0.0.10"))).toBe(true);
    expect(p.offer(B, ip("10.0.0.10"))!.ip).toBe(ip("10.0.0.10"));
    expect(p.decline(B, ip("10.0.0.10"))).toBe(true);
    expect(p.offer(A, ip("10.0.0.10"))!.ip).toBe(ip("10.0.0.12"));
    clock.t += 601_000;
    expect(p.holder(ip("10.0.0.10"))).toBeUndefined();
  });

  test("fresh addresses first, then expired ones", () => {
    const { p, clock } = pool({ end: ip("10.0.0.13") });
    p.request(A, ip("10.0.0.10"));
    clock.t += 3601_000; // A's lease has expired
    expect(p.offer(B)!.ip).toBe(ip("10.0.0.12")); // never leased before
    expect(p.offer(C)!.ip).toBe(ip("10.0.0.50"));
    expect(p.offer("52:54:00:00:00:0d")!.ip).toBe(ip("10.0.0.13"));
    expect(p.offer("52:54:00:00:00:0e")!.ip).toBe(ip("10.0.0.10")); // A's expired address, reused last
  });

  test("a big pool allocates in constant time per client (60 000 clients)", () => {
    const { p } = pool({ start: ip("198.18.1.0"), end: ip("198.18.255.254"), subnet: subnetOf(ip("198.18.0.1"), 16), exclude: [], reservations: [] });
    const t0 = performance.now();
    for (let i = 0; i < 60_000; i++) {
      const mac = `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
      const l = p.offer(mac)!;
      expect(p.request(mac, l.ip).ok).toBe(true);
    }
    expect(performance.now() - t0).toBeLessThan(20_000); // a generous bound: quadratic would take minutes
    expect(p.all().length).toBe(60_000);
  });
});

describe("lease pool under a flood of made-up MACs", () => {
  const listedMac = "52:54:00:00:00:0e";
  const flood = (i: number) => `02:fe:00:00:00:${i.toString(16).padStart(2, "0")}`;
  const floodPool = () => pool({ unlistedOfferSeconds: 10, listed: (m) => m === listedMac || m === C });

  test("offers to unlisted MACs are held 10 s, to listed hosts 60 s", () => {
    const { p, clock } = floodPool();
    expect(p.offer(flood(1))!.expires).toBe(clock.t + 10_000);
    expect(p.offer(listedMac)!.expires).toBe(clock.t + 60_000);
  });

  test("a listed host takes the oldest offer held by an unlisted MAC; that MAC's REQUEST is refused", () => {
    const { p, clock } = floodPool();
    p.offer(flood(1));
    clock.t += 1000;
    p.offer(flood(2));
    expect(p.offer(flood(3))).toBeUndefined(); // exhausted for unlisted MACs
    const taken = p.offer(listedMac)!;
    expect(taken.ip).toBe(ip("10.0.0.10")); // flood(1)'s, the older one
    expect(p.byMac(flood(1))).toBeUndefined();
    expect(p.request(flood(1), ip("10.0.0.10"))).toEqual({ ok: false, reason: `10.0.0.10 is leased to ${listedMac}` });
    expect(p.request(listedMac, taken.ip).ok).toBe(true);
  });

  test("a bound lease is never taken over, and a reservation is never offered to anyone else", () => {
    const { p } = floodPool();
    p.offer(flood(1));
    p.request(flood(1), ip("10.0.0.10"));
    p.offer(flood(2));
    p.request(flood(2), ip("10.0.0.12"));
    expect(p.offer(listedMac)).toBeUndefined();
    for (let i = 3; i < 50; i++) expect(p.offer(flood(i))?.ip).toBeUndefined();
    expect(p.offer(C)!.ip).toBe(ip("10.0.0.50"));
  });
});

describe("lease store: nothing is lost across restarts", () => {
  test("journal before each reply, snapshot by write-then-rename, replay after a crash", () => {
    const dir = tempDir("leases-");
    const s1 = openLeaseStore(dir);
    expect(s1.loaded).toEqual([]);
    const lease = { mac: A, ip: ip("10.0.0.10"), expires: 5_000_000, state: "bound" as const, hostname: "h" };
    s1.record(lease);
    s1.record({ ...lease, expires: 6_000_000 });
    // A crash: no close, no compaction. The next start replays the journal.
    const s2 = openLeaseStore(dir);
    expect(s2.loaded).toEqual([{ ...lease, expires: 6_000_000 }]);
    expect(JSON.parse(readFileSync(join(dir, "leases.json"), "utf8")).leases).toEqual(s2.loaded); // compacted at start
    expect(readFileSync(join(dir, "leases.journal"), "utf8")).toBe("");
    expect(existsSync(join(dir, "leases.json.tmp"))).toBe(false);
    s2.record({ ...lease, ip: ip("10.0.0.12"), mac: B });
    s2.compact([lease]);
    s2.record({ ...lease, mac: C, ip: ip("10.0.0.13") });
    s2.close();
    const s3 = openLeaseStore(dir);
    expect(s3.loaded.map((l) => l.mac).sort()).toEqual([A, C]);
    s3.close();
  });

  test("a torn last journal line (crash mid-write) is skipped, the rest kept", () => {
    const dir = tempDir("leases-");
    const s = openLeaseStore(dir);
    s.record({ mac: A, ip: ip("10.0.0.10"), expires: 1, state: "bound" });
    s.close();
    appendFileSync(join(dir, "leases.journal"), '{"mac":"52:54:00:00:00:0b","ip":16');
    const warnings: string[] = [];
    expect(openLeaseStore(dir, { warn: (m) => warnings.push(m) }).loaded.map((l) => l.mac)).toEqual([A]);
    expect(warnings).toEqual([`${join(dir, "leases.journal")}: 1 line cut short (a crash while writing?) skipped; the leases before it are kept`]);
  });

  test("a corrupt snapshot is a clear error, not an empty table", () => {
    const dir = tempDir("leases-");
    writeFileSync(join(dir, "leases.json"), "{ not json");
    expect(() => openLeaseStore(dir)).toThrow(/is not a lease file/);
  });

  test("sync: resolves once what was recorded is on disk; the calls of one turn share an fsync", async () => {
    const dir = tempDir("leases-");
    const s = openLeaseStore(dir);
    await s.sync(); // nothing written: at once
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      s.record({ mac: A, ip: ip("10.0.0.10") + (i % 3), expires: i, state: "bound" });
      waits.push(s.sync());
    }
    await Promise.all(waits);
    s.record({ mac: B, ip: ip("10.0.0.20"), expires: 1, state: "bound" });
    await s.sync();
    s.close();
    expect(readFileSync(join(dir, "leases.journal"), "utf8").trim().split("\n")).toHaveLength(201);
  });
});
