/**
 * DHCP under hostile load, in namespaces the test creates: a flood of DISCOVERs from made-up MACs cannot
 * keep a listed host (one without a reservation) out of the pool, the flood's offers expire in seconds,
 * and one MAC in a DISCOVER loop is answered a few times a second while busybox udhcpc next to it gets its
 * lease. The flood and the loop come from test/helpers/dhcp-load.ts; the lease from busybox udhcpc.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { udhcpc } from "../helpers/dhcp-clients.ts";
import { bun, repo } from "../helpers/cli.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";
import { requireRoot } from "../helpers/netns.ts";

for (const t of ["ip", "busybox"]) requireTool(t);
requireRoot();
const iso = makeEsxiIso();
const LISTED = "02:00:00:aa:cc:01";
const OTHER = "02:00:00:aa:cc:02";

function load(lan: Lan, node: string, args: string[]): { sent?: number; offers?: number } {
  const r = lan.exec(node, [bun, join(repo, "test/helpers/dhcp-load.ts"), ...args]);
  if (r.code !== 0) throw new Error(`dhcp-load ${args.join(" ")}: ${r.err}`);
  return JSON.parse(r.out.trim().split("\n").pop()!);
}

describe("a flood of DISCOVERs from made-up MACs", () => {
  let lan: Lan;
  let srv: Served;
  const dir = tempDir("dhcp-flood-");
  beforeAll(async () => {
    lan = createLan(214, [{ name: "srv" }, { name: "flood", ip: null }, { name: "host", ip: null, mac: LISTED }, { name: "other", ip: null, mac: OTHER }]);
    const lab = join(dir, "lab.yaml");
    writeFileSync(lab, `images: { esxi: ${iso} }\ndefaults: { image: esxi, mode: install }\nhosts:\n  - mac: ${LISTED}\n    hostname: esx01\n`);
    // A pool of 10 addresses: the flood takes them all within a second.
    srv = await serve(["--config", lab, "--iface", "lan0", "--dhcp", "server", "--state-dir", join(dir, "state"), "--http-port", "8080", "--tftp-port", "6969", "--pool", "10.214.0.100-10.214.0.109"], { ns: lan.nodes.srv!.ns });
  }, 60_000);
  afterAll(async () => {
    await srv?.stop();
    lan?.destroy();
  });

  test("the listed host still gets an address, an unlisted one waits for the flood's offers to expire (10 s)", async () => {
    const flood = load(lan, "flood", ["flood", "--iface", "lan0", "--count", "2000", "--ms", "1000"]);
    // Ten offers, then nothing left for made-up MACs.
    expect(flood.offers).toBe(10);
    const t0 = Date.now();
    const other = await udhcpc(lan, "other");
    expect(other.ip).toBeUndefined(); // the pool is held by the flood's offers
    const host = await udhcpc(lan, "host");
    expect(host.ip).toMatch(/^10\.214\.0\.10\d$/);
    expect(srv.log()).toContain(`${LISTED} REQUEST → ACK ${host.ip}`);
    // The flood's offers are held 10 s: after that an unlisted client gets one of their addresses.
    await Bun.sleep(Math.max(0, 10_500 - (Date.now() - t0)));
    const later = await udhcpc(lan, "other");
    expect(later.ip).toMatch(/^10\.214\.0\.10\d$/);
    expect(later.ip).not.toBe(host.ip);
  }, 60_000);

  test("one MAC in a DISCOVER loop gets a burst and then 5 answers a second; udhcpc beside it gets its lease", async () => {
    const looping = Bun.spawn(["ip", "netns", "exec", lan.nodes.flood!.ns, bun, join(repo, "test/helpers/dhcp-load.ts"), "flood", "--iface", "lan0", "--count", "1500", "--ms", "3000", "--mac", "02:00:00:ee:ee:ee"], { stdout: "pipe" });
    await Bun.sleep(500);
    const beside = await udhcpc(lan, "host");
    expect(beside.ip).toMatch(/^10\.214\.0\.10\d$/);
    await looping.exited;
    const out = JSON.parse((await new Response(looping.stdout as ReadableStream).text()).trim()) as { sent: number; offers: number };
    expect(out.sent).toBe(1500);
    // 20 at once + 5/s over ~3.5 s: at most ~38, and at least the burst.
    expect(out.offers).toBeGreaterThanOrEqual(20);
    expect(out.offers).toBeLessThanOrEqual(40);
    // Said once a second at most: 3 s of loop, a handful of lines, not 1,480.
    const lines = srv.log().split("\n").filter((l) => /past the rate limit/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(lines[0]).toMatch(/dropped \d+ requests? from 02:00:00:ee:ee:ee past the rate limit \(20 at once, 5 a second per MAC\)/);
  }, 60_000);
});
