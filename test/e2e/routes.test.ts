/**
 * The boot routes the loader itself walks, under QEMU with real firmware, to a guest that checks every
 * module it was handed (test/e2e/guest.ts):
 *
 *  - UEFI PXE with --no-ipxe: OVMF loads the loader by TFTP; the loader reads its per-MAC boot.cfg and
 *    every module by TFTP, through OVMF's own PXE Base Code, with the paths the boot.cfg gives (TFTP paths).
 *  - UEFI Secure Boot (OVMF with Debian's snakeoil keys): the firmware refuses Debian's unsigned
 *    snponly.efi; netboot notices that iPXE never started and, on the machine's next boot, sends the
 *    signed loader by TFTP, which runs and loads everything.
 *  - BIOS: SeaBIOS + iPXE, /boot.ipxe, sanboot of the disc image over HTTP; the ISO's own El Torito boot
 *    (Debian's ISOLINUX 6.04 → syslinux's mboot.c32) reads BOOT.CFG and the modules from iPXE's emulated
 *    CD-ROM and starts a Multiboot test kernel, which sees the BOOT.CFG rewritten for its MAC.
 *
 * Each test prints the time from QEMU's start to the guest's last line (the closing notes quote them).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fnv1a } from "../../src/files/tree.ts";
import { bootCfgText, makeEsxiIso, testModules } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, run, tempDir } from "../helpers/tools.ts";
import { buildGuests, parseModules, syslinuxFiles } from "./guest.ts";
import { CLIENT_MAC, bootFirmware, type FirmwareMode, type Qemu, afterEachTest } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "ip", "gcc", "ld", "objcopy", "sbsign", "sbverify", "openssl", "xorriso"]) requireTool(t);
requireRoot();

const guests = buildGuests();
const { running, lans } = afterEachTest(afterEach);

const ks = join(tempDir(), "ks.cfg");
writeFileSync(ks, "vmaccepteula\ninstall --firstdisk --overwritevmfs\n");

/** The image's files by upper-case name, for comparing what the guest was handed. */
function imageFiles(iso: string): Map<string, Uint8Array> {
  const dir = join(tempDir("iso-x-"), "x");
  run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", dir], { stdio: ["ignore", "ignore", "pipe"] });
  const out = new Map<string, Uint8Array>();
  for (const name of ["B.B00", ...testModules.map((m) => m.toUpperCase())]) out.set(name, new Uint8Array(readFileSync(join(dir, name))));
  return out;
}

async function server(net: number, iso: string, extra: string[]): Promise<{ lan: Lan; srv: Served }> {
  const lan = createLan(net, [{ name: "srv" }], ["tap0"]);
  lans.push(lan);
  const srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--force", "--state-dir", tempDir("state-"), "--ks", ks, "--allow", CLIENT_MAC, "-v", ...extra], { ns: lan.nodes.srv!.ns, readyMs: 40_000 });
  running.push(srv);
  return { lan, srv };
}

function start(mode: FirmwareMode, lan: Lan): Qemu {
  const q = bootFirmware(mode, lan.switchNs, "tap0");
  running.push(q);
  return q;
}

/** Waits for `done` on the guest's console; fails early on `fail`, or when QEMU ends without it. */
async function waitSerial(q: Qemu, srv: Served, done: RegExp, timeoutMs: number, fail?: RegExp): Promise<number> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const text = q.serial();
    if (done.test(text)) return (performance.now() - q.started) / 1000;
    const why = fail?.exec(text)?.[0] ?? (q.proc.exitCode !== null ? `QEMU exited ${q.proc.exitCode}` : performance.now() > until ? `no ${done} within ${timeoutMs / 1000} s` : undefined);
    if (why) throw new Error(`${why}\n--- netboot log ---\n${srv.log().slice(-6000)}\n--- serial ---\n${text.slice(-4000)}`);
    await Bun.sleep(250);
  }
}

function expectModules(serial: string, files: Map<string, Uint8Array>, names: string[], pathOf: (name: string) => string): void {
  const mods = parseModules(serial);
  const want = names.map((n) => ({ name: pathOf(n), size: files.get(n.toUpperCase())!.length, fnv: fnv1a(files.get(n.toUpperCase())!) }));
  expect(mods.map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(want);
}

describe("routes the loader walks, under QEMU", () => {
  test("UEFI HTTP boot: the loader by URL, then its per-MAC boot.cfg and every module over the firmware's HTTP", async () => {
    const iso = makeEsxiIso({ efi: guests.loader });
    const { lan, srv } = await server(234, iso, []);
    const q = start("uefi-http", lan);
    const seconds = await waitSerial(q, srv, /NETBOOT-TEST-LOADER-DONE/, 170_000, /NETBOOT-TEST-LOADER-FAIL.*|No http Content-Length.*/);
    const serial = q.serial();
    expect(serial).toContain("route=uefi-http bootfile=http://10.234.0.1/esxi/mboot.efi");
    expect(serial).toMatch(/^config http:\/\/10\.234\.0\.1\/esxi\/01-52-54-00-12-34-56\/boot\.cfg size=\d+$/m);
    expectModules(serial, imageFiles(iso), ["b.b00", ...testModules], (n) => `http://10.234.0.1/esxi/${n}`);
    // Sizes first (HEAD), then the loads (GET).
    const log = srv.log();
    expect(log.indexOf(`"HEAD /esxi/imgpayld.tgz"`)).toBeLessThan(log.indexOf(`"GET /esxi/b.b00"`));
    console.log(`time to the last module, UEFI HTTP boot: ${seconds.toFixed(1)} s`);
  }, 200_000);

  test("UEFI PXE → iPXE: snponly.efi by TFTP, /boot.ipxe, the loader with -c, modules through iPXE", async () => {
    const iso = makeEsxiIso({ efi: guests.loader });
    const { lan, srv } = await server(235, iso, []);
    const q = start("uefi-pxe", lan);
    const seconds = await waitSerial(q, srv, /NETBOOT-TEST-LOADER-DONE/, 170_000, /NETBOOT-TEST-LOADER-FAIL.*/);
    const serial = q.serial();
    expect(serial).toContain("route=ipxe-download bootfile= config=http://10.235.0.1/esxi/01-52-54-00-12-34-56/boot.cfg");
    expectModules(serial, imageFiles(iso), ["b.b00", ...testModules], (n) => `http://10.235.0.1/esxi/${n}`);
    expect(srv.log()).toMatch(/"GET \/boot\.ipxe" 200 \d+ mac=52:54:00:12:34:56/);
    console.log(`time to the last module, UEFI PXE → iPXE: ${seconds.toFixed(1)} s`);
  }, 200_000);

  test("UEFI PXE, --no-ipxe: the loader by TFTP, then boot.cfg and every module by TFTP path", async () => {
    const iso = makeEsxiIso({ efi: guests.loader });
    const { lan, srv } = await server(231, iso, ["--no-ipxe"]);
    const q = start("uefi-pxe", lan);
    const seconds = await waitSerial(q, srv, /NETBOOT-TEST-LOADER-DONE/, 170_000, /NETBOOT-TEST-LOADER-FAIL.*/);
    const serial = q.serial();
    expect(serial).toContain("bootfile=esxi/mboot.efi");
    // The per-MAC boot.cfg in the loader's own directory, with a TFTP prefix and a larger blksize.
    expect(serial).toMatch(/^config esxi\/01-52-54-00-12-34-56\/boot\.cfg size=\d+$/m);
    expect(serial).toMatch(/^prefix=esxi blksize=16384 kernelopt=runweasel ks=http:\/\/10\.231\.0\.1\/esxi\/01-52-54-00-12-34-56\/ks\.cfg$/m);
    expectModules(serial, imageFiles(iso), ["b.b00", ...testModules], (n) => `esxi/${n}`);
    const log = srv.log();
    // The first module request arrives as a TFTP path; no request ever names a URL.
    expect(log).toMatch(/RRQ esxi\/b\.b00: 300000 bytes, blksize 16384, windowsize 4/);
    expect(log).not.toMatch(/RRQ http/);
    expect(log).toMatch(/sent esxi\/01-52-54-00-12-34-56\/boot\.cfg to /);
    console.log(`time to the last module, UEFI PXE → signed loader by TFTP: ${seconds.toFixed(1)} s`);
  }, 200_000);

  test("UEFI Secure Boot: unsigned snponly.efi refused; on the next boot the signed loader by TFTP runs", async () => {
    const iso = makeEsxiIso({ efi: guests.signedLoader });
    const { lan, srv } = await server(232, iso, []);
    const first = start("uefi-pxe-secure-boot", lan);
    // OVMF downloads snponly.efi, refuses it, and tries its next boot option (HTTP boot): a DHCP request
    // from firmware, not from iPXE, so netboot remembers the MAC.
    await srv.waitLog(/sent ipxe\/snponly\.efi to /, 150_000);
    await srv.waitLog(new RegExp(`${CLIENT_MAC}: iPXE never started: Secure Boot\\? using the signed ESXi loader over TFTP`), 120_000);
    const refused = await waitSerial(first, srv, /Access Denied/, 30_000);
    await first.stop();
    const t0 = performance.now();
    const again = start("uefi-pxe-secure-boot", lan);
    const seconds = await waitSerial(again, srv, /NETBOOT-TEST-LOADER-DONE/, 170_000, /NETBOOT-TEST-LOADER-FAIL.*/);
    expect(srv.log()).toMatch(/DISCOVER → OFFER 10\.232\.0\.\d+, boot esxi\/mboot\.efi\n/);
    expect(srv.log()).toMatch(/REQUEST on port 4011 → ACK \(proxy\), boot esxi\/mboot\.efi: UEFI PXE, iPXE never started: Secure Boot\? using the signed ESXi loader over TFTP: the signed ESXi loader by TFTP/);
    expectModules(again.serial(), imageFiles(iso), ["b.b00", ...testModules], (n) => `esxi/${n}`);
    console.log(`UEFI Secure Boot: snponly.efi refused ${refused.toFixed(1)} s into the first boot; second boot to the last module ${seconds.toFixed(1)} s (${((performance.now() - t0) / 1000).toFixed(1)} s wall)`);
  }, 400_000);

  test("BIOS: iPXE sanboots the disc image; ISOLINUX → mboot.c32 → the test kernel gets every module and the rewritten BOOT.CFG", async () => {
    const sys = syslinuxFiles();
    const modules = ["/boot.cfg", ...testModules.map((m) => `/${m}`)];
    const iso = makeEsxiIso({
      elTorito: { isolinux: sys["ISOLINUX.BIN"]! },
      extra: {
        "B.B00": readFileSync(guests.kernel),
        "LDLINUX.C32": readFileSync(sys["LDLINUX.C32"]!),
        "LIBCOM32.C32": readFileSync(sys["LIBCOM32.C32"]!),
        "MBOOT.C32": readFileSync(sys["MBOOT.C32"]!),
        // syslinux's mboot.c32 takes the kernel and modules on its command line (VMware's reads BOOT.CFG
        // itself); BOOT.CFG goes along as a module, so the kernel shows what the loader would have read.
        "ISOLINUX.CFG": `DEFAULT netboot\nPROMPT 0\nTIMEOUT 1\nLABEL netboot\n  KERNEL mboot.c32\n  APPEND /b.b00 runweasel --- ${modules.join(" --- ")}\n`,
      },
    });
    const { lan, srv } = await server(233, iso, []);
    const q = start("bios", lan);
    const seconds = await waitSerial(q, srv, /NETBOOT-TEST-KERNEL-DONE/, 170_000, /not multiboot/);
    const serial = q.serial();
    expect(serial).toMatch(/NETBOOT-TEST-KERNEL magic=2badb002 cmdline=\/b\.b00 runweasel modules=9/);
    // The BOOT.CFG it read from the CD: the image's paths, kickstart and BOOTIF for this MAC in kernelopt.
    const cfgShown = [...serial.matchAll(/^\| (.*)$/gm)].map((m) => m[1]).join("\n");
    expect(cfgShown).toContain("kernel=/b.b00");
    expect(cfgShown).toContain("kernelopt=runweasel ks=http://10.233.0.1/esxi/01-52-54-00-12-34-56/ks.cfg BOOTIF=01-52-54-00-12-34-56");
    const files = imageFiles(iso);
    const mods = parseModules(serial);
    expect(mods[0]!.name).toBe("/boot.cfg");
    expect(mods.slice(1).map(({ name, size, fnv }) => ({ name, size, fnv }))).toEqual(testModules.map((m) => ({ name: `/${m}`, size: files.get(m.toUpperCase())!.length, fnv: fnv1a(files.get(m.toUpperCase())!) })));
    expect(bootCfgText).toContain("cdromBoot");
    expect(cfgShown).not.toContain("cdromBoot");
    const log = srv.log();
    expect(log).toMatch(/"HEAD \/esxi\/01-52-54-00-12-34-56\.iso" 200 0 mac=52:54:00:12:34:56/);
    const reads = log.match(/"GET \/esxi\/01-52-54-00-12-34-56\.iso" 206/g)?.length ?? 0;
    console.log(`time to the test kernel, BIOS sanboot: ${seconds.toFixed(1)} s, ${reads} range requests for a ${(Bun.file(iso).size / 1e6).toFixed(1)} MB image`);
  }, 200_000);
});
