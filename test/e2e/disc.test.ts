/**
 * Each machine's own ISO, booted by real UEFI firmware (OVMF under QEMU, TCG) the two ways a BMC or a
 * firmware takes it, to the test loader (guest/loader.c) in the ISO's own UEFI El Torito image:
 *
 *  - as a CD read by URL (what BMC virtual media does): QEMU's curl block driver reads
 *    /esxi/01-<mac>.iso from netboot by range requests, from another namespace on the link;
 *  - as a UEFI HTTP boot URL (via: iso-url): netboot's DHCP hands this host its ISO's URL, OVMF downloads
 *    it (application/vnd.efi-iso), makes it a RAM disk and boots it as a CD.
 *
 * Either way the loader reads /EFI/BOOT/BOOT.CFG from the disc (its own directory, no per-MAC lookup, as
 * mboot from a CD): the host's ks= and BOOTIF must be in kernelopt, and every module byte-exact.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fnv1a } from "../../src/files/tree.ts";
import { makeEsxiIso, testModules } from "../helpers/esxi-iso.ts";
import { createLan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, run, tempDir } from "../helpers/tools.ts";
import { buildGuests, parseModules } from "./guest.ts";
import { CLIENT_MAC, bootFirmware, type Qemu, afterEachTest } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "ip", "gcc", "xorriso", "mkfs.vfat", "mcopy"]) requireTool(t);
requireRoot();

const guests = buildGuests();
const { running, lans } = afterEachTest(afterEach);

const dir = tempDir("disc-e2e-");
writeFileSync(join(dir, "ks.cfg"), "vmaccepteula\ninstall --firstdisk --overwritevmfs\n");
const iso = makeEsxiIso({ efi: guests.loader, uefiElTorito: guests.loader });
const MACDIR = `01-${CLIENT_MAC.replaceAll(":", "-")}`;

function imageFiles(): Map<string, Uint8Array> {
  const x = join(tempDir("iso-x-"), "x");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", x], { stdio: ["ignore", "ignore", "pipe"] });
  const out = new Map<string, Uint8Array>();
  for (const name of ["B.B00", ...testModules.map((m) => m.toUpperCase())]) out.set(name, new Uint8Array(readFileSync(join(x, name))));
  return out;
}

function lab(net: number, via: string): string {
  const f = join(tempDir("lab-"), "lab.yaml");
  writeFileSync(f, `server: { iface: lan0, dhcp: server, force: true }\nimages: { esxi: ${iso} }\ndefaults: { image: esxi, kickstart: ${join(dir, "ks.cfg")} }\nhosts:\n  - { mac: "${CLIENT_MAC}", hostname: esx-disc, ip: 10.${net}.0.50, via: ${via} }\n`);
  return f;
}

async function waitSerial(q: Qemu, srv: Served, timeoutMs: number): Promise<number> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const text = q.serial();
    if (/NETBOOT-TEST-LOADER-DONE/.test(text)) return (performance.now() - q.started) / 1000;
    const why = /NETBOOT-TEST-LOADER-FAIL.*/.exec(text)?.[0] ?? (q.proc.exitCode !== null ? `QEMU exited ${q.proc.exitCode}` : performance.now() > until ? `no NETBOOT-TEST-LOADER-DONE within ${timeoutMs / 1000} s` : undefined);
    if (why) throw new Error(`${why}\n--- netboot log ---\n${srv.log().slice(-5000)}\n--- serial ---\n${text.slice(-4000)}`);
    await Bun.sleep(250);
  }
}

function expectDiscBoot(serial: string, net: number): void {
  expect(serial).toMatch(/NETBOOT-TEST-LOADER route=disc bootfile=\/EFI\/BOOT\/BOOTX64\.EFI/);
  expect(serial).toMatch(/^config \/EFI\/BOOT\/BOOT\.CFG size=\d+$/m);
  expect(serial).toMatch(new RegExp(`^prefix=\\S* blksize=\\d+ kernelopt=runweasel ks=http://10\\.${net}\\.0\\.1/esxi/${MACDIR}/ks\\.cfg BOOTIF=${MACDIR}$`, "m"));
  const files = imageFiles();
  const want = ["b.b00", ...testModules].map((n) => ({ name: `/${n}`, size: files.get(n.toUpperCase())!.length, fnv: fnv1a(files.get(n.toUpperCase())!) }));
  expect(parseModules(serial).map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(want);
}

describe("the host's own ISO under OVMF", () => {
  test("as a CD read by URL (virtual media): its ks= in kernelopt, every module byte-exact", async () => {
    const net = 191;
    const lan = createLan(net, [{ name: "srv" }, { name: "bmc", ip: `10.${net}.0.5` }]);
    lans.push(lan);
    const srv = await serve(["--config", lab(net, "virtual-media"), "--state-dir", tempDir("state-"), "-v"], { ns: lan.nodes.srv!.ns, readyMs: 40_000 });
    running.push(srv);
    const q = bootFirmware("uefi-cd", lan.nodes.bmc!.ns, "", { cdrom: `http://10.${net}.0.1/esxi/${MACDIR}.iso` });
    running.push(q);
    const seconds = await waitSerial(q, srv, 170_000);
    expectDiscBoot(q.serial(), net);
    // QEMU's curl driver read it by ranges; netboot answered each with 206 from the BMC's address.
    expect(srv.log()).toMatch(new RegExp(`10\\.${net}\\.0\\.5 "GET /esxi/${MACDIR}\\.iso" 206 `));
    console.log(`time to the last module, the host's ISO as a virtual CD: ${seconds.toFixed(1)} s`);
  }, 200_000);

  test("as a UEFI HTTP boot URL (via: iso-url): DHCP names its ISO, OVMF boots it as a RAM disk", async () => {
    const net = 192;
    const lan = createLan(net, [{ name: "srv" }], ["tap0"]);
    lans.push(lan);
    const srv = await serve(["--config", lab(net, "iso-url"), "--state-dir", tempDir("state-"), "-v"], { ns: lan.nodes.srv!.ns, readyMs: 40_000 });
    running.push(srv);
    const q = bootFirmware("uefi-http", lan.switchNs, "tap0");
    running.push(q);
    const seconds = await waitSerial(q, srv, 170_000);
    expectDiscBoot(q.serial(), net);
    expect(srv.log()).toMatch(new RegExp(`boot http://10\\.${net}\\.0\\.1/esxi/${MACDIR}\\.iso`));
    expect(srv.log()).toMatch(new RegExp(`"GET /esxi/${MACDIR}\\.iso" 200 \\d+`));
    console.log(`time to the last module, the host's ISO by UEFI HTTP boot: ${seconds.toFixed(1)} s`);
  }, 200_000);
});
