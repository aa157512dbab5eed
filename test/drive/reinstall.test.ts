/**
 * The whole loop in network namespaces, with nobody touching a machine: `netboot reinstall` drives
 *   esx-ipmi     through OpenIPMI's ipmi_sim, whose startcmd is the machine: `netboot simulate` PXE-boots it
 *                from netboot (DHCP, iPXE, the loader's walk, the kickstart, done_url), then the harness
 *                answers /sdk on its address as the installed ESXi would
 *   esx-redfish  through the Redfish test service (a mock: none is packaged), by virtual media: the machine
 *                reads its own ISO by ranges, the kickstart named in /EFI/BOOT/BOOT.CFG, calls done_url,
 *                answers /sdk
 *   esx-dead     through ipmi_sim too, a machine that never boots: cycled once more, then failed
 * and exits 1 naming esx-dead, with a JUnit file CI reads. Then `serve` on the same state: the two done
 * hosts get nothing that boots, by any path.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bun, repo, waitFor } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { startIpmiSim, type RunningBmc } from "../helpers/ipmi-sim.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve } from "../helpers/serve.ts";
import { requireTool, run, tempDir, xorrisoListing, killRecorded } from "../helpers/tools.ts";

for (const t of ["ip", "ipmi_sim", "curl", "openssl", "tftp"]) requireTool(t);
requireRoot();

const NET = 193;
const SRV = `10.${NET}.0.1`;
const A = { mac: "52:54:00:00:19:01", ip: `10.${NET}.0.11`, hostname: "esx-ipmi" };
const B = { mac: "52:54:00:00:19:02", ip: `10.${NET}.0.12`, hostname: "esx-redfish", bmcIp: `10.${NET}.0.22` };
const C = { mac: "52:54:00:00:19:03", ip: `10.${NET}.0.13`, hostname: "esx-dead" };
const IPMI_PW = "ipmi-Pa55-unshown"; // IPMI 2.0: 20 bytes at most
const RF_PW = "redfish-Pa55-never-shown";
const ROOTPW = "rootpw-never-shown";
const BUILD = "22380479";

const dir = tempDir("reinstall-");
const iso = makeEsxiIso();
const hyphen = (mac: string) => `01-${mac.replaceAll(":", "-")}`;

describe("netboot reinstall: IPMI by PXE, Redfish by virtual media, one that never boots", () => {
  let lan: Lan;
  const bmcs: RunningBmc[] = [];
  const pids: string[] = [];
  let redfish: ReturnType<typeof spawn> | undefined;
  const state = tempDir("reinstall-state-");
  const lab = join(dir, "lab.yaml");
  const junit = join(dir, "junit.xml");

  beforeAll(async () => {
    lan = createLan(NET, [{ name: "srv" }, { name: "a", ip: null, mac: A.mac }, { name: "b", ip: B.ip, mac: B.mac }, { name: "c", ip: null, mac: C.mac }]);
    run("ip", ["-n", lan.nodes.b!.ns, "addr", "add", `${B.bmcIp}/24`, "dev", "lan0"]);
    // The installed systems' certificates, and the BMC's (its CA is the lab file's ca:).
    run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=lab", "-addext", `subjectAltName=IP:${A.ip},IP:${B.ip},IP:${B.bmcIp}`], { stdio: "ignore" });
    writeFileSync(join(dir, "esxi.ks"), ["vmaccepteula", "rootpw {{rootpw}}", "{{network}}", "reboot", "%post --interpreter=busybox", 'wget -q -O /dev/null "{{done_url}}" || true', ""].join("\n"));
    // esx-ipmi: a power on runs the machine.
    const machineA = join(dir, "machine-a.sh");
    writeFileSync(
      machineA,
      `#!/bin/sh
echo $$ >> ${dir}/pids
ip netns exec ${lan.nodes.a!.ns} ${bun} ${repo}/src/main.ts simulate --server ${SRV} --iface lan0 --mac ${A.mac} --report-done > ${dir}/sim-a.log 2>&1 || exit 1
ip -n ${lan.nodes.a!.ns} addr add ${A.ip}/24 dev lan0
exec ip netns exec ${lan.nodes.a!.ns} ${bun} ${repo}/test/helpers/esxi-sdk.ts ${A.ip} ${BUILD} ${dir}/cert.pem ${dir}/key.pem
`,
      { mode: 0o755 },
    );
    const machineC = join(dir, "machine-c.sh");
    writeFileSync(machineC, `#!/bin/sh\necho $$ >> ${dir}/pids\necho power-on >> ${dir}/c-powered\nexec sleep 600\n`, { mode: 0o755 });
    const srvNs = lan.nodes.srv!.ns;
    bmcs.push(await startIpmiSim({ password: IPMI_PW, mode: "startcmd", startcmd: machineA, ns: srvNs }));
    bmcs.push(await startIpmiSim({ password: IPMI_PW, mode: "startcmd", startcmd: machineC, ns: srvNs }));
    // esx-redfish: its BMC and its machine, in its namespace.
    writeFileSync(join(dir, "rf.json"), JSON.stringify({ listen: B.bmcIp, port: 8443, user: "admin", passwordEnv: "RF_PW", cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), ip: B.ip, build: BUILD, log: join(dir, "machine-b.jsonl") }));
    redfish = spawn("ip", ["netns", "exec", lan.nodes.b!.ns, bun, join(repo, "test/helpers/redfish-machine.ts"), join(dir, "rf.json")], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RF_PW } });
    let said = "";
    redfish.stdout!.on("data", (d) => (said += d));
    await waitFor(() => said.includes("redfish on"), 15_000, "the Redfish machine to listen");
    writeFileSync(
      lab,
      `server: { iface: lan0, dhcp: server, force: true, http-port: 8080 }
images:
  esxi: ${iso}
defaults: { image: esxi, mode: once, kickstart: ${join(dir, "esxi.ks")}, vars: { rootpw: { env: TEST_ROOTPW } } }
hosts:
  - { mac: "${A.mac}", hostname: ${A.hostname}, ip: ${A.ip}, bmc: { ipmi: 127.0.0.1, port: ${bmcs[0]!.port}, user: admin, password: { env: IPMI_PW } } }
  - { mac: "${B.mac}", hostname: ${B.hostname}, ip: ${B.ip}, via: virtual-media, bmc: { redfish: "https://${B.bmcIp}:8443", user: admin, password: { env: RF_PW }, ca: ${join(dir, "cert.pem")} } }
  - { mac: "${C.mac}", hostname: ${C.hostname}, ip: ${C.ip}, bmc: { ipmi: 127.0.0.1, port: ${bmcs[1]!.port}, user: admin, password: { env: IPMI_PW } } }
`,
    );
  }, 60_000);

  afterAll(async () => {
    for (const b of bmcs) await b.stop();
    redfish?.kill();
    killRecorded(join(dir, "pids"));
    lan?.destroy();
  });

  let stdout = "";
  let stderr = "";
  test("the two that boot: exit 0; then armed again with netboot hosts rearm, as a CI job does before its next run", async () => {
    const env = { ...process.env, NO_COLOR: "1", IPMI_PW, RF_PW, TEST_ROOTPW: ROOTPW };
    const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", A.hostname, B.hostname, "--config", lab, "--state-dir", state, "--stagger", "0s", "--sign-of-life", "8s", "--timeout", "2m"], { stdout: "pipe", stderr: "pipe", env });
    const [out, err2] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const err = out + err2;
    expect({ code: await p.exited, tail: err.split("\n").filter((l) => /reinstall: (all|\d+ of)/.test(l)) }).toEqual({ code: 0, tail: ["[info] reinstall: all 2 done"] });
    for (const mac of [A.mac, B.mac]) {
      const r = Bun.spawnSync([bun, join(repo, "src/main.ts"), "hosts", "rearm", mac, "--state-dir", state]);
      expect({ mac, code: r.exitCode, err: r.stderr.toString() }).toEqual({ mac, code: 0, err: "" });
    }
    // The installed systems of that run stop (the next run boots them again).
    killRecorded(join(dir, "pids"));
    lan.exec("a", ["ip", "addr", "flush", "dev", "lan0"]);
    for (const b of bmcs) Bun.spawnSync(["ip", "netns", "exec", lan.nodes.srv!.ns, "ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", String(b.port), "-U", "admin", "-P", IPMI_PW, "chassis", "power", "off"]);
  }, 120_000);

  test("two hosts done and verified, the third retried once and failed: exit 1, JUnit names it, no secret anywhere", async () => {
    const t0 = Date.now();
    const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", "--config", lab, "--state-dir", state, "--stagger", "0s", "--sign-of-life", "8s", "--retries", "1", "--timeout", "3m", "--junit", junit, "--json"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1", IPMI_PW, RF_PW, TEST_ROOTPW: ROOTPW },
    });
    [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    writeFileSync(join(dir, "reinstall.out"), stdout);
    writeFileSync(join(dir, "reinstall.err"), stderr);
    const seconds = (Date.now() - t0) / 1000;
    const events = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const of = (type: string, mac: string) => events.filter((e) => e.type === type && e.mac === mac);
    expect({ code, tail: stderr.split("\n").slice(-8) }).toMatchObject({ code: 1 });
    // esx-ipmi: the BMC refused the boot flags (ipmi_sim with a startcmd answers 0xcc): said, and the drive went on.
    expect(of("bmc.boot", A.mac)[0]).toMatchObject({ target: "pxe" });
    expect(of("bmc.boot", A.mac)[0]!.kept).toBeUndefined();
    expect(String(of("bmc.boot", A.mac)[0]!.partial)).toContain("0xcc");
    expect(of("power.on", A.mac).length).toBe(1);
    expect(of("host.phase", A.mac).map((e) => e.phase)).toEqual(expect.arrayContaining(["offered", "loader", "bootcfg", "modules", "installing", "installed", "done"]));
    expect(of("host.verified", A.mac)[0]).toMatchObject({ how: "https", build: BUILD, ip: A.ip });
    // esx-redfish: virtual media in, boot once from it, ejected after the install, verified.
    expect(of("bmc.media", B.mac).map((e) => e.action)).toEqual(["insert", "eject"]);
    expect(of("bmc.boot", B.mac)[0]).toMatchObject({ target: "cd", kept: "Cd, Once, UEFI" });
    expect(of("bmc.boot", B.mac)[0]!.partial).toBeUndefined();
    expect(of("host.verified", B.mac)[0]).toMatchObject({ how: "https", build: BUILD });
    const machineB = readFileSync(join(dir, "machine-b.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const disc = machineB.find((s) => s.step === "disc");
    expect(disc).toMatchObject({ image: `http://${SRV}:8080/esxi/${hyphen(B.mac)}.iso`, type: "application/vnd.efi-iso" });
    const loader = machineB.find((s) => s.step === "loader");
    expect(loader.kernelopt).toContain(`ks=http://${SRV}:8080/esxi/${hyphen(B.mac)}/ks.cfg`);
    // Every module read off the disc is the image's own, byte for byte (xorriso reads the original).
    const original = xorrisoListing(iso);
    for (const [path, sum] of Object.entries(loader.modules as Record<string, string>)) expect({ path, sum: sum as string | undefined }).toEqual({ path, sum: [...original].find(([p]) => p.toLowerCase() === path.toLowerCase())?.[1].sha256 });
    expect(machineB.map((s) => s.step)).toEqual(expect.arrayContaining(["insert", "reset", "kickstart", "done_url", "sdk", "eject"]));
    // esx-dead: powered on, no sign of life, cycled once, failed.
    expect(of("power.on", C.mac).length + of("power.cycle", C.mac).length).toBe(2);
    expect(of("host.failed", C.mac)[0]!.reason).toMatch(/no sign of life within 8 s/);
    expect(readFileSync(join(dir, "c-powered"), "utf8").trim().split("\n").length).toBe(2);
    expect(stderr).toMatch(/esx-dead \(52:54:00:00:19:03\): FAILED \(last phase: none\): no sign of life/);
    expect(stderr).toMatch(/reinstall: 1 of 3 failed: esx-dead/);
    // JUnit: one testcase per host, the failure with its hint and what the BMC said.
    const xml = readFileSync(junit, "utf8");
    expect(xml).toMatch(/<testsuites name="netboot reinstall" tests="3" failures="1"/);
    expect(xml.match(/<testcase /g)?.length).toBe(3);
    expect(xml).toMatch(/<testcase classname="netboot.reinstall" name="esx-dead \(52:54:00:00:19:03\)" time="[\d.]+">\s*<failure message="no sign of life within 8 s/);
    expect(xml).toMatch(/last phase: none\n/);
    expect(xml).toMatch(/BMC said: Chassis Control \(cycle\): accepted/);
    expect(xml).toMatch(/name="esx-ipmi \(52:54:00:00:19:01\)"[^>]*>\s*<system-out>[^<]*phase installed[^<]*waiting for the installed ESXi[^<]*the installed ESXi answers at 10\.193\.0\.11: build 22380479/);
    // Secrets: not in the events, the log or the report.
    for (const s of [IPMI_PW, RF_PW, ROOTPW]) {
      expect(stdout).not.toContain(s);
      expect(stderr).not.toContain(s);
      expect(xml).not.toContain(s);
    }
    expect(stderr).not.toMatch(/\n\s+at /);
    process.stdout.write(`reinstall of 3 hosts: ${seconds.toFixed(1)} s\n`);
  }, 200_000);

  test("boot-once on every path: the done hosts get nothing that boots from serve, however they ask", async () => {
    const srv = await serve(["--config", lab, "--state-dir", state], { ns: lan.nodes.srv!.ns, env: { IPMI_PW, RF_PW, TEST_ROOTPW: ROOTPW } });
    try {
      // From esx-redfish's own address (the server's ARP names its MAC): its boot.cfg, the loader, its ISO.
      const ask = (path: string) => lan.exec("b", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://${SRV}:8080${path}`]).out;
      expect(ask(`/esxi/${hyphen(B.mac)}/boot.cfg`)).toBe("403");
      expect(ask(`/esxi/efi/boot/${hyphen(B.mac)}/boot.cfg`)).toBe("403");
      expect(ask(`/${hyphen(B.mac)}/boot.cfg`)).toBe("403");
      expect(ask(`/esxi/${hyphen(B.mac)}.iso`)).toBe("403");
      expect(ask("/esxi/boot.cfg")).toBe("403");
      expect(ask("/esxi/mboot.efi")).toBe("403");
      expect(ask("/esxi/EFI/BOOT/BOOTX64.EFI")).toBe("403");
      expect(lan.exec("b", ["curl", "-s", `http://${SRV}:8080/boot.ipxe`]).out).toMatch(/^#!ipxe[\s\S]*\bexit\b/);
      // And by TFTP (tftp-hpa), asked straight by the name a firmware may have kept.
      const got = tempDir("tftp-");
      const tftp = lan.exec("b", ["sh", "-c", `cd ${got} && tftp -v ${SRV} -c get esxi/${hyphen(B.mac)}/boot.cfg got.cfg 2>&1`]);
      expect(tftp.out + tftp.err).toMatch(/Error code|refused|not found|denied/i);
    } finally {
      await srv.stop();
    }
  }, 60_000);

  test("refused at start, one line each, nothing powered: done hosts, a host with no bmc:, a name not in the lab, a report that cannot be written", async () => {
    const powered = () => (existsSync(join(dir, "pids")) ? readFileSync(join(dir, "pids"), "utf8").split("\n").filter(Boolean).length : 0);
    const before = powered();
    const reinstall = async (args: string[]) => {
      const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", "--config", lab, "--state-dir", state, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", IPMI_PW, RF_PW, TEST_ROOTPW: ROOTPW } });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
      return { code: await p.exited, out, err };
    };
    // Done in mode once: not armed. (A failed host is: its next network boot installs again.)
    const unarmed = await reinstall(["esx-ipmi", "esx-redfish"]);
    expect(unarmed.code).toBe(2);
    expect(unarmed.err.trim().split("\n")).toEqual([
      expect.stringMatching(/^\[error\] esx-ipmi: not armed: installed \(done [^)]*\); netboot hosts rearm 52:54:00:00:19:01 to install again$/),
      expect.stringMatching(/^esx-redfish: not armed: installed \(done [^)]*\); netboot hosts rearm 52:54:00:00:19:02 to install again$/),
    ]);
    // Without names: only armed hosts are taken; here the two are done, so there is none.
    const twoLab = join(dir, "lab-two.yaml");
    writeFileSync(twoLab, readFileSync(lab, "utf8").split("\n").filter((l) => !l.includes(C.mac)).join("\n"));
    const two = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", "--config", twoLab, "--state-dir", state], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", IPMI_PW, RF_PW, TEST_ROOTPW: ROOTPW } });
    const [twoOut, twoErr] = await Promise.all([new Response(two.stdout).text(), new Response(two.stderr).text()]);
    expect(await two.exited).toBe(2);
    expect(twoOut + twoErr).toMatch(/esx-ipmi: not armed: installed \(done [^)]*\); netboot hosts rearm 52:54:00:00:19:01 to install again; left alone/);
    expect(twoErr).toContain("lab-two.yaml: no armed host with a bmc: (netboot hosts rearm HOST arms one again)");
    const extra = join(dir, "lab-extra.yaml");
    writeFileSync(extra, readFileSync(lab, "utf8") + `  - { mac: "52:54:00:00:19:04", hostname: esx-nobmc }\n`);
    const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", "--config", extra, "--state-dir", state, "esx-nobmc", "nosuch"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", TEST_ROOTPW: ROOTPW } });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(2);
    expect(err).toContain("esx-nobmc: no bmc: in the lab file");
    expect(err).toContain(`nosuch: not a host of ${extra}`);
    const junitBad = await reinstall(["--junit", "/nonexistent-dir/junit.xml"]);
    expect(junitBad.code).toBe(2);
    expect(junitBad.err).toContain("--junit /nonexistent-dir/junit.xml: no such directory");
    for (const r of [unarmed, junitBad]) expect(r.err).not.toMatch(/\n\s+at /);
    expect(powered()).toBe(before);
  }, 60_000);
});
