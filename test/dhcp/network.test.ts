/**
 * The DHCP server with real clients and peers, in network namespaces the tests create: busybox udhcpc for
 * leases, tshark's dissector on the replies, isc-dhcp-relay for relayed requests, dnsmasq as the site's
 * server, and two links to prove answers stay on the chosen one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startCapture, tshark } from "../helpers/capture.ts";
import { startDnsmasq, udhcpc, type Daemon } from "../helpers/dhcp-clients.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";
import { requireRoot } from "../helpers/netns.ts";

for (const t of ["ip", "busybox", "tcpdump", "tshark", "dhcrelay", "dnsmasq"]) requireTool(t);
requireRoot();
const iso = makeEsxiIso();

describe("DHCP server mode with udhcpc, checked by tshark", () => {
  let lan: Lan;
  let srv: Served;
  const state = tempDir("dhcp-state-");
  const args = () => [
    iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--state-dir", state, "--http-port", "8080", "--tftp-port", "6969",
    "--pool", "10.211.0.100-10.211.0.120", "--router", "10.211.0.254", "--dns", "10.211.0.53,10.211.0.54", "--domain", "lab.test",
    "--reserve", "02:00:00:aa:bb:01=10.211.0.50=esx01", "--lease-time", "600",
  ];
  beforeAll(async () => {
    lan = createLan(211, [{ name: "srv" }, { name: "cli", ip: null, mac: "02:00:00:aa:bb:01" }, { name: "cli2", ip: null, mac: "02:00:00:aa:bb:02" }]);
    srv = await serve(args(), { ns: lan.nodes.srv!.ns });
  }, 60_000);
  afterAll(async () => {
    await srv?.stop();
    lan?.destroy();
  });

  test("a reserved client gets its address and hostname, with router, DNS, domain and lease time", async () => {
    const cap = await startCapture(lan.nodes.cli!.ns, "lan0");
    const lease = await udhcpc(lan, "cli");
    await cap.stop();
    expect(lease).toMatchObject({ ip: "10.211.0.50", subnet: "255.255.255.0", router: "10.211.0.254", dns: "10.211.0.53 10.211.0.54", domain: "lab.test", lease: "600", serverid: "10.211.0.1", hostname: "esx01" });

    // Every reply decodes without a malformed mark; the fields are the ones intended.
    const verbose = tshark(["-r", cap.file, "-Y", "udp.srcport == 67", "-V"]);
    expect(verbose).toContain("Dynamic Host Configuration Protocol (Offer)");
    expect(verbose).toContain("Dynamic Host Configuration Protocol (ACK)");
    expect(verbose).not.toMatch(/Malformed|Expert Info \(Error/);
    const fields = tshark(["-r", cap.file, "-Y", "udp.srcport == 67", "-T", "fields", "-E", "separator=|", "-e", "dhcp.option.dhcp", "-e", "dhcp.ip.your", "-e", "dhcp.option.subnet_mask", "-e", "dhcp.option.router", "-e", "dhcp.option.domain_name_server", "-e", "dhcp.option.domain_name", "-e", "dhcp.option.ip_address_lease_time", "-e", "dhcp.option.dhcp_server_id", "-e", "dhcp.option.hostname"]);
    const rows = fields.trim().split("\n").map((l) => l.split("|"));
    expect(rows.map((r) => r[0])).toEqual(["2", "5"]);
    for (const r of rows) expect(r.slice(1)).toEqual(["10.211.0.50", "255.255.255.0", "10.211.0.254", "10.211.0.53,10.211.0.54", "lab.test", "600", "10.211.0.1", "esx01"]);
  }, 60_000);

  test("another client gets an address from the pool", async () => {
    const lease = await udhcpc(lan, "cli2");
    const last = Number(lease.ip?.split(".")[3]);
    expect(lease.ip?.startsWith("10.211.0.")).toBe(true);
    expect(last).toBeGreaterThanOrEqual(100);
    expect(last).toBeLessThanOrEqual(120);
  }, 60_000);

  test("leases survive a restart and a crash: the same client gets the same address", async () => {
    const first = (await udhcpc(lan, "cli2")).ip;
    await srv.stop("SIGTERM");
    srv = await serve(args(), { ns: lan.nodes.srv!.ns });
    expect(srv.log()).toMatch(/leases in .* \([1-9]\d* loaded\)/);
    expect((await udhcpc(lan, "cli2")).ip).toBe(first!);
    await srv.stop("SIGKILL"); // no compaction: the journal carries it
    srv = await serve(args(), { ns: lan.nodes.srv!.ns });
    expect((await udhcpc(lan, "cli2")).ip).toBe(first!);
    expect(JSON.parse(readFileSync(join(state, "leases.json"), "utf8")).leases.length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

describe("only the chosen link", () => {
  test("with --iface lan0, a client on the server's other link gets nothing", async () => {
    const a = createLan(212, [{ name: "srv" }, { name: "cliA", ip: null }]);
    const b = createLan(213, [{ name: "srv", ns: a.nodes.srv!.ns, ifname: "lan1" }, { name: "cliB", ip: null }]);
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969"], { ns: a.nodes.srv!.ns });
      expect(srv.log()).toContain("SO_BINDTODEVICE");
      expect(await udhcpc(b, "cliB")).toEqual({});
      expect((await udhcpc(a, "cliA")).ip).toMatch(/^10\.212\.0\./);
      expect(srv.log()).not.toMatch(/10\.213\./);
    } finally {
      await srv?.stop();
      b.destroy();
      a.destroy();
    }
  }, 90_000);
});

describe("only the chosen link, by the receiving interface of each request (macOS's way, run on Linux)", () => {
  // macOS cannot tie a socket's receiving side to an interface (IP_BOUND_IF restricts only sending): the
  // DHCP socket asks for each datagram's receiving interface and drops the others (net/iface-udp.ts).
  // The same worker, with Linux's IP_PKTINFO in place of IP_RECVIF, runs here without SO_BINDTODEVICE.
  test("a client on the other link gets nothing, its DISCOVERs are dropped, the chosen link's client gets a lease", async () => {
    const a = createLan(216, [{ name: "srv" }, { name: "cliA", ip: null }]);
    const b = createLan(217, [{ name: "srv", ns: a.nodes.srv!.ns, ifname: "lan1" }, { name: "cliB", ip: null }]);
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--force", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969", "-v"], { ns: a.nodes.srv!.ns, env: { NETBOOT_DHCP_RECEIVE: "filtered" } });
      expect(srv.log()).toContain("(IP_PKTINFO filter)");
      expect(srv.log()).not.toContain("SO_BINDTODEVICE");
      expect(await udhcpc(b, "cliB")).toEqual({});
      await srv.waitLog(/dropped \d+ datagram\(s\) that came in on interface \d+, not lan0/, 5000);
      expect((await udhcpc(a, "cliA")).ip).toMatch(/^10\.216\.0\./);
      expect(srv.log()).not.toMatch(/10\.217\./);
    } finally {
      await srv?.stop();
      b.destroy();
      a.destroy();
    }
  }, 90_000);
});

describe("relay", () => {
  test("a client behind isc-dhcp-relay gets an address of its own subnet, through the relay", async () => {
    const core = createLan(214, [{ name: "srv" }, { name: "relay" }]); // 10.214.0.1, .2
    const edge = createLan(215, [{ name: "relay", ns: core.nodes.relay!.ns, ifname: "lan1" }, { name: "cli", ip: null }]); // relay 10.215.0.1
    core.exec("srv", ["ip", "route", "add", "10.215.0.0/24", "via", "10.214.0.2"]);
    let srv: Served | undefined;
    const relay = Bun.spawn(["ip", "netns", "exec", core.nodes.relay!.ns, "dhcrelay", "-d", "-4", "-id", "lan1", "-iu", "lan0", "10.214.0.1"], { stdout: "ignore", stderr: "pipe" });
    try {
      srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969", "--pool", "10.214.0.100-10.214.0.110,10.215.0.100-10.215.0.110/24"], { ns: core.nodes.srv!.ns });
      await Bun.sleep(500);
      const lease = await udhcpc(edge, "cli");
      expect(lease).toMatchObject({ router: "10.215.0.1", subnet: "255.255.255.0" });
      expect(lease.ip).toMatch(/^10\.215\.0\.1(0\d|10)$/);
      expect(srv.log()).toMatch(/DISCOVER via relay 10\.215\.0\.1 → OFFER 10\.215\.0\.10\d/);
    } finally {
      relay.kill("SIGTERM");
      await relay.exited;
      await srv?.stop();
      edge.destroy();
      core.destroy();
    }
  }, 90_000);
});

describe("beside another DHCP server", () => {
  let lan: Lan;
  let dnsmasq: Daemon;
  beforeAll(async () => {
    lan = createLan(216, [{ name: "srv" }, { name: "site" }, { name: "cli", ip: null }]);
    dnsmasq = await startDnsmasq(lan, "site", 150, 199);
  }, 30_000);
  afterAll(async () => {
    await dnsmasq?.stop();
    lan?.destroy();
  });

  test("--dhcp server refuses to start (a second DHCP server breaks networks)", async () => {
    const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, process.execPath, join(import.meta.dir, "../../src/main.ts"), "serve", iso, "--iface", "lan0", "--dhcp", "server", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(1);
    expect(err).toMatch(/--dhcp server refused: DHCP server\(s\) 10\.216\.0\.2 answered on lan0/);
    expect(err).toContain("--force");
  }, 60_000);

  test("--dhcp auto finds it and runs as proxyDHCP; the client still gets its address from the site's server", async () => {
    const srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969"], { ns: lan.nodes.srv!.ns });
    try {
      expect(srv.log()).toMatch(/--dhcp auto: DHCP server\(s\) 10\.216\.0\.2 answered on lan0, so netboot runs as proxyDHCP/);
      const lease = await udhcpc(lan, "cli");
      expect(lease.serverid).toBe("10.216.0.2");
      expect(Number(lease.ip?.split(".")[3])).toBeGreaterThanOrEqual(150);
    } finally {
      await srv.stop();
    }
  }, 60_000);

  test("--force starts the server anyway (the user was told)", async () => {
    const srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--force", "--state-dir", tempDir(), "--http-port", "8080", "--tftp-port", "6969"], { ns: lan.nodes.srv!.ns });
    try {
      expect(srv.log()).toMatch(/DHCP server on lan0/);
    } finally {
      await srv.stop();
    }
  }, 60_000);
});
