/**
 * The fuzz cases over the wire (test/helpers/wire-fuzz.ts: mutated DHCP, BSDP and TFTP packets from one
 * address, broadcast and unicast, ports 67, 4011 and 69) against `netboot serve --dhcp server` in a
 * namespace the test creates. Afterwards it still gives busybox udhcpc a lease, tftp-hpa and curl their
 * files byte-exact, and its RSS grew by less than 20 MB.
 * NETBOOT_WIRE_FUZZ (default 20,000) sets the count; `npm run bench -- hardening` sends 100,000.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { udhcpc } from "../helpers/dhcp-clients.ts";
import { bun, repo } from "../helpers/cli.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";
import { requireRoot } from "../helpers/netns.ts";

for (const t of ["ip", "busybox", "tftp", "curl", "xorriso"]) requireTool(t);
requireRoot();
const COUNT = Number(process.env.NETBOOT_WIRE_FUZZ ?? 20_000);
const iso = makeEsxiIso();
const want = xorrisoListing(iso).get("/B.B00")!.sha256!;
const dir = tempDir("wire-fuzz-");
let lan: Lan;
let srv: Served;

beforeAll(async () => {
  lan = createLan(216, [{ name: "srv" }, { name: "fuzz" }, { name: "cli", ip: null }, { name: "peer" }]);
  srv = await serve([iso, "--iface", "lan0", "--dhcp", "server", "--force", "--pool", "10.216.0.100-10.216.0.200", "--http-port", "8080", "--state-dir", join(dir, "state")], { ns: lan.nodes.srv!.ns });
}, 60_000);
afterAll(async () => {
  await srv?.stop();
  lan?.destroy();
});

const rssMb = () => Number(readFileSync(`/proc/${srv.proc.pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;

/** A lease, a TFTP download and an HTTP download, each from a real client, each checked. */
async function stillServes(tag: string): Promise<void> {
  const lease = await udhcpc(lan, "cli");
  expect({ tag, ip: lease.ip?.startsWith("10.216.0.") }).toEqual({ tag, ip: true });
  const got = join(dir, `b-${tag}`);
  const t = lan.exec("peer", ["tftp", "-m", "binary", "10.216.0.1", "-c", "get", "esxi/B.B00", got]);
  expect({ tag, code: t.code, err: t.err }).toEqual({ tag, code: 0, err: "" });
  expect(sha256(new Uint8Array(readFileSync(got)))).toBe(want);
  const c = lan.exec("peer", ["sh", "-c", "curl -sf http://10.216.0.1:8080/esxi/B.B00 | sha256sum"]);
  expect(c.out.split(" ")[0]).toBe(want);
}

test(`${COUNT.toLocaleString("en")} fuzzed packets over the wire: still answers DHCP, TFTP and HTTP; RSS grew < 20 MB`, async () => {
  await stillServes("before");
  const before = rssMb();
  const r = lan.exec("fuzz", [bun, join(repo, "test/helpers/wire-fuzz.ts"), "--server", "10.216.0.1", "--count", String(COUNT), "--seed", "1"]);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.out.trim().split("\n").pop()!) as { sent: number; answers: number; seconds: number };
  expect(out.sent).toBe(COUNT);
  expect(srv.proc.exitCode).toBeNull();
  await stillServes("after");
  const after = rssMb();
  console.error(`[wire-fuzz] ${out.sent} packets in ${out.seconds.toFixed(1)} s, ${out.answers} answers; RSS ${before.toFixed(1)} → ${after.toFixed(1)} MB`);
  expect(after - before).toBeLessThan(20);
  // The log did not drown: refusals past the caps are counted once a second, not line by line.
  const lines = srv.log().split("\n").length;
  expect(lines).toBeLessThan(COUNT / 4);
}, 120_000 + COUNT / 50);
