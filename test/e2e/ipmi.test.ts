/**
 * A machine behind a real BMC implementation: OpenIPMI's ipmi_sim on the lab link (10.x.0.250, in the
 * switch namespace), whose startcmd is QEMU with OVMF and an ipmi-bmc-extern device connected back to
 * ipmi_sim's VM serial port. `netboot power HOST on` (netboot's own RMCP+ client) really starts the
 * machine, which PXE-boots from `netboot serve` to the test loader with every module byte-exact;
 * `netboot power HOST off` really ends it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fnv1a } from "../../src/files/tree.ts";
import { bun, freePort, repo, waitFor } from "../helpers/cli.ts";
import { makeEsxiIso, testModules } from "../helpers/esxi-iso.ts";
import { startIpmiSim, type RunningBmc } from "../helpers/ipmi-sim.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, run, tempDir, killRecorded } from "../helpers/tools.ts";
import { buildGuests, parseModules } from "./guest.ts";
import { CLIENT_MAC, firmwareArgs, serialOf } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "ipmi_sim", "ip", "gcc", "xorriso"]) requireTool(t);
requireRoot();

const NET = 190;
const BMC = `10.${NET}.0.250`;
const PW = "ipmi-e2e-Pa55";
const guests = buildGuests();
const iso = makeEsxiIso({ efi: guests.loader });
const dir = tempDir("ipmi-e2e-");

describe("IPMI: ipmi_sim starts and ends a QEMU machine, which PXE-boots from netboot", () => {
  let lan: Lan;
  let bmc: RunningBmc;
  let srv: Served;
  const lab = join(dir, "lab.yaml");
  const vm = join(dir, "vm");
  beforeAll(async () => {
    lan = createLan(NET, [{ name: "srv" }], ["tap0"]);
    run("ip", ["-n", lan.switchNs, "addr", "add", `${BMC}/24`, "dev", "br0"]);
    const serialPort = await freePort();
    run("mkdir", ["-p", vm]);
    const args = [...firmwareArgs("uefi-pxe", "tap0", vm), "-chardev", `socket,id=ipmi0,host=127.0.0.1,port=${serialPort},reconnect=10`, "-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-kcs,bmc=bmc0"];
    const machine = join(dir, "machine.sh");
    writeFileSync(machine, `#!/bin/sh\necho $$ >> ${dir}/pids\nexec qemu-system-x86_64 ${args.map((a) => `'${a}'`).join(" ")} 2>>${dir}/qemu.err\n`, { mode: 0o755 });
    bmc = await startIpmiSim({ password: PW, mode: "startcmd", startcmd: machine, ns: lan.switchNs, addr: BMC, port: 623, serialPort });
    writeFileSync(join(dir, "ks.cfg"), "vmaccepteula\n");
    writeFileSync(lab, `server: { iface: lan0, dhcp: server, force: true }\nimages: { esxi: ${iso} }\ndefaults: { image: esxi, mode: install, kickstart: ${join(dir, "ks.cfg")} }\nhosts:\n  - { mac: "${CLIENT_MAC}", hostname: esx-kcs, bmc: { ipmi: ${BMC}, user: admin, password: { env: IPMI_PW } } }\n`);
    srv = await serve(["--config", lab, "--state-dir", tempDir("state-"), "-v"], { ns: lan.nodes.srv!.ns, readyMs: 40_000 });
  }, 90_000);
  afterAll(async () => {
    await srv?.stop();
    await bmc?.stop();
    killRecorded(join(dir, "pids"));
    lan?.destroy();
  });

  const power = (...args: string[]) => lan.exec("srv", [bun, join(repo, "src/main.ts"), "power", "esx-kcs", ...args, "--config", lab]);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  test("power on starts it; it PXE-boots to the test loader, every module byte-exact; power off ends it", async () => {
    process.env.IPMI_PW = PW;
    const status = power("status");
    expect(status.out + status.err).toMatch(/^esx-kcs: power off; next boot: /);
    const t0 = performance.now();
    const on = power("on");
    expect(on.code).toBe(0);
    expect(on.out).toBe(`esx-kcs: power on sent (IPMI ${BMC}:623)\n`);
    await waitFor(() => /NETBOOT-TEST-LOADER-(DONE|FAIL)/.test(serialOf(vm)), 170_000, "the test loader");
    const seconds = (performance.now() - t0) / 1000;
    const serial = serialOf(vm);
    expect(serial).toContain("NETBOOT-TEST-LOADER-DONE");
    expect(serial).toContain("route=ipxe-download");
    const x = join(tempDir("iso-x-"), "x");
    run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", x], { stdio: ["ignore", "ignore", "pipe"] });
    const want = ["b.b00", ...testModules].map((n) => {
      const b = new Uint8Array(readFileSync(join(x, n.toUpperCase())));
      return { name: `http://10.${NET}.0.1/esxi/${n}`, size: b.length, fnv: fnv1a(b) };
    });
    expect(parseModules(serial).map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(want);
    console.log(`IPMI power on to the last module, UEFI PXE → iPXE: ${seconds.toFixed(1)} s`);
    // The loader ended that QEMU (isa-debug-exit): ipmi_sim sees its machine gone.
    await waitFor(() => power("status").out.includes("power off"), 20_000, "power off after the machine ended");

    // Again, and this time power off while the firmware runs: the process ends.
    const before = readFileSync(join(dir, "pids"), "utf8").split("\n").filter(Boolean).length;
    expect(power("on").code).toBe(0);
    await waitFor(() => readFileSync(join(dir, "pids"), "utf8").split("\n").filter(Boolean).length > before, 10_000, "the second start");
    const pid = Number(readFileSync(join(dir, "pids"), "utf8").split("\n").filter(Boolean).at(-1));
    expect(alive(pid)).toBe(true);
    expect(power("status").out).toMatch(/power on/);
    const off = power("off");
    expect(off.code).toBe(0);
    await waitFor(() => !alive(pid), 20_000, "the machine to end at power off");
    expect(power("status").out).toMatch(/power off/);
  }, 240_000);
});
