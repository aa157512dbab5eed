import { describe, expect, test } from "bun:test";
import { decideBoot, type PolicyConfig } from "../../src/boot/policy.ts";
import type { BootImage } from "../../src/boot/image.ts";
import { bootClientFromDhcp } from "../../src/dhcp/client.ts";
import { MessageType, Opt } from "../../src/dhcp/constants.ts";
import { LeasePool } from "../../src/dhcp/leases.ts";
import { decodeDhcpPacket, emptyPacket, optIp, optString, optU32, optU8, str, u8, type DhcpPacket } from "../../src/dhcp/packet.ts";
import { proxyResponder, serverResponder, type DhcpAnswer, type Outcome, type ScopedPool } from "../../src/dhcp/responders.ts";
import { replyDestination } from "../../src/dhcp/transmit.ts";
import { formatIPv4, ipv4ToBytes, parseIPv4, subnetOf } from "../../src/wire/ipv4.ts";
import { macToBytes } from "../../src/wire/mac.ts";
import { readHexFixture } from "../helpers/hex.ts";

const ip = parseIPv4;
const SERVER = ip("10.77.0.1");
const image = { name: "esxi", esxi: { efiLoader: "/EFI/BOOT/BOOTX64.EFI", arm64Loader: undefined, displayName: "ESXi" } } as unknown as BootImage;
const policy: PolicyConfig = { images: [image], httpBase: "http://10.77.0.1", ipxe: { undionly: true, snponly: true }, noIpxe: false };
const decide = (c: ReturnType<typeof bootClientFromDhcp>) => decideBoot(c, {}, policy);

function local(): ScopedPool {
  const subnet = subnetOf(SERVER, 24);
  return {
    pool: new LeasePool({ start: ip("10.77.0.100"), end: ip("10.77.0.199"), subnet, exclude: [SERVER], reservations: [], leaseSeconds: 3600, offerSeconds: 60, declineSeconds: 600 }),
    net: { subnet, router: ip("10.77.0.254"), dns: [ip("10.77.0.53")], domain: "lab.example" },
    relayed: false,
  };
}

function request(type: number, mac: string, opts: Record<number, Uint8Array> = {}, fields: Partial<DhcpPacket> = {}): DhcpPacket {
  const p = emptyPacket();
  p.op = 1;
  p.xid = 0x1234;
  p.chaddr.set(macToBytes(mac));
  p.options.set(Opt.MessageType, u8(type));
  for (const [k, v] of Object.entries(opts)) p.options.set(Number(k), v);
  return Object.assign(p, fields);
}

const run = (r: ReturnType<typeof serverResponder>, p: DhcpPacket, viaPxePort = false): Outcome =>
  r.handle({ packet: p, client: bootClientFromDhcp(p), viaPxePort, source: { address: "0.0.0.0", port: 68 } });
const only = (o: Outcome): DhcpAnswer => {
  if (!o || !("answers" in o) || o.answers.length !== 1) throw new Error(`expected one answer, got ${JSON.stringify(o)}`);
  return o.answers[0]!;
};

describe("full DHCP server responder", () => {
  const mac = "52:54:00:12:34:56";

  test("OVMF's DISCOVER → OFFER with address, network options and where to boot", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const disc = decodeDhcpPacket(readHexFixture("dhcp/ovmf-pxe-discover.hex"));
    const a = only(run(r, disc)).packet;
    expect(optU8(a, Opt.MessageType)).toBe(MessageType.Offer);
    expect(formatIPv4(a.yiaddr)).toBe("10.77.0.100");
    expect(a.xid).toBe(disc.xid);
    expect(a.flags).toBe(disc.flags);
    expect(optIp(a, Opt.ServerIdentifier)).toBe(SERVER);
    expect(formatIPv4(optIp(a, Opt.SubnetMask)!)).toBe("255.255.255.0");
    expect(formatIPv4(optIp(a, Opt.Router)!)).toBe("10.77.0.254");
    expect(formatIPv4(optIp(a, Opt.DomainServer)!)).toBe("10.77.0.53");
    expect(optString(a, Opt.DomainName)).toBe("lab.example");
    expect(optU32(a, Opt.LeaseTime)).toBe(3600);
    expect(optU32(a, Opt.RenewalTime)).toBe(1800);
    expect(optU32(a, Opt.RebindingTime)).toBe(3150);
    expect(a.siaddr).toBe(SERVER);
    expect(a.file).toBe("ipxe/snponly.efi");
    expect(a.sname).toBe("10.77.0.1");
    expect(optString(a, Opt.VendorClass)).toBe("PXEClient");
    expect(optString(a, Opt.BootfileName)).toBe("ipxe/snponly.efi"); // OVMF asks for 67 in its request list
  });

  test("SELECTING REQUEST for our offer → ACK; for another server's → silence and the hold dropped", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const offer = only(run(r, request(MessageType.Discover, mac))).packet;
    const ack = only(run(r, request(MessageType.Request, mac, { [Opt.RequestedAddress]: ipv4ToBytes(offer.yiaddr), [Opt.ServerIdentifier]: ipv4ToBytes(SERVER) }))).packet;
    expect(optU8(ack, Opt.MessageType)).toBe(MessageType.Ack);
    expect(ack.yiaddr).toBe(offer.yiaddr);
    expect(s.pool.byMac(mac)?.state).toBe("bound");
    const other = "52:54:00:99:99:99";
    run(r, request(MessageType.Discover, other));
    expect(run(r, request(MessageType.Request, other, { [Opt.RequestedAddress]: ipv4ToBytes(ip("10.77.0.101")), [Opt.ServerIdentifier]: ipv4ToBytes(ip("10.77.0.2")) }))).toEqual({ ignore: "chose server 10.77.0.2" });
    expect(s.pool.byMac(other)?.state).toBe("released");
  });

  test("INIT-REBOOT: ACK for the client's own address, NAK for a wrong one or a wrong network", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    s.pool.request(mac, ip("10.77.0.150"));
    expect(optU8(only(run(r, request(MessageType.Request, mac, { [Opt.RequestedAddress]: ipv4ToBytes(ip("10.77.0.150")) }))).packet, Opt.MessageType)).toBe(MessageType.Ack);
    s.pool.request("52:54:00:00:00:01", ip("10.77.0.151"));
    const nak = only(run(r, request(MessageType.Request, mac, { [Opt.RequestedAddress]: ipv4ToBytes(ip("10.77.0.151")) }))).packet;
    expect(optU8(nak, Opt.MessageType)).toBe(MessageType.Nak);
    expect(nak.yiaddr).toBe(0);
    const nak2 = only(run(r, request(MessageType.Request, mac, { [Opt.RequestedAddress]: ipv4ToBytes(ip("192.168.1.5")) }))).packet;
    expect(optString(nak2, Opt.Message)).toContain("not on this network");
    // A NAK without relay is broadcast (RFC 2131 §4.1).
    expect(replyDestination(request(MessageType.Request, mac), nak2, { address: "0.0.0.0", port: 68 }, false).broadcast).toBe(true);
  });

  test("RENEW (ciaddr set, unicast): ACK extends the lease, reply goes to ciaddr", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    s.pool.request(mac, ip("10.77.0.120"));
    const req = request(MessageType.Request, mac, {}, { ciaddr: ip("10.77.0.120") });
    const ack = only(run(r, req)).packet;
    expect(ack.yiaddr).toBe(ip("10.77.0.120"));
    expect(replyDestination(req, ack, { address: "10.77.0.120", port: 68 }, false)).toEqual({ address: "10.77.0.120", port: 68, broadcast: false });
  });

  test("RELEASE and DECLINE change the pool and send nothing", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    s.pool.request(mac, ip("10.77.0.130"));
    expect(run(r, request(MessageType.Release, mac, {}, { ciaddr: ip("10.77.0.130") }))).toEqual({ answers: [], mac });
    expect(s.pool.holder(ip("10.77.0.130"))).toBeUndefined();
    s.pool.request(mac, ip("10.77.0.131"));
    run(r, request(MessageType.Decline, mac, { [Opt.RequestedAddress]: ipv4ToBytes(ip("10.77.0.131")) }));
    expect(s.pool.byIp(ip("10.77.0.131"))?.state).toBe("declined");
  });

  test("INFORM: configuration, no address, no lease time (RFC 2131 §3.4)", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const req = request(MessageType.Inform, mac, {}, { ciaddr: ip("10.77.0.7") });
    const ack = only(run(r, req)).packet;
    expect(optU8(ack, Opt.MessageType)).toBe(MessageType.Ack);
    expect(ack.yiaddr).toBe(0);
    expect(ack.options.has(Opt.LeaseTime)).toBe(false);
    expect(ack.options.has(Opt.SubnetMask)).toBe(true);
  });

  test("iPXE in a full-DHCP answer gets 175.176 = 1 (do not wait for ProxyDHCP)", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const a = only(run(r, decodeDhcpPacket(readHexFixture("dhcp/ipxe-efi-discover.hex")))).packet;
    expect(a.file).toBe("http://10.77.0.1/boot.ipxe");
    expect(Array.from(a.options.get(Opt.Ipxe)!)).toEqual([176, 1, 1]);
  });

  test("UEFI HTTP boot: HTTPClient echoed in option 60, the URL in file", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const a = only(run(r, decodeDhcpPacket(readHexFixture("dhcp/ovmf-http-discover.hex")))).packet;
    expect(optString(a, Opt.VendorClass)).toBe("HTTPClient");
    expect(a.file).toBe("http://10.77.0.1/esxi/mboot.efi");
  });

  test("a plain DHCP client gets an address and no boot fields", () => {
    const s = local();
    const r = serverResponder({ serverIp: SERVER, poolFor: () => s, decide });
    const a = only(run(r, request(MessageType.Discover, mac, { [Opt.VendorClass]: str("udhcp 1.35.0") }))).packet;
    expect(a.yiaddr).not.toBe(0);
    expect(a.file).toBe("");
    expect(a.siaddr).toBe(0);
  });

  test("relayed: the pool of the relay's subnet, router defaulting to the relay, reply to giaddr:67, option 82 echoed", () => {
    const subnet = subnetOf(ip("10.20.0.1"), 24);
    const relayed: ScopedPool = {
      pool: new LeasePool({ start: ip("10.20.0.100"), end: ip("10.20.0.110"), subnet, exclude: [], reservations: [], leaseSeconds: 600, offerSeconds: 60, declineSeconds: 60 }),
      net: { subnet, router: undefined, dns: [], domain: undefined },
      relayed: true,
    };
    const r = serverResponder({ serverIp: SERVER, poolFor: (p) => (p.giaddr ? relayed : undefined), decide });
    const req = decodeDhcpPacket(readHexFixture("dhcp/relay-discover.hex"));
    const a = only(run(r, req)).packet;
    expect(formatIPv4(a.yiaddr)).toBe("10.20.0.100");
    expect(a.giaddr).toBe(req.giaddr);
    expect(formatIPv4(optIp(a, Opt.Router)!)).toBe("10.20.0.1");
    expect(a.options.get(Opt.RelayAgentInfo)).toEqual(req.options.get(Opt.RelayAgentInfo)!);
    expect(replyDestination(req, a, { address: "10.20.0.1", port: 67 }, false)).toEqual({ address: "10.20.0.1", port: 67, broadcast: false });
  });

  test("a relayed request from a subnet without a pool is ignored, with the reason", () => {
    const r = serverResponder({ serverIp: SERVER, poolFor: () => undefined, decide });
    expect(run(r, decodeDhcpPacket(readHexFixture("dhcp/relay-discover.hex")))).toEqual({ ignore: "no pool for relay 10.20.0.1" });
  });
});

describe("proxyDHCP responder", () => {
  const r = proxyResponder({ serverIp: SERVER, decide });

  test("UEFI PXE DISCOVER → OFFER without an address, GUID echoed, no option 43", () => {
    const disc = decodeDhcpPacket(readHexFixture("dhcp/ovmf-pxe-discover.hex"));
    const a = only(run(r as never, disc)).packet;
    expect(optU8(a, Opt.MessageType)).toBe(MessageType.Offer);
    expect(a.yiaddr).toBe(0);
    expect(a.siaddr).toBe(SERVER);
    expect(a.file).toBe("ipxe/snponly.efi");
    expect(optString(a, Opt.VendorClass)).toBe("PXEClient");
    expect(a.options.get(Opt.ClientUuid)).toEqual(disc.options.get(Opt.ClientUuid)!);
    expect(a.options.has(Opt.VendorSpecific)).toBe(false);
    expect(a.options.has(Opt.LeaseTime)).toBe(false);
  });

  test("BIOS / iPXE DISCOVER → option 43 with discovery control 8 (boot the file, no discovery)", () => {
    const a = only(run(r as never, decodeDhcpPacket(readHexFixture("dhcp/ipxe-bios-rom-discover.hex")))).packet;
    expect(Array.from(a.options.get(Opt.VendorSpecific)!)).toEqual([6, 1, 8, 255]);
    expect(a.file).toBe("http://10.77.0.1/boot.ipxe");
    expect(a.options.has(Opt.Ipxe)).toBe(false); // iPXE should wait for us here
  });

  test("REQUEST on port 4011 (OVMF) → ACK to the client's own address and port", () => {
    const req = decodeDhcpPacket(readHexFixture("dhcp/ovmf-pxe-request-4011.hex"));
    const out = r.handle({ packet: req, client: bootClientFromDhcp(req), viaPxePort: true, source: { address: "10.77.0.2", port: 68 } });
    const a = only(out).packet;
    expect(optU8(a, Opt.MessageType)).toBe(MessageType.Ack);
    expect(replyDestination(req, a, { address: "10.77.0.2", port: 68 }, true)).toEqual({ address: "10.77.0.2", port: 68, broadcast: false });
  });

  test("leaves everything else to the site's server", () => {
    expect(run(r as never, request(MessageType.Discover, "52:54:00:00:00:01", { [Opt.VendorClass]: str("MSFT 5.0") }))).toMatchObject({ ignore: expect.stringContaining("not a network-boot request"), decision: { action: "ignore" } });
    expect(run(r as never, request(MessageType.Request, "52:54:00:00:00:01", { [Opt.VendorClass]: str("PXEClient") }))).toBeUndefined();
    expect(run(r as never, request(MessageType.Release, "52:54:00:00:00:01"))).toBeUndefined();
  });
});
