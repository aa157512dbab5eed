/**
 * The whole loop with real machines (QEMU, OVMF, TCG) in network namespaces; nobody touches them:
 *
 *   esx-pxe   behind OpenIPMI's ipmi_sim on the lab link; its startcmd is a QEMU machine (ipmi-bmc-extern
 *             back to ipmi_sim) that PXE-boots from netboot to the test loader
 *   esx-vm    behind the Redfish test service (a mock: none is packaged), which drives a QEMU machine
 *             through QMP: its own ISO inserted by URL (QEMU's curl block driver), the CD first at the
 *             next start, the test loader booting from the disc
 *   esx-dead  behind a second ipmi_sim whose machine never boots
 *
 * After each loader the harness plays the installer (the kickstart from the host's address, done_url) and
 * the installed ESXi (/sdk on HTTPS with the image's build). `netboot reinstall` exits 1 naming esx-dead
 * only, with every module byte-exact on both machines' consoles. The test prints the time per route.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fnv1a } from "../../src/files/tree.ts";
import { bun, freePort, repo, waitFor } from "../helpers/cli.ts";
import { makeEsxiIso, testModules } from "../helpers/esxi-iso.ts";
import { startIpmiSim, type RunningBmc } from "../helpers/ipmi-sim.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { requireTool, run, tempDir, killRecorded } from "../helpers/tools.ts";
import { buildGuests, parseModules } from "./guest.ts";
import { CLIENT_MAC, firmwareArgs, serialOf } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "ipmi_sim", "ip", "gcc", "xorriso", "mkfs.vfat", "curl", "openssl"]) requireTool(t);
requireRoot();

const NET = 189;
const SRV = `10.${NET}.0.1`;
const BMC = `10.${NET}.0.250`;
const A = { mac: CLIENT_MAC, ip: `10.${NET}.0.11`, hostname: "esx-pxe" };
const B = { mac: "52:54:00:00:18:02", ip: `10.${NET}.0.12`, hostname: "esx-vm", bmcIp: `10.${NET}.0.22` };
const C = { mac: "52:54:00:00:18:03", ip: `10.${NET}.0.13`, hostname: "esx-dead" };
const IPMI_PW = "ipmi-loop-Pa55";
const RF_PW = "redfish-loop-Pa55-unshown";
const BUILD = "22380479";
const guests = buildGuests();
const iso = makeEsxiIso({ efi: guests.loader, uefiElTorito: guests.loader });
const dir = tempDir("loop-");
const hyphen = (mac: string) => `01-${mac.replaceAll(":", "-")}`;

function imageModules(prefix: string) {
  const x = join(tempDir("iso-x-"), "x");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", x], { stdio: ["ignore", "ignore", "pipe"] });
  return ["b.b00", ...testModules].map((n) => {
    const b = new Uint8Array(readFileSync(join(x, n.toUpperCase())));
    return { name: `${prefix}${n}`, size: b.length, fnv: fnv1a(b) };
  });
}

describe("netboot reinstall with QEMU machines: IPMI by PXE, Redfish by virtual media, one that never boots", () => {
  let lan: Lan;
  const bmcs: RunningBmc[] = [];
  let redfish: ChildProcess | undefined;
  const lab = join(dir, "lab.yaml");
  const vmA = join(dir, "vm-a");
  const vmB = join(dir, "vm-b");
  beforeAll(async () => {
    lan = createLan(NET, [{ name: "srv" }, { name: "aos", ip: null }, { name: "b", ip: B.ip, mac: B.mac }], ["tap0"]);
    run("ip", ["-n", lan.switchNs, "addr", "add", `${BMC}/24`, "dev", "br0"]);
    run("ip", ["-n", lan.nodes.b!.ns, "addr", "add", `${B.bmcIp}/24`, "dev", "lan0"]);
    run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=lab", "-addext", `subjectAltName=IP:${A.ip},IP:${B.ip},IP:${B.bmcIp}`], { stdio: "ignore" });
    writeFileSync(join(dir, "esxi.ks"), ["vmaccepteula", "install --firstdisk --overwritevmfs", "{{network}}", "%post --interpreter=busybox", 'wget -q -O /dev/null "{{done_url}}" || true', ""].join("\n"));
    mkdirSync(vmA);
    mkdirSync(vmB);
    // esx-pxe: QEMU, then the installer's part once the loader has run.
    const serialPort = await freePort();
    const qemuA = [...firmwareArgs("uefi-pxe", "tap0", vmA), "-chardev", `socket,id=ipmi0,host=127.0.0.1,port=${serialPort},reconnect=10`, "-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0"];
    const aos = lan.nodes.aos!.ns;
    writeFileSync(
      join(dir, "machine-a.sh"),
      `#!/bin/sh
echo $$ >> ${dir}/pids
qemu-system-x86_64 ${qemuA.map((a) => `'${a}'`).join(" ")} 2>>${dir}/qemu-a.err
grep -q NETBOOT-TEST-LOADER-DONE ${vmA}/serial.log || exit 1
ks=$(tr -d '\\r' < ${vmA}/serial.log | sed -n 's/^prefix=[^ ]* blksize=[0-9]* kernelopt=.* ks=\\([^ ]*\\).*/\\1/p' | head -1)
echo "ks $ks" >> ${dir}/installer-a.log
ip -n ${aos} addr add ${A.ip}/24 dev lan0
ip netns exec ${aos} curl -sS --fail -o ${dir}/ks-a.cfg "$ks" 2>>${dir}/installer-a.log || exit 1
done_url=$(grep -o 'http://[^"]*/done?token=[^"]*' ${dir}/ks-a.cfg | head -1)
ip netns exec ${aos} curl -sS --fail -o /dev/null "$done_url" 2>>${dir}/installer-a.log || exit 1
echo done_url >> ${dir}/installer-a.log
exec ip netns exec ${aos} ${bun} ${repo}/test/helpers/esxi-sdk.ts ${A.ip} ${BUILD} ${dir}/cert.pem ${dir}/key.pem
`,
      { mode: 0o755 },
    );
    writeFileSync(join(dir, "machine-c.sh"), `#!/bin/sh\necho $$ >> ${dir}/pids\necho on >> ${dir}/c-powered\nexec sleep 600\n`, { mode: 0o755 });
    bmcs.push(await startIpmiSim({ password: IPMI_PW, mode: "startcmd", startcmd: join(dir, "machine-a.sh"), ns: lan.switchNs, addr: BMC, port: 623, serialPort }));
    bmcs.push(await startIpmiSim({ password: IPMI_PW, mode: "startcmd", startcmd: join(dir, "machine-c.sh"), ns: lan.switchNs, addr: BMC, port: 624 }));
    // esx-vm: the Redfish service and its QEMU machine (no NIC: it boots the CD), in its namespace.
    writeFileSync(
      join(dir, "rf.json"),
      JSON.stringify({ listen: B.bmcIp, port: 8443, user: "admin", passwordEnv: "RF_PW", cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), ip: B.ip, build: BUILD, log: join(dir, "machine-b.jsonl"), qemu: { args: firmwareArgs("uefi-cd", "", vmB), serialDir: vmB } }),
    );
    redfish = spawn("ip", ["netns", "exec", lan.nodes.b!.ns, bun, join(repo, "test/helpers/redfish-machine.ts"), join(dir, "rf.json")], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RF_PW } });
    let said = "";
    redfish.stdout!.on("data", (d) => (said += d));
    await waitFor(() => said.includes("redfish on"), 15_000, "the Redfish service to listen");
    writeFileSync(
      lab,
      `server: { iface: lan0, dhcp: server, force: true }
images: { esxi: ${iso} }
defaults: { image: esxi, mode: once, kickstart: ${join(dir, "esxi.ks")} }
hosts:
  - { mac: "${A.mac}", hostname: ${A.hostname}, ip: ${A.ip}, bmc: { ipmi: ${BMC}, user: admin, password: { env: IPMI_PW } } }
  - { mac: "${B.mac}", hostname: ${B.hostname}, ip: ${B.ip}, via: virtual-media, bmc: { redfish: "https://${B.bmcIp}:8443", user: admin, password: { env: RF_PW }, ca: ${join(dir, "cert.pem")} } }
  - { mac: "${C.mac}", hostname: ${C.hostname}, ip: ${C.ip}, bmc: { ipmi: ${BMC}, port: 624, user: admin, password: { env: IPMI_PW } } }
`,
    );
  }, 90_000);

  afterAll(async () => {
    for (const b of bmcs) await b.stop();
    redfish?.kill();
    killRecorded(join(dir, "pids"));
    lan?.destroy();
  });

  test("esx-pxe and esx-vm installed and verified, esx-dead retried and failed: exit 1, JUnit, every module byte-exact", async () => {
    const junit = join(dir, "junit.xml");
    const t0 = Date.now();
    const p = Bun.spawn(["ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "reinstall", "--config", lab, "--state-dir", tempDir("loop-state-"), "--stagger", "0s", "--sign-of-life", "25s", "--retries", "1", "--timeout", "4m", "--junit", junit, "--json"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1", IPMI_PW, RF_PW },
    });
    const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    writeFileSync(join(dir, "reinstall.err"), stderr);
    const events = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const at = (type: string, mac: string) => events.find((e) => e.type === type && e.mac === mac);
    const seconds = (type: string, mac: string) => (Date.parse(String(at(type, mac)?.time)) - t0) / 1000;
    expect({ code, summary: stderr.split("\n").filter((l) => /reinstall: (\d+ of|all)|FAILED|done in/.test(l)) }).toEqual({
      code: 1,
      summary: [expect.stringMatching(/^\[info\] esx-pxe \(52:54:00:12:34:56\): done in \d+ s/), expect.stringMatching(/^\[info\] esx-vm \(52:54:00:00:18:02\): done in \d+ s/), expect.stringMatching(/^\[error\] esx-dead \(52:54:00:00:18:03\): FAILED \(last phase: none\): no sign of life within 25 s/), "[error] reinstall: 1 of 3 failed: esx-dead"],
    });
    // The machines' consoles: the test loader got every module byte-exact, by iPXE and from the disc.
    const serialA = serialOf(vmA);
    expect(serialA).toContain("route=ipxe-download");
    expect(serialA).toMatch(new RegExp(`kernelopt=runweasel ks=http://${SRV}/esxi/${hyphen(A.mac)}/ks\\.cfg`));
    expect(parseModules(serialA).map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(imageModules(`http://${SRV}/esxi/`));
    const serialB = serialOf(vmB);
    expect(serialB).toContain("route=disc");
    expect(serialB).toMatch(new RegExp(`kernelopt=runweasel ks=http://${SRV}/esxi/${hyphen(B.mac)}/ks\\.cfg BOOTIF=${hyphen(B.mac)}`));
    expect(parseModules(serialB).map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(imageModules("/"));
    // Redfish: the media went in through QMP before the start, the CD first at that start, ejected after.
    const b = readFileSync(join(dir, "machine-b.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(b.find((s) => s.step === "qemu")).toMatchObject({ cdFirst: true, image: `http://${SRV}/esxi/${hyphen(B.mac)}.iso` });
    expect(b.map((s) => s.step)).toEqual(expect.arrayContaining(["insert", "reset", "qemu", "loader", "kickstart", "done_url", "sdk", "eject"]));
    expect(at("host.verified", A.mac)).toMatchObject({ how: "https", build: BUILD });
    expect(at("host.verified", B.mac)).toMatchObject({ how: "https", build: BUILD });
    expect(readFileSync(join(dir, "c-powered"), "utf8").trim().split("\n").length).toBe(2);
    const xml = readFileSync(junit, "utf8");
    expect(xml).toMatch(/tests="3" failures="1"/);
    for (const s of [IPMI_PW, RF_PW]) expect(stdout + stderr + xml).not.toContain(s);
    console.log(
      `reinstall with QEMU: PXE by IPMI: power on → offered ${seconds("host.phase", A.mac).toFixed(1)} s, installed ${((Date.parse(String(events.find((e) => e.type === "host.phase" && e.mac === A.mac && e.phase === "installed")?.time)) - t0) / 1000).toFixed(1)} s, verified ${seconds("host.verified", A.mac).toFixed(1)} s; ` +
        `virtual media by Redfish: verified ${seconds("host.verified", B.mac).toFixed(1)} s; the dead one failed at ${seconds("host.failed", C.mac).toFixed(1)} s; whole run ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  }, 300_000);
});
