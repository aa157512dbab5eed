import { describe, expect, test } from "bun:test";
import { decideBoot, firmwareOf, type HostSnapshot, type PolicyConfig } from "../../src/boot/policy.ts";
import type { BootClient } from "../../src/boot/types.ts";
import type { BootImage } from "../../src/boot/image.ts";
import { bootClientFromDhcp } from "../../src/dhcp/client.ts";
import { decodeDhcpPacket } from "../../src/dhcp/packet.ts";
import { readHexFixture } from "../helpers/hex.ts";

const esxi = (arm64 = false): BootImage =>
  ({
    name: "esxi",
    tree: { disc: { bootable: true } } as never,
    mtime: undefined,
    esxi: { biosCfg: { lines: [], crlf: false }, efiLoader: "/EFI/BOOT/BOOTX64.EFI", arm64Loader: arm64 ? "/EFI/BOOT/BOOTAA64.EFI" : undefined, biosLoader: "/MBOOT.C32", displayName: "ESXi 8.0.2 (22380479)" },
  }) as unknown as BootImage;

const cfg = (over: Partial<PolicyConfig> & { image?: BootImage } = {}): PolicyConfig => ({
  images: [over.image ?? esxi()],
  httpBase: "http://10.0.0.1",
  ipxe: { undionly: true, snponly: true },
  noIpxe: false,
  ...Object.fromEntries(Object.entries(over).filter(([k]) => k !== "image")),
});

const client = (over: Partial<BootClient>): BootClient => ({
  mac: "52:54:00:12:34:56",
  arch: undefined,
  vendorClass: undefined,
  userClass: [],
  ipxeOptions: false,
  uuid: undefined,
  relayed: false,
  ...over,
});
const pxe = (arch: number) => client({ arch, vendorClass: `PXEClient:Arch:${String(arch).padStart(5, "0")}:UNDI:003000` });
const fixture = (n: string) => bootClientFromDhcp(decodeDhcpPacket(readHexFixture(`dhcp/${n}.hex`)));

describe("boot policy: every row", () => {
  test.each<[string, BootClient, PolicyConfig, object]>([
    ["BIOS PXE (arch 0) → TFTP ipxe/undionly.kpxe", pxe(0), cfg(), { action: "boot", firmware: "bios", transport: "tftp", file: "ipxe/undionly.kpxe", vendorClass: "PXEClient" }],
    ["BIOS PXE without option 93 (old ROM) → treated as BIOS", client({ vendorClass: "PXEClient:Arch:00000:UNDI:002001" }), cfg(), { action: "boot", firmware: "bios", file: "ipxe/undionly.kpxe" }],
    ["UEFI x64 PXE (arch 7, OVMF's DISCOVER) → TFTP ipxe/snponly.efi", fixture("ovmf-pxe-discover"), cfg(), { action: "boot", firmware: "efi-x64", transport: "tftp", file: "ipxe/snponly.efi" }],
    ["UEFI x64 PXE (arch 9) → TFTP ipxe/snponly.efi", pxe(9), cfg(), { action: "boot", firmware: "efi-x64", file: "ipxe/snponly.efi" }],
    ["UEFI x64 PXE with --no-ipxe → TFTP NAME/mboot.efi", pxe(7), cfg({ noIpxe: true }), { action: "boot", transport: "tftp", file: "esxi/mboot.efi" }],
    ["UEFI x64 PXE, iPXE binaries missing → the ESXi loader", pxe(7), cfg({ ipxe: { undionly: false, snponly: false } }), { action: "boot", file: "esxi/mboot.efi" }],
    ["UEFI HTTP boot (OVMF's DISCOVER, arch 16) → URL of mboot.efi, HTTPClient", fixture("ovmf-http-discover"), cfg(), { action: "boot", firmware: "efi-x64-http", transport: "http", file: "http://10.0.0.1/esxi/mboot.efi", vendorClass: "HTTPClient" }],
    ["iPXE (snponly.efi's DISCOVER: user class + option 175) → /boot.ipxe", fixture("ipxe-efi-discover"), cfg(), { action: "boot", firmware: "ipxe", transport: "http", file: "http://10.0.0.1/boot.ipxe", vendorClass: "PXEClient" }],
    ["QEMU's BIOS ROM, which is iPXE → /boot.ipxe (no TFTP step)", fixture("ipxe-bios-rom-discover"), cfg(), { action: "boot", firmware: "ipxe", file: "http://10.0.0.1/boot.ipxe" }],
    ["iPXE marked only by option 175", client({ ipxeOptions: true, arch: 7 }), cfg(), { action: "boot", firmware: "ipxe" }],
    ["ARM64 UEFI PXE (arch 11), image with BOOTAA64.EFI", pxe(11), cfg({ image: esxi(true) }), { action: "boot", firmware: "efi-arm64", transport: "tftp", file: "esxi/EFI/BOOT/BOOTAA64.EFI" }],
    ["ARM64 UEFI HTTP (arch 19), image with BOOTAA64.EFI", client({ arch: 19, vendorClass: "HTTPClient:Arch:00019:UNDI:003000" }), cfg({ image: esxi(true) }), { action: "boot", transport: "http", file: "http://10.0.0.1/esxi/EFI/BOOT/BOOTAA64.EFI", vendorClass: "HTTPClient" }],
    ["ARM64 UEFI, image without BOOTAA64.EFI → ignore", pxe(11), cfg(), { action: "ignore", reason: "ARM64 UEFI client, but esxi has no EFI/BOOT/BOOTAA64.EFI" }],
    ["BIOS without undionly.kpxe → ignore", pxe(0), cfg({ ipxe: { undionly: false, snponly: true } }), { action: "ignore" }],
    ["32-bit UEFI → ignore", pxe(6), cfg(), { action: "ignore", reason: "32-bit UEFI client: ESXi has no loader for it" }],
    ["unknown architecture → ignore", pxe(42), cfg(), { action: "ignore", reason: "unknown client architecture 42" }],
    ["a plain DHCP client (no PXE vendor class) → ignore", client({ vendorClass: "udhcp 1.35.0" }), cfg(), { action: "ignore" }],

    ["Intel Mac (BSDP vendor class) → iPXE snponly.efi", client({ vendorClass: "AAPLBSDPC/i386/iMac14,3" }), cfg(), { action: "boot", firmware: "apple", file: "ipxe/snponly.efi" }],
  ])("%s", (_name, c, config, want) => {
    expect(decideBoot(c, {}, config)).toMatchObject(want);
  });

  test.each<[string, BootClient, PolicyConfig, HostSnapshot, object]>([
    ["--secure-boot: UEFI PXE → the signed loader by TFTP", pxe(7), cfg({ secureBoot: true }), {}, { action: "boot", transport: "tftp", file: "esxi/mboot.efi", why: "UEFI PXE, --secure-boot: the signed ESXi loader by TFTP" }],
    ["a host whose iPXE never started → the signed loader by TFTP", pxe(7), cfg(), { signedLoader: "iPXE never started" }, { action: "boot", file: "esxi/mboot.efi", why: "UEFI PXE, iPXE never started: the signed ESXi loader by TFTP" }],
    ["--secure-boot leaves UEFI HTTP boot (already the signed loader) as it is", fixture("ovmf-http-discover"), cfg({ secureBoot: true }), {}, { transport: "http", file: "http://10.0.0.1/esxi/mboot.efi" }],
    ["--secure-boot leaves BIOS on iPXE", pxe(0), cfg({ secureBoot: true }), {}, { file: "ipxe/undionly.kpxe" }],
    ["a remembered host's iPXE DHCP still gets the script", fixture("ipxe-efi-discover"), cfg(), { signedLoader: "x" }, { file: "http://10.0.0.1/boot.ipxe" }],
  ])("%s", (_name, c, config, host, want) => {
    expect(decideBoot(c, host, config)).toMatchObject(want);
  });

  test.each<[string, BootClient, HostSnapshot, object]>([
    ["a machine not on the list → ignore with the reason (every protocol: no boot answer)", pxe(7), { refused: "not listed (deny by default)" }, { action: "ignore", reason: "not listed (deny by default)" }],
    ["mode local → boot from its own disk", pxe(7), { localBoot: "mode local" }, { action: "local", reason: "mode local" }],
    ["once and done → boot from its own disk, also for its iPXE", fixture("ipxe-efi-discover"), { localBoot: "installed" }, { action: "local" }],
    ["the host's own image", pxe(7), { image: "esxi7" }, { action: "boot", image: { name: "esxi7" } }],
    ["an unknown image name → the first image", pxe(7), { image: "nope" }, { action: "boot", image: { name: "esxi" } }],
    ["a plain DHCP client is still not a boot request, listed or not", client({ vendorClass: "udhcp 1.35.0" }), { localBoot: "x" }, { action: "ignore" }],
  ])("%s", (_name, c, host, want) => {
    const config = { ...cfg(), images: [esxi(), { ...esxi(), name: "esxi7" } as BootImage] };
    expect(decideBoot(c, host, config)).toMatchObject(want);
  });

  test("BIOS clients are not sent iPXE for an image they cannot boot", () => {
    const dir = { ...esxi(), tree: {} } as unknown as BootImage;
    expect(decideBoot(pxe(0), {}, cfg({ image: dir }))).toMatchObject({ action: "ignore", reason: expect.stringContaining("is a directory") });
    const noTorito = { ...esxi(), tree: { disc: { bootable: false } } } as unknown as BootImage;
    expect(decideBoot(pxe(0), {}, cfg({ image: noTorito }))).toMatchObject({ action: "ignore", reason: expect.stringContaining("no El Torito") });
  });

  test("the policy is pure: the same answer every time it is asked", () => {
    const c = fixture("ovmf-pxe-discover");
    const a = decideBoot(c, {}, cfg());
    for (let i = 0; i < 5; i++) expect(decideBoot(c, {}, cfg())).toEqual(a);
  });

  test("firmware names", () => {
    expect(firmwareOf(pxe(7))).toBe("efi-x64");
    expect(firmwareOf(client({ arch: 7, vendorClass: "HTTPClient" }))).toBe("efi-x64-http");
  });
});
