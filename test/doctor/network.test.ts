/**
 * `netboot doctor` in network namespaces: with dnsmasq holding UDP 67 it names dnsmasq and its PID and
 * exits 1; another DHCP server on the link is reported with what netboot will do about it; on a clean link
 * it exits 0.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bun, cli, repo } from "../helpers/cli.ts";
import { startDnsmasq } from "../helpers/dhcp-clients.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireTool } from "../helpers/tools.ts";

const rootOnly = process.getuid?.() === 0 ? describe : describe.skip;

interface Finding {
  level: "ok" | "info" | "warn" | "fail";
  text: string;
  fix?: string;
}

rootOnly("doctor in namespaces", () => {
  let lan: Lan;
  beforeAll(() => {
    for (const t of ["ip", "dnsmasq"]) requireTool(t);
    lan = createLan(228, [{ name: "srv" }, { name: "site" }]);
  });
  afterAll(() => lan?.destroy());
  const doctor = (args: string[]) => cli(["doctor", "--iface", "lan0", "--probe-wait", "2s", ...args], { cmd: ["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts")], timeoutMs: 30_000 });

  test("a clean link: every check passes, exit 0", async () => {
    const r = await doctor([]);
    expect(r.stdout).toContain("nothing blocks serving");
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.code).toBe(0);
    const json = JSON.parse((await doctor(["--json"])).stdout) as { findings: Finding[] };
    expect(json.findings.filter((f) => f.level === "fail")).toEqual([]);
    // It looked at what it says it looks at: the ports, the interface, the link, iPXE.
    const text = json.findings.map((f) => f.text).join("\n");
    for (const re of [/UDP 67/, /UDP 69/, /TCP 80/, /lan0/, /iPXE/]) expect(text).toMatch(re);
  }, 60_000);

  test("dnsmasq holding UDP 67 on this machine: named with its PID, exit 1", async () => {
    const dnsmasq = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces", "--dhcp-range=10.228.0.100,10.228.0.150,10m", "--dhcp-leasefile=/dev/null", "--user=root", "--group=root"], { stdout: "ignore", stderr: "ignore" });
    try {
      await Bun.sleep(500);
      const r = await doctor([]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^FAIL .*UDP 67 \\(DHCP\\) is held by dnsmasq \\(PID ${dnsmasq.pid}\\)`, "m"));
      expect(r.stdout).toMatch(/problems? blocks? serving/);
    } finally {
      dnsmasq.kill("SIGTERM");
      await dnsmasq.exited;
    }
  }, 60_000);

  test("another DHCP server on the link (dnsmasq next door, which pings an address ~3 s before offering it) is found by the probe", async () => {
    const site = await startDnsmasq(lan, "site", 100, 150);
    try {
      const json = JSON.parse((await doctor(["--json", "--probe-wait", "6s"])).stdout) as { findings: Finding[] };
      const seen = json.findings.find((f) => f.text.includes("10.228.0.2"));
      expect(seen?.text).toBe("DHCP server(s) 10.228.0.2 answer on lan0: --dhcp auto runs netboot as proxyDHCP beside them (addresses come from them)");
      expect(seen?.level).toBe("info");
    } finally {
      await site.stop();
    }
  }, 60_000);
});
