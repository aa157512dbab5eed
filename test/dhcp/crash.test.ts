/**
 * kill -9 during DHCP load, in namespaces the test creates, on both host stores (the files of the state
 * directory, and PostgreSQL): a load client (test/helpers/dhcp-load.ts) runs DORA for many MACs and writes
 * down every ACK the moment it arrives, while the lab's installers (test/helpers/done-load.ts) report done
 * and write down every 200; netboot `--dhcp server` is killed with SIGKILL at a random moment, restarted at
 * once, again and again. Afterwards every ACKed lease is still held by its MAC in the state netboot starts
 * from, every acknowledged done is still done in the host store, and netboot started every time.
 * NETBOOT_KILL_CYCLES (default 8) sets the cycles; `npm run bench -- hardening` runs 100.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openLeaseStore } from "../../src/dhcp/lease-store.ts";
import { bookFromFlags } from "../../src/hosts/book.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { memoryLogger } from "../../src/log.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import type { Mac } from "../../src/wire/mac.ts";
import { bun, repo } from "../helpers/cli.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { requireRoot } from "../helpers/netns.ts";
import { startPostgres, type Postgres } from "../helpers/postgres.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { tempDir } from "../helpers/tools.ts";

requireRoot();
const CYCLES = Number(process.env.NETBOOT_KILL_CYCLES ?? 8);
// At most what the /21 pool holds; paced so the load spans every cycle (about 0.4 s of serving each).
const MACS = Number(process.env.NETBOOT_KILL_MACS ?? Math.min(CYCLES * 60, 1800));
const RATE = Math.max(10, Math.round(MACS / (CYCLES * 0.4)));
/** Listed hosts whose installers report done during the cycles. */
const HOSTS = Number(process.env.NETBOOT_KILL_HOSTS ?? Math.min(CYCLES * 6, 250));
const iso = makeEsxiIso();
const hostMac = (i: number) => `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` as Mac;
const macs = Array.from({ length: HOSTS }, (_, i) => hostMac(i + 1));
let lan: Lan;
let pg: Postgres;

beforeAll(() => {
  lan = createLan(215, [{ name: "srv" }, { name: "load", ip: null }, { name: "api" }]);
  pg = startPostgres();
});
afterAll(() => {
  lan?.destroy();
  pg?.stop();
});

for (const backend of ["file", "postgres"] as const) {
  test(`${backend} store: ${CYCLES} × kill -9 under DORA load and done reports: every ACKed lease and every acknowledged done survives`, async () => {
    const dir = tempDir(`crash-${backend}-`);
    const state = join(dir, "state");
    const url = backend === "postgres" ? pg.createDb("crash") : undefined;
    const lab = join(dir, "lab.yaml");
    writeFileSync(lab, `images:\n  esxi: ${iso}\nhosts:\n${macs.map((m) => `  - { mac: "${m}" }`).join("\n")}\n`);
    const args = ["--config", lab, "--iface", "lan0", "--dhcp", "server", "--force", "--state-dir", state, "--http-port", "8080", "--tftp-port", "6969", "--pool", "10.215.0.10-10.215.7.250/21", ...(url ? ["--store", url] : [])];
    // The tokens every listed host got at the first start (what their kickstarts would carry).
    let srv: Served | undefined = await serve(args, { ns: lan.nodes.srv!.ns, ready: /ready:/ });
    await srv.stop("SIGKILL");
    const book = bookFromFlags({ allow: macs, allowAny: false, ks: undefined, image: "esxi" });
    const peek = async () => {
      const s = await openHostStore({ url, stateDir: state }, book, memoryLogger(), "client");
      const out = new Map((await s.list()).map((h) => [h.mac, h.record]));
      await s.close();
      return out;
    };
    const tokens = Object.fromEntries([...(await peek())].map(([m, r]) => [m, r?.token]));
    expect(Object.values(tokens).filter((t) => /^[0-9a-f]{32}$/.test(t ?? ""))).toHaveLength(HOSTS);
    writeFileSync(join(dir, "tokens.json"), JSON.stringify(tokens));

    const acks = join(dir, "acks.ndjson");
    const dones = join(dir, "dones.txt");
    // --force: no 6 s look for another DHCP server at each restart. The pool is a /21 on the server's side; the link itself is a /24, which is all a broadcast DORA needs.
    const client = Bun.spawn(["ip", "netns", "exec", lan.nodes.load!.ns, bun, join(repo, "test/helpers/dhcp-load.ts"), "dora", "--iface", "lan0", "--macs", String(MACS), "--rate", String(RATE), "--out", acks], { stdout: "pipe", stderr: "pipe" });
    const installers = Bun.spawn(["ip", "netns", "exec", lan.nodes.api!.ns, bun, join(repo, "test/helpers/done-load.ts"), "--base", `http://${lan.nodes.srv!.ip}:8080`, "--tokens", join(dir, "tokens.json"), "--out", dones, "--pause", String(Math.max(5, Math.round((CYCLES * 400) / HOSTS / 2)))], { stdout: "pipe", stderr: "pipe" });
    const starts: number[] = [];
    const ackedAt: number[] = [];
    const doneAt: number[] = [];
    const count = (f: string) => (existsSync(f) ? readFileSync(f, "utf8").split("\n").filter(Boolean).length : 0);
    try {
      for (let i = 0; i < CYCLES; i++) {
        const t0 = Date.now();
        srv = await serve(args, { ns: lan.nodes.srv!.ns, ready: /ready:/ });
        starts.push(Date.now() - t0);
        // Killed somewhere between 100 and 700 ms into the load, mid-write as likely as not.
        await Bun.sleep(100 + Math.floor(Math.random() * 600));
        await srv.stop("SIGKILL");
        ackedAt.push(count(acks));
        doneAt.push(count(dones));
      }
      // Once more to let both loads finish, then a last kill -9.
      srv = await serve(args, { ns: lan.nodes.srv!.ns, ready: /ready:/ });
      const finished = await Promise.race([Promise.all([client.exited, installers.exited]), Bun.sleep(120_000).then(() => "timeout")]);
      expect(finished).toEqual([0, 0]);
      await srv.stop("SIGKILL");
    } finally {
      for (const p of [client, installers]) if (p.exitCode === null) p.kill();
      await srv?.stop("SIGKILL");
    }
    const acked = readFileSync(acks, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { mac: string; ip: string });
    expect(acked).toHaveLength(MACS);
    // The loads were really cut: ACKs arrived in most cycles, not all before the first kill.
    expect(ackedAt.filter((n, i) => n > (ackedAt[i - 1] ?? 0)).length).toBeGreaterThanOrEqual(Math.ceil(CYCLES / 2));
    expect(ackedAt[0]!).toBeLessThan(MACS);
    // Dones (an HTTP round trip and an fsync each, slower on a busy machine) came in more than one cycle
    // and not all before the first kill: some were in flight when netboot was killed.
    const doneCycles = doneAt.filter((n, i) => n > (doneAt[i - 1] ?? 0)).length;
    if (doneCycles < 2) throw new Error(`dones came in ${doneCycles} cycle(s) only (counts after each kill: ${doneAt.join(", ")})`);
    expect(doneAt[0]!).toBeLessThan(HOSTS);
    // What netboot starts from (snapshot + journal), read as it reads it.
    const leases = openLeaseStore(state);
    const byMac = new Map(leases.loaded.filter((l) => l.state === "bound").map((l) => [l.mac, formatIPv4(l.ip)]));
    leases.close();
    expect(acked.filter((a) => byMac.get(a.mac) !== a.ip)).toEqual([]);
    // No address was ACKed to two MACs.
    expect(new Set(acked.map((a) => a.ip)).size).toBe(MACS);
    // Every done that got its 200 is done in the store, as the next start reads it.
    const reported = readFileSync(dones, "utf8").split("\n").filter(Boolean);
    expect(reported).toHaveLength(HOSTS);
    const now = await peek();
    expect(reported.filter((m) => now.get(m as Mac)?.phase !== "done")).toEqual([]);
    console.error(`[crash] ${backend}: ${CYCLES} kill -9 cycles, ${MACS} ACKs and ${HOSTS} dones acknowledged, 0 lost; start to ready ${Math.min(...starts)}–${Math.max(...starts)} ms`);
  }, 90_000 + CYCLES * 6_000);
}
