import { describe, expect, test } from "bun:test";
import { bootClientFromDhcp, guid, userClasses } from "../../src/dhcp/client.ts";
import { MessageType, Opt } from "../../src/dhcp/constants.ts";
import { formatDhcpPacket } from "../../src/dhcp/format.ts";
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, optString, optU8 } from "../../src/dhcp/packet.ts";
import { PacketError } from "../../src/errors.ts";
import { expectGolden } from "../helpers/golden.ts";
import { readHexFixture, sliced } from "../helpers/hex.ts";

const fixtures = [
  "ovmf-pxe-discover",
  "ovmf-pxe-request-4011",
  "ovmf-http-discover",
  "ipxe-efi-discover",
  "ipxe-bios-rom-discover",
  "dnsmasq-offer",
  "relay-discover",
  "overload",
];

describe("DHCP codec on captured and hand-made packets", () => {
  for (const name of fixtures) {
    test(name, () => {
      const bytes = readHexFixture(`dhcp/${name}.hex`);
      const pkt = decodeDhcpPacket(bytes);
      expectGolden(`dhcp/${name}.txt`, formatDhcpPacket(pkt));
      expect(decodeDhcpPacket(sliced(bytes))).toEqual(pkt); // a pooled dgram buffer
      const again = decodeDhcpPacket(encodeDhcpPacket(pkt)); // write, then read
      pkt.options.delete(Opt.Overload); // our encoder never overloads file/sname
      expect(again).toEqual(pkt);
    });
  }

  test("overload: options from the file and sname fields, a split vendor class joined (RFC 3396)", () => {
    const pkt = decodeDhcpPacket(readHexFixture("dhcp/overload.hex"));
    expect(optString(pkt, Opt.VendorClass)).toBe("PXEClient:Arch:");
    expect(optString(pkt, Opt.HostName)).toBe("host");
    expect(pkt.options.get(Opt.ClientArch)).toEqual(Uint8Array.of(0, 7));
    expect(pkt.file).toBe("");
    expect(pkt.sname).toBe("");
  });

  test("relay agent information (82) is kept as bytes", () => {
    const pkt = decodeDhcpPacket(readHexFixture("dhcp/relay-discover.hex"));
    expect(pkt.giaddr).toBe(0x0a140001);
    expect(pkt.hops).toBe(1);
    expect(Array.from(pkt.options.get(Opt.RelayAgentInfo)!)).toEqual([1, 4, 0x65, 0x74, 0x68, 0x37, 2, 3, 1, 2, 3]);
  });

  test("the client the policy sees, from each firmware's DISCOVER", () => {
    const c = (n: string) => bootClientFromDhcp(decodeDhcpPacket(readHexFixture(`dhcp/${n}.hex`)));
    expect(c("ovmf-pxe-discover")).toMatchObject({ mac: "52:54:00:12:34:56", arch: 7, vendorClass: "PXEClient:Arch:00007:UNDI:003000", userClass: [], ipxeOptions: false, uuid: "8a0d7d0e-4b43-4c3a-9f44-7e57c11e0001" });
    expect(c("ovmf-http-discover")).toMatchObject({ arch: 16, vendorClass: "HTTPClient:Arch:00016:UNDI:003000" });
    expect(c("ipxe-efi-discover")).toMatchObject({ arch: 7, userClass: ["iPXE"], ipxeOptions: true });
    expect(c("ipxe-bios-rom-discover")).toMatchObject({ arch: 0, userClass: ["iPXE"], ipxeOptions: true });
    expect(c("relay-discover")).toMatchObject({ arch: 0, relayed: true });
  });
});

describe("DHCP encoding", () => {
  test("long options are split into 255-byte instances and joined again", () => {
    const p = emptyPacket();
    p.options.set(Opt.MessageType, Uint8Array.of(MessageType.Offer));
    const long = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
    p.options.set(Opt.VendorSpecific, long);
    const bytes = encodeDhcpPacket(p);
    // 255 + 255 + 90: three instances of option 43 in the options field
    let count = 0;
    for (let i = 240; i < bytes.length && bytes[i] !== 255; i += 2 + bytes[i + 1]!) if (bytes[i] === 43) count++;
    expect(count).toBe(3);
    expect(decodeDhcpPacket(bytes).options.get(Opt.VendorSpecific)).toEqual(long);
  });

  test("message type goes first, and replies are padded to 300 bytes", () => {
    const p = emptyPacket();
    p.options.set(Opt.ServerIdentifier, Uint8Array.of(10, 0, 0, 1));
    p.options.set(Opt.MessageType, Uint8Array.of(MessageType.Ack));
    const bytes = encodeDhcpPacket(p);
    expect(bytes.length).toBe(300);
    expect(Array.from(bytes.subarray(240, 243))).toEqual([53, 1, 5]);
    expect(optU8(decodeDhcpPacket(bytes), Opt.MessageType)).toBe(MessageType.Ack);
  });

  test.each([
    ["too short", new Uint8Array(100), /at least 240/],
    ["no magic cookie", new Uint8Array(300), /magic cookie/],
  ])("%s", (_n, bytes, msg) => {
    expect(() => decodeDhcpPacket(bytes)).toThrow(PacketError);
    expect(() => decodeDhcpPacket(bytes)).toThrow(msg);
  });

  test("an option that claims more bytes than there are", () => {
    const good = readHexFixture("dhcp/ovmf-pxe-discover.hex");
    const bad = good.slice(0, 243 + 4); // 53 DISCOVER, then 57 claims 2 bytes
    bad[bad.length - 1] = 0x39;
    const cut = Uint8Array.from([...good.subarray(0, 243), 0x37, 0x23, 1, 2]);
    expect(() => decodeDhcpPacket(cut)).toThrow(/option 55 claims 35 bytes, only 2 left/);
    expect(() => decodeDhcpPacket(Uint8Array.from([...good.subarray(0, 243), 0x37]))).toThrow(/no length byte/);
  });

  test("user classes (RFC 3004 list or one plain string) and GUIDs", () => {
    expect(userClasses(new TextEncoder().encode("iPXE"))).toEqual(["iPXE"]);
    expect(userClasses(Uint8Array.of(3, 0x61, 0x62, 0x63, 2, 0x78, 0x79))).toEqual(["abc", "xy"]);
    expect(guid(Uint8Array.of(0, ...Array.from({ length: 16 }, (_, i) => i)))).toBe("03020100-0504-0706-0809-0a0b0c0d0e0f");
    expect(guid(Uint8Array.of(1, 2, 3))).toBeUndefined();
  });
});
