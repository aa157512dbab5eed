/**
 * kill -9 during DHCP load, in namespaces the test creates: a load client (test/helpers/dhcp-load.ts) runs
 * DORA for many MACs and writes down every ACK the moment it arrives; netboot `--dhcp server` is killed with
 * SIGKILL at a random moment, restarted at once, again and again. Afterwards every ACKed lease is still
 * held by its MAC in the state netboot starts from, and netboot started every time.
 * NETBOOT_KILL_CYCLES (default 8) sets the cycles; `npm run bench -- crash` runs 100.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { openLeaseStore } from "../../src/dhcp/lease-store.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import { bun, repo } from "../helpers/cli.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { tempDir } from "../helpers/tools.ts";
import { requireRoot } from "../helpers/netns.ts";

requireRoot();
const CYCLES = Number(process.env.NETBOOT_KILL_CYCLES ?? 8);
// At most what the /21 pool holds; paced so the load spans every cycle (about 0.4 s of serving each).
const MACS = Number(process.env.NETBOOT_KILL_MACS ?? Math.min(CYCLES * 60, 1800));
const RATE = Math.max(10, Math.round(MACS / (CYCLES * 0.4)));
const iso = makeEsxiIso();
let lan: Lan;
const dir = tempDir("dhcp-crash-");
const state = join(dir, "state");

beforeAll(() => {
  lan = createLan(215, [{ name: "srv" }, { name: "load", ip: null }]);
});
afterAll(() => lan?.destroy());

test(`${CYCLES} × kill -9 under DORA load: every ACKed lease survives, netboot always starts`, async () => {
  const args = [iso, "--iface", "lan0", "--dhcp", "server", "--force", "--state-dir", state, "--http-port", "8080", "--tftp-port", "6969", "--pool", "10.215.0.10-10.215.7.250/21"];
  const acks = join(dir, "acks.ndjson");
  // --force: no 6 s look for another DHCP server at each restart. The pool is a /21 on the server's side; the link itself is a /24, which is all a broadcast DORA needs.
  const client = Bun.spawn(["ip", "netns", "exec", lan.nodes.load!.ns, bun, join(repo, "test/helpers/dhcp-load.ts"), "dora", "--iface", "lan0", "--macs", String(MACS), "--rate", String(RATE), "--out", acks], { stdout: "pipe", stderr: "pipe" });
  let srv: Served | undefined;
  const starts: number[] = [];
  const ackedAt: number[] = [];
  const countAcks = () => (existsSync(acks) ? readFileSync(acks, "utf8").split("\n").filter(Boolean).length : 0);
  try {
    for (let i = 0; i < CYCLES; i++) {
      const t0 = Date.now();
      srv = await serve(args, { ns: lan.nodes.srv!.ns, ready: /ready:/ });
      starts.push(Date.now() - t0);
      // Killed somewhere between 100 and 700 ms into the load, mid-journal-write as likely as not.
      await Bun.sleep(100 + Math.floor(Math.random() * 600));
      await srv.stop("SIGKILL");
      ackedAt.push(countAcks());
    }
    // Once more to let the client finish, then a last kill -9.
    srv = await serve(args, { ns: lan.nodes.srv!.ns, ready: /ready:/ });
    const done = await Promise.race([client.exited, Bun.sleep(120_000).then(() => "timeout")]);
    expect(done).toBe(0);
    await srv.stop("SIGKILL");
  } finally {
    if (client.exitCode === null) client.kill();
    await srv?.stop("SIGKILL");
  }
  const acked = readFileSync(acks, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { mac: string; ip: string });
  expect(acked).toHaveLength(MACS);
  // The load was really cut: ACKs arrived in most cycles, not all before the first kill.
  expect(ackedAt.filter((n, i) => n > (ackedAt[i - 1] ?? 0)).length).toBeGreaterThanOrEqual(Math.ceil(CYCLES / 2));
  expect(ackedAt[0]!).toBeLessThan(MACS);
  // What netboot starts from (snapshot + journal), read as it reads it.
  const store = openLeaseStore(state);
  const byMac = new Map(store.loaded.filter((l) => l.state === "bound").map((l) => [l.mac, formatIPv4(l.ip)]));
  store.close();
  const lost = acked.filter((a) => byMac.get(a.mac) !== a.ip);
  expect(lost).toEqual([]);
  // No address was ACKed to two MACs.
  expect(new Set(acked.map((a) => a.ip)).size).toBe(MACS);
  console.error(`[crash] ${CYCLES} kill -9 cycles, ${MACS} ACKs, 0 lost; start to ready ${Math.min(...starts)}–${Math.max(...starts)} ms`);
}, 60_000 + CYCLES * 5_000);
