/**
 * Real firmware boots from `netboot serve` on an ESXi-shaped ISO whose EFI/BOOT/BOOTX64.EFI is a real EFI
 * program (iPXE's ipxe.efi), until the firmware or iPXE has fetched the ESXi loader and netboot has handed
 * out the iPXE script with the per-MAC boot.cfg URL. The evidence is netboot's own log.
 * Modes: full DHCP server; proxyDHCP beside dnsmasq (addresses only); auto beside dnsmasq.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cleanDissection, startCapture } from "../helpers/capture.ts";
import { startDnsmasq } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";
import { CLIENT_MAC, bootFirmware, type FirmwareMode, type Qemu } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "dnsmasq", "ip", "tcpdump", "tshark"]) requireTool(t);
requireRoot();
for (const f of ["/usr/lib/ipxe/ipxe.efi", "/usr/share/OVMF/OVMF_CODE_4M.fd"]) if (!existsSync(f)) throw new Error(`${f} missing: .ci/run installs ipxe and ovmf`);

const iso = makeEsxiIso({ efi: "/usr/lib/ipxe/ipxe.efi", elTorito: true });
const running: Array<{ stop(): Promise<unknown> }> = [];
let lans: Lan[] = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  for (const l of lans.splice(0)) l.destroy();
});

/** What each firmware path fetches last: the ESXi loader for its platform (BIOS: the disc, by sanboot). */
const loaderFetched: Partial<Record<FirmwareMode, RegExp>> = {
  bios: /"GET \/esxi\/01-52-54-00-12-34-56\.iso" 206 2048 mac=52:54:00:12:34:56/,
  "uefi-pxe": /"GET \/esxi\/mboot\.efi" 200 \d+/,
  "uefi-http": /"GET \/esxi\/mboot\.efi" 200 \d+/,
};

async function boot(mode: FirmwareMode, dhcp: "server" | "proxy" | "auto", net: number): Promise<string> {
  const withSite = dhcp !== "server";
  const lan = createLan(net, [{ name: "srv" }, ...(withSite ? [{ name: "site" }] : [])], ["tap0"]);
  lans.push(lan);
  if (withSite) {
    running.push(await startDnsmasq(lan, "site", 100, 199));
  }
  const args = [iso, "--iface", "lan0", "--name", "esxi", "--state-dir", tempDir("state-"), "-v"];
  if (dhcp === "server") args.push("--dhcp", "server", "--force"); // --force: the link is ours, skip the probe
  if (dhcp === "proxy") args.push("--dhcp", "proxy");
  const srv: Served = await serve(args, { ns: lan.nodes.srv!.ns, readyMs: 40_000 });
  running.push(srv);
  if (dhcp === "auto") expect(srv.log()).toMatch(/--dhcp auto: DHCP server\(s\) 10\.\d+\.0\.2 answered on lan0, so netboot runs as proxyDHCP/);
  // Everything on the wire, for tshark's DHCP dissector afterwards.
  const dump = await startCapture(lan.switchNs, "br0", "udp port 67 or udp port 68 or udp port 4011");
  running.push(dump);
  const qemu: Qemu = bootFirmware(mode, lan.switchNs, "tap0");
  running.push(qemu);
  try {
    await srv.waitLog(loaderFetched[mode]!, 150_000);
    // The iPXE script, with the per-MAC boot.cfg URL, went to this MAC (for UEFI HTTP boot the ipxe.efi
    // standing in for mboot.efi asks for it after it started).
    await srv.waitLog(new RegExp(`"GET /boot\\.ipxe" 200 \\d+ mac=${CLIENT_MAC}`), 100_000);
  } catch (err) {
    const serial = existsSync(join(qemu.dir, "serial.log")) ? readFileSync(join(qemu.dir, "serial.log"), "utf8").slice(-3000) : "";
    throw new Error(`${(err as Error).message}\n--- netboot log ---\n${srv.log()}\n--- serial ---\n${serial}`);
  }
  await dump.stop();
  // Every DHCP reply netboot sent decodes in tshark without a malformed or error mark.
  cleanDissection(dump.file, `ip.src == 10.${net}.0.1 && dhcp`);
  return srv.log();
}

describe("real firmware, netboot as the link's DHCP server", () => {
  test("SeaBIOS + iPXE ROM: DHCP → /boot.ipxe → sanboot of the per-MAC disc image", async () => {
    const log = await boot("bios", "server", 221);
    expect(log).toMatch(/DISCOVER → OFFER 10\.221\.0\.\d+, boot http:\/\/10\.221\.0\.1\/boot\.ipxe/);
  }, 240_000);

  test("OVMF UEFI PXE: DHCP → TFTP ipxe/snponly.efi (tsize, blksize 1468, windowsize 4) → iPXE → mboot.efi", async () => {
    const log = await boot("uefi-pxe", "server", 222);
    expect(log).toMatch(/DISCOVER → OFFER 10\.222\.0\.\d+, boot ipxe\/snponly\.efi/);
    expect(log).toMatch(/RRQ ipxe\/snponly\.efi: \d+ bytes, blksize 1468, windowsize 4/);
    expect(log).toMatch(/sent ipxe\/snponly\.efi to /);
    expect(log).toMatch(/DISCOVER → OFFER 10\.222\.0\.\d+, boot http:\/\/10\.222\.0\.1\/boot\.ipxe/);
  }, 240_000);

  test("OVMF UEFI HTTP boot: HTTPClient offer → HEAD and GET of mboot.efi", async () => {
    const log = await boot("uefi-http", "server", 223);
    expect(log).toMatch(/DISCOVER → OFFER 10\.223\.0\.\d+, boot http:\/\/10\.223\.0\.1\/esxi\/mboot\.efi/);
    expect(log).toMatch(/"HEAD \/esxi\/mboot\.efi" 200/);
  }, 240_000);
});

describe("real firmware, netboot as proxyDHCP beside dnsmasq (addresses from dnsmasq)", () => {
  test("SeaBIOS + iPXE ROM", async () => {
    const log = await boot("bios", "proxy", 224);
    expect(log).toMatch(/DISCOVER → OFFER \(proxy\), boot http:\/\/10\.224\.0\.1\/boot\.ipxe/);
    expect(log).not.toMatch(/ACK 10\.224/); // no address came from netboot
  }, 240_000);

  test("OVMF UEFI PXE (also asks port 4011)", async () => {
    const log = await boot("uefi-pxe", "proxy", 225);
    expect(log).toMatch(/DISCOVER → OFFER \(proxy\), boot ipxe\/snponly\.efi/);
    expect(log).toMatch(/REQUEST on port 4011 → ACK \(proxy\), boot ipxe\/snponly\.efi/);
  }, 240_000);

  test("OVMF UEFI HTTP boot (dnsmasq's own proxy mode cannot do this)", async () => {
    const log = await boot("uefi-http", "proxy", 226);
    expect(log).toMatch(/DISCOVER → OFFER \(proxy\), boot http:\/\/10\.226\.0\.1\/esxi\/mboot\.efi/);
  }, 240_000);
});

describe("real firmware, --dhcp auto beside dnsmasq", () => {
  test("OVMF UEFI PXE: auto finds dnsmasq, answers as proxyDHCP, the client boots", async () => {
    const log = await boot("uefi-pxe", "auto", 227);
    expect(log).toMatch(/OFFER \(proxy\)/);
  }, 240_000);
});
