/**
 * A whole lab in network namespaces: three machines (two listed in lab.yaml, one not) against
 * `netboot serve --config lab.yaml --until-done --json`, with busybox udhcpc as their firmware's DHCP
 * (vendor class PXEClient), busybox wget as the installer fetching its kickstart and its %post calling
 * done_url, tcpdump + tshark reading what went on the wire.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCapture, tshark } from "../helpers/capture.ts";
import { udhcpc } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";

for (const t of ["ip", "busybox", "tcpdump", "tshark"]) requireTool(t);
requireRoot();

const NET = 218;
const SRV = `10.${NET}.0.1`;
const A = { mac: "52:54:00:00:21:01", ip: `10.${NET}.0.11`, hostname: "esx01" };
const B = { mac: "52:54:00:00:21:02", ip: `10.${NET}.0.12`, hostname: "esx02" };
const C = { mac: "52:54:00:00:21:03" }; // not listed
const ROOTPW = "S3cret-rootpw-never-logged";
const PXE = ["-V", "PXEClient:Arch:00007:UNDI:003000"];

const iso = makeEsxiIso();
const dir = tempDir("lab-");
writeFileSync(
  join(dir, "esxi.ks"),
  ["vmaccepteula", "install --firstdisk --overwritevmfs", "rootpw {{rootpw}}", "{{network}}", "# host {{hostname}} at {{ip}}, vlan {{vlan}}", "reboot", "%post --interpreter=busybox", 'wget -q -O /dev/null "{{done_url}}" || true', ""].join("\n"),
);
const labFile = (extra = "") => {
  const f = join(tempDir("lab-"), "lab.yaml");
  writeFileSync(
    f,
    `server: { iface: lan0, dhcp: server, force: true, http-port: 8080, tftp-port: 6969, router: 10.${NET}.0.254 }
images:
  esxi: ${iso}
defaults: { image: esxi, mode: once, kickstart: ${join(dir, "esxi.ks")}, vars: { rootpw: { env: TEST_ROOTPW }, vlan: 7 } }
hosts:
  - { mac: "${A.mac}", hostname: ${A.hostname}, ip: ${A.ip} }
  - { mac: "${B.mac}", hostname: ${B.hostname}, ip: ${B.ip}, vars: { vlan: 12 } }
${extra}`,
  );
  return f;
};

function sh(lan: Lan, node: string, cmd: string[]): { code: number; out: string; err: string } {
  return lan.exec(node, cmd);
}

describe("a lab: hosts by MAC, deny by default, kickstarts per host, done callbacks, --until-done", () => {
  let lan: Lan;
  const state = tempDir("lab-state-");
  const lab = labFile();
  beforeAll(() => {
    lan = createLan(NET, [{ name: "srv" }, { name: "a", ip: null, mac: A.mac }, { name: "b", ip: null, mac: B.mac }, { name: "c", ip: null, mac: C.mac }]);
  });
  afterAll(() => lan?.destroy());

  test("listed machines boot and install, the unlisted one gets a plain lease only; --until-done exits 0", async () => {
    const srv = await serve(["--config", lab, "--state-dir", state, "--until-done", "--json"], { ns: lan.nodes.srv!.ns, env: { TEST_ROOTPW: ROOTPW } });
    const cap = await startCapture(lan.nodes.srv!.ns, "lan0");
    const leaseA = await udhcpc(lan, "a", PXE);
    const leaseB = await udhcpc(lan, "b", PXE);
    const leaseC = await udhcpc(lan, "c", PXE);
    await cap.stop();
    expect(leaseA.ip).toBe(A.ip);
    expect(leaseB.ip).toBe(B.ip);
    expect(leaseC.ip).toMatch(/^10\.218\.0\./);
    // On the wire: boot fields for the listed two, none for the third (tshark's own dissector).
    const rows = tshark(["-r", cap.file, "-Y", "dhcp.option.dhcp == 5", "-T", "fields", "-E", "separator=|", "-e", "dhcp.hw.mac_addr", "-e", "dhcp.file", "-e", "dhcp.option.bootfile_name"])
      .trim()
      .split("\n")
      .map((l) => l.split("|"));
    const fileFor = (mac: string) => rows.filter((r) => r[0] === mac).map((r) => `${r[1] ?? ""}${r[2] ?? ""}`);
    expect(fileFor(A.mac)).toEqual(["ipxe/snponly.efi"]);
    expect(fileFor(B.mac)).toEqual(["ipxe/snponly.efi"]);
    expect(fileFor(C.mac)).toEqual([""]);
    expect(srv.log()).toMatch(new RegExp(`${C.mac} \\(unlisted\\): no boot answer \\(not listed \\(deny by default\\)\\)`));

    // The installers, with their leased addresses, fetch their kickstarts.
    for (const [node, h] of [["a", A], ["b", B]] as const) sh(lan, node, ["ip", "addr", "add", `${h.ip}/24`, "dev", "lan0"]);
    sh(lan, "c", ["ip", "addr", "add", `${leaseC.ip}/24`, "dev", "lan0"]);
    const ksUrl = (mac: string) => `http://${SRV}:8080/esxi/01-${mac.replaceAll(":", "-")}/ks.cfg`;
    const ksA = sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", ksUrl(A.mac)]);
    expect(ksA.code).toBe(0);
    expect(ksA.out).toContain(`# host esx01 at ${A.ip}, vlan 7`);
    expect(ksA.out).toContain(`network --bootproto=static --device=${A.mac} --ip=${A.ip} --netmask=255.255.255.0 --gateway=10.218.0.254 --hostname=esx01`);
    expect(ksA.out).toContain(`rootpw ${ROOTPW}`);
    const ksB = sh(lan, "b", ["busybox", "wget", "-q", "-O", "-", ksUrl(B.mac)]);
    expect(ksB.out).toContain(`# host esx02 at ${B.ip}, vlan 12`);
    // Another machine's kickstart, asked from the wrong address: 403; the unlisted one's: 403.
    const stolen = sh(lan, "b", ["busybox", "wget", "-q", "-O", "-", ksUrl(A.mac)]);
    expect(stolen.code).not.toBe(0);
    expect(stolen.err).toMatch(/403/);
    expect(sh(lan, "c", ["busybox", "wget", "-q", "-O", "-", ksUrl(C.mac)]).err).toMatch(/403/);
    // A refused request that names A's MAC from B's address says nothing about where A is.
    const seen = JSON.parse(sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/api/hosts/${A.mac}`]).out) as { ip: string; last_error: string };
    expect(seen.ip).toBe(A.ip);
    expect(seen.last_error).toContain(`asked from ${B.ip}, which is not ${A.mac}'s address`);

    // %post: busybox wget (GET) for A; a POST for B; a wrong token is refused.
    const done = (ks: string) => /wget -q -O \/dev\/null "([^"]+)"/.exec(ks)![1]!;
    expect(done(ksA.out)).toMatch(new RegExp(`^http://${SRV.replaceAll(".", "\\.")}:8080/api/hosts/${A.mac}/done\\?token=[0-9a-f]{32}$`));
    const forged = done(ksA.out).replace(/token=[0-9a-f]+/, "token=0123456789abcdef0123456789abcdef");
    expect(sh(lan, "a", ["busybox", "wget", "-q", "-O", "/dev/null", forged]).err).toMatch(/403/);
    expect(sh(lan, "a", ["busybox", "wget", "-q", "-O", "/dev/null", done(ksA.out)]).code).toBe(0);
    expect(sh(lan, "b", ["busybox", "wget", "-q", "-O", "/dev/null", "--post-data", "installed", done(ksB.out)]).code).toBe(0);

    expect(await srv.proc.exited).toBe(0);
    const log = srv.log();
    // --json: every stdout line an event; the documented ones, in order, for A.
    const stdout = log.split("\n").filter((l) => l.startsWith("{"));
    const events = stdout.map((l) => JSON.parse(l) as { type: string; mac?: string; phase?: string; time: string });
    expect(events.every((e) => typeof e.type === "string" && !Number.isNaN(Date.parse(e.time)))).toBe(true);
    const forA = events.filter((e) => e.mac === A.mac).map((e) => (e.type === "host.phase" ? `phase:${e.phase}` : e.type));
    const order = ["dhcp.request", "phase:offered", "ks.served", "phase:installing", "host.done"].map((t) => forA.indexOf(t));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    // Secrets never leave the kickstart: not in the log, not in an event.
    expect(log).not.toContain(ROOTPW);
    expect(log).toMatch(/--until-done: every host reported done/);
  }, 120_000);

  test("after a restart, done hosts boot from their disks; /api/hosts still says done; /metrics counts", async () => {
    let srv: Served | undefined;
    try {
      srv = await serve(["--config", lab, "--state-dir", state], { ns: lan.nodes.srv!.ns, env: { TEST_ROOTPW: ROOTPW } });
      const cap = await startCapture(lan.nodes.srv!.ns, "lan0");
      sh(lan, "a", ["ip", "addr", "flush", "dev", "lan0"]);
      const again = await udhcpc(lan, "a", PXE);
      await cap.stop();
      expect(again.ip).toBe(A.ip);
      const files = tshark(["-r", cap.file, "-Y", `dhcp.option.dhcp == 5 && dhcp.hw.mac_addr == ${A.mac}`, "-T", "fields", "-e", "dhcp.file"]).trim();
      expect(files).toBe("");
      expect(srv.log()).toMatch(new RegExp(`${A.mac}: boots from its own disk \\(installed`));
      sh(lan, "a", ["ip", "addr", "add", `${A.ip}/24`, "dev", "lan0"]);
      const api = JSON.parse(sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/api/hosts`]).out) as { hosts: Array<Record<string, unknown>> };
      const byMac = new Map(api.hosts.map((h) => [h.mac, h]));
      expect(byMac.get(A.mac)).toMatchObject({ hostname: "esx01", image: "esxi", mode: "once", phase: "done", ip: A.ip });
      expect(byMac.get(B.mac)).toMatchObject({ phase: "done" });
      expect(typeof byMac.get(A.mac)!.done_at).toBe("string");
      expect(JSON.stringify(api)).not.toContain(ROOTPW);
      expect(JSON.stringify(api)).not.toMatch(/token/);
      // Its kickstart is no longer served: it is not armed.
      expect(sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/esxi/01-${A.mac.replaceAll(":", "-")}/ks.cfg`]).err).toMatch(/403/);
      const metrics = sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/metrics`]).out;
      expect(metrics).toMatch(/^# TYPE netboot_dhcp_answers_total counter$/m);
      expect(metrics).toMatch(/^netboot_dhcp_answers_total\{type="ACK"\} [1-9]/m);
      expect(metrics).toMatch(/^netboot_hosts\{phase="done"\} 2$/m);
      expect(metrics).not.toMatch(/52:54:00/);
    } finally {
      await srv?.stop();
    }
  }, 60_000);

  test("netboot hosts rearm arms a done host again, with the server running", async () => {
    let srv: Served | undefined;
    try {
      srv = await serve(["--config", lab, "--state-dir", state], { ns: lan.nodes.srv!.ns, env: { TEST_ROOTPW: ROOTPW } });
      const { cli } = await import("../helpers/cli.ts");
      const r = await cli(["hosts", "rearm", A.mac, "--state-dir", state]);
      expect(r.code).toBe(0);
      await srv.waitLog(new RegExp(`${A.mac}: armed again`), 5000);
      const ks = sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/esxi/01-${A.mac.replaceAll(":", "-")}/ks.cfg`]);
      expect(ks.code).toBe(0);
      // Its install fails: failed_url with the installer's log. The log is kept where the store is, for
      // `netboot hosts log` (it may hold what the installer printed): no API route hands it out.
      const failed = /wget -q -O \/dev\/null "([^"]+)"/.exec(ks.out)![1]!.replace("/done?", "/failed?");
      const installerLog = "weasel: partitioning\nerror: no disk matched --firstdisk\n";
      expect(sh(lan, "a", ["busybox", "wget", "-q", "-O", "/dev/null", "--post-data", installerLog, failed]).code).toBe(0);
      await srv.waitLog(new RegExp(`${A.mac}: install failed: error: no disk matched --firstdisk`), 5000);
      const shown = await cli(["hosts", "log", A.mac, "--state-dir", state]);
      expect([shown.code, shown.stdout, shown.stderr]).toEqual([0, installerLog, ""]);
      expect(sh(lan, "a", ["busybox", "wget", "-q", "-O", "-", `http://${SRV}:8080/api/hosts/${A.mac}/log`]).err).toMatch(/404/);
      const none = await cli(["hosts", "log", B.mac, "--state-dir", state]);
      expect([none.code, none.stderr.trim()]).toEqual([1, `[error] ${B.mac}: no installer log kept in ${join(state, "hosts.json")} (it keeps the body of a POST to failed_url)`]);
    } finally {
      await srv?.stop();
    }
  }, 60_000);
});

test("--until-done with a host that never calls back exits 1 at --timeout, naming it and its last phase", async () => {
  const lan = createLan(NET + 1, [{ name: "srv" }, { name: "a", ip: null, mac: "52:54:00:00:22:01" }]);
  try {
    const f = join(tempDir("lab-"), "lab.yaml");
    writeFileSync(f, `server: { iface: lan0, dhcp: server, force: true, http-port: 8080, tftp-port: 6969 }\nimages: { esxi: ${iso} }\nhosts:\n  - { mac: "52:54:00:00:22:01", hostname: slow01 }\n`);
    const srv = await serve(["--config", f, "--state-dir", tempDir(), "--until-done", "--timeout", "4s"], { ns: lan.nodes.srv!.ns });
    await udhcpc(lan, "a", PXE);
    expect(await srv.proc.exited).toBe(1);
    expect(srv.log()).toMatch(/--until-done: timed out after 4 s; not done: slow01 \(last phase: offered\)/);
  } finally {
    lan.destroy();
  }
}, 60_000);
