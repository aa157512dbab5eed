/**
 * netboot's own IPMI 2.0 client (src/bmc/ipmi/) against real BMC implementations nobody here wrote:
 * OpenIPMI's ipmi_sim and pyghmi's fakebmc, with ipmitool (suite 3) as the independent reader.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeKept } from "../../src/bmc/driver.ts";
import { IpmiDriver } from "../../src/bmc/ipmi.ts";
import { IpmiSession } from "../../src/bmc/ipmi/client.ts";
import { CIPHER_SUITES, decryptAes, encryptAes, newRakp, parseRakp2, rakp2Matches, sessionKeys, v20Packet, parsePacket, PAYLOAD } from "../../src/bmc/ipmi/codec.ts";
import { waitFor } from "../helpers/cli.ts";
import { ipmitool, startFakeBmc, startIpmiSim, type RunningBmc } from "../helpers/ipmi-sim.ts";
import { tempDir } from "../helpers/tools.ts";

const PW = "s3cret-ipmi";

describe("ipmi_sim with a chassis_control program", () => {
  let bmc: RunningBmc;
  beforeAll(async () => {
    bmc = await startIpmiSim({ password: PW, mode: "chassis-control" });
  });
  afterAll(() => bmc?.stop());
  const driver = () => new IpmiDriver({ host: "127.0.0.1", port: bmc.port, user: "admin", password: PW });
  const log = () => (existsSync(join(bmc.dir, "log")) ? readFileSync(join(bmc.dir, "log"), "utf8") : "");

  test("opens a session with cipher suite 3 (ipmi_sim has no 17) and drives the power", async () => {
    const d = driver();
    expect(await d.powerState()).toBe("off");
    expect(d.suitesTried).toEqual(["3: opened"]);
    await d.power("on");
    expect(log()).toContain("set power 1");
    expect(await d.powerState()).toBe("on");
    expect(ipmitool(bmc.port, PW, "chassis", "power", "status")).toContain("Chassis Power is on");
    await d.power("off");
    expect(log()).toContain("set power 0");
    expect(ipmitool(bmc.port, PW, "chassis", "power", "status")).toContain("Chassis Power is off");
    // open, RAKP 1 and 3, privilege, the command, close: a handful of datagrams per action.
    expect(d.roundTrips).toBeGreaterThan(5);
  });

  test("the boot flags: the device is kept, the EFI and once-only bits are not, and the line says so", async () => {
    const d = driver();
    const kept = await d.setBootOnce("pxe");
    expect(log()).toContain("set boot pxe");
    expect(kept.target).toBe("pxe");
    expect(kept.uefi).toBe(false);
    expect(kept.once).toBeUndefined();
    const line = describeKept({ target: "pxe" }, kept);
    expect(line).toContain("not next boot only");
    expect(line).toContain("UEFI (it kept legacy BIOS)");
    // ipmitool reads the same flags back.
    const get = ipmitool(bmc.port, PW, "chassis", "bootparam", "get", "5");
    expect(get).toContain("Force PXE");
    expect(get).toContain("BIOS PC Compatible (legacy) boot");
  });

  test("a wrong password or user is one line; suite 0 is never tried unless asked, and then lets a wrong password in", async () => {
    await expect(IpmiSession.open({ host: "127.0.0.1", port: bmc.port, user: "admin", password: "wrong" })).rejects.toThrow(/does not know this password for user admin/);
    await expect(IpmiSession.open({ host: "127.0.0.1", port: bmc.port, user: "nobody", password: "x" })).rejects.toThrow(/unauthorized name \(user nobody\)/);
    const err = await IpmiSession.open({ host: "127.0.0.1", port: bmc.port, user: "admin", password: "wrong" }).catch((e: Error) => e);
    expect(String(err)).not.toContain("wrong");
    // What a lab file's `cipher: 0` means: no authentication at all.
    const s = await IpmiSession.open({ host: "127.0.0.1", port: bmc.port, user: "admin", password: "wrong", cipherSuite: 0 });
    expect(s.suite).toBe(0);
    await s.close();
  });
});

describe("ipmi_sim with a startcmd: power starts and ends a process", () => {
  let bmc: RunningBmc;
  let pidFile: string;
  beforeAll(async () => {
    const dir = tempDir("startcmd-");
    pidFile = join(dir, "machine.pid");
    const script = join(dir, "machine.sh");
    writeFileSync(script, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 600\n`, { mode: 0o755 });
    bmc = await startIpmiSim({ password: PW, mode: "startcmd", startcmd: script });
  });
  afterAll(() => bmc?.stop());

  test("on starts the machine, off ends it; boot options are refused with 0xcc, in one line", async () => {
    const d = new IpmiDriver({ host: "127.0.0.1", port: bmc.port, user: "admin", password: PW });
    expect(await d.powerState()).toBe("off");
    await d.power("on");
    await waitFor(() => existsSync(pidFile), 10_000, "the startcmd to run");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(await d.powerState()).toBe("on");
    const err = await d.setBootOnce("pxe").catch((e: Error) => e);
    expect(String(err)).toMatch(/Set System Boot Options .*0xcc \(invalid data field in request\)/);
    expect(d.lastAnswer).toContain("0xcc");
    await d.power("off");
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, "the machine to end");
    expect(await d.powerState()).toBe("off");
  });
});

describe("pyghmi's fakebmc, recording the raw bytes", () => {
  let bmc: Awaited<ReturnType<typeof startFakeBmc>>;
  beforeAll(async () => {
    bmc = await startFakeBmc();
  });
  afterAll(() => bmc?.stop());

  test("next boot once by PXE with the EFI bit is 0xA0 0x04 (ipmitool's options=efiboot), read back whole", async () => {
    const d = new IpmiDriver({ host: "127.0.0.1", port: bmc.port, user: "admin", password: "fakepass" });
    const kept = await d.setBootOnce("pxe");
    expect(bmc.records()).toContainEqual({ bootflags: [0xa0, 0x04, 0, 0, 0] });
    expect(kept).toEqual({ target: "pxe", once: true, uefi: true, raw: "boot flags a0 04 00 00 00" });
    expect(describeKept({ target: "pxe" }, kept)).toBeUndefined();
    const get = ipmitool(bmc.port, "fakepass", "chassis", "bootparam", "get", "5");
    expect(get).toContain("Boot Flag Valid");
    expect(get).toContain("Options apply to only next boot");
    expect(get).toContain("BIOS EFI boot");
    expect(get).toContain("Force PXE");
    await d.setBootOnce("disk");
    expect(bmc.records()).toContainEqual({ bootflags: [0xa0, 0x08, 0, 0, 0] });
    await d.clearBoot();
    expect(bmc.records().at(-1)).toEqual({ bootflags: [0xa0, 0x00, 0, 0, 0] });
  });

  test("a cycle of a machine that is off powers it on; of one that is on, cycles it", async () => {
    const d = new IpmiDriver({ host: "127.0.0.1", port: bmc.port, user: "admin", password: "fakepass" });
    await d.power("off");
    await d.power("cycle");
    await d.power("cycle");
    const power = bmc.records().filter((r) => "power" in r).map((r) => r.power);
    expect(power.slice(-3)).toEqual(["off", "on", "cycle"]);
  });
});

describe("the codec", () => {
  test("AES-CBC-128 with the IPMI pad round-trips at every length, and a packet signed with K1 is checked", () => {
    const key = new Uint8Array(16).fill(7);
    for (let n = 0; n < 40; n++) {
      const plain = Uint8Array.from({ length: n }, (_, i) => i);
      const c = encryptAes(key, plain);
      expect(c.length % 16).toBe(0);
      expect(decryptAes(key, c)).toEqual(plain);
    }
    for (const id of [3, 17]) {
      const suite = CIPHER_SUITES[id]!;
      const r = newRakp(suite, 1, 2, "admin", "pw");
      const m2 = parseRakp2(Uint8Array.from([1, 0, 0, 0, 1, 0, 0, 0, ...new Uint8Array(16).fill(3), ...new Uint8Array(16).fill(4)]))!;
      const keys = sessionKeys(r, m2);
      const p = v20Packet(PAYLOAD.ipmi, 9, 1, Uint8Array.from([1, 2, 3]), keys);
      const back = parsePacket(p, keys);
      expect(back && !("v15" in back) ? [...back.payload] : undefined).toEqual([1, 2, 3]);
      const tampered = p.slice();
      tampered[tampered.length - 1]! ^= 1;
      expect(parsePacket(tampered, keys)).toBeUndefined();
      expect(rakp2Matches(r, { ...m2, code: new Uint8Array(id === 17 ? 32 : 20) })).toBe(false);
    }
  });
});
