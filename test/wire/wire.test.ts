import { describe, expect, test } from "bun:test";
import { PacketError } from "../../src/errors.ts";
import { ByteReader, ByteWriter, fromHex, toHex } from "../../src/wire/bytes.ts";
import { formatIPv4, inSubnet, maskToPrefix, parseIPv4, prefixToMask, subnetOf, tryParseIPv4 } from "../../src/wire/ipv4.ts";
import { macDirName, macFromBytes, macToBytes, parseMac, tryParseMac } from "../../src/wire/mac.ts";

describe("ByteReader", () => {
  test("reads big-endian fields and honours byteOffset (a pooled dgram buffer)", () => {
    const pool = new Uint8Array(64).fill(0xee);
    pool.set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07], 40);
    const sliced = pool.subarray(40, 47);
    const r = new ByteReader(sliced);
    expect(r.u8()).toBe(1);
    expect(r.u16()).toBe(0x0203);
    expect(r.u32()).toBe(0x04050607);
    expect(r.remaining).toBe(0);
  });

  test("a read past the end throws a PacketError naming the field", () => {
    const r = new ByteReader(new Uint8Array([1, 2, 3]), "dhcp packet");
    r.u16();
    expect(() => r.u16("option length")).toThrow(PacketError);
    expect(() => r.u16("option length")).toThrow("dhcp packet truncated: option length needs 2 bytes at offset 2, 1 left");
  });

  test("ByteWriter grows, and fixed() pads or cuts", () => {
    const w = new ByteWriter(2);
    w.u8(1).u16(0x0203).u32(0xdeadbeef).fixed(new Uint8Array([9, 9, 9]), 5).fixed(new Uint8Array([7, 7, 7]), 2);
    expect(toHex(w.finish())).toBe("010203deadbeef09090900000707");
  });

  test("hex round trip", () => {
    expect(toHex(fromHex("de:ad be-ef"))).toBe("deadbeef");
    expect(() => fromHex("abc")).toThrow(PacketError);
  });
});

describe("MAC addresses", () => {
  test.each([
    ["aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"],
    ["AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"],
    ["aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"],
    ["AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff"],
    ["01-aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"],
  ])("%s → %s", (input, want) => expect(parseMac(input)).toBe(want));

  test.each(["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:gg", "aa:bb:cc:dd:ee:ff:00", "a:b:c:d:e:f", "aa:bbcc:dd:ee:ff"])("%p is not a MAC", (s) => {
    expect(tryParseMac(s)).toBeUndefined();
  });

  test("bytes and the 01- directory form", () => {
    const m = parseMac("52:54:00:12:34:56");
    expect(macFromBytes(macToBytes(m))).toBe(m);
    expect(macDirName(m)).toBe("01-52-54-00-12-34-56");
  });
});

describe("IPv4", () => {
  test("parse and format", () => {
    expect(formatIPv4(parseIPv4("10.77.0.1"))).toBe("10.77.0.1");
    expect(parseIPv4("255.255.255.255")).toBe(0xffffffff);
    for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "a.b.c.d", " "]) expect(tryParseIPv4(bad)).toBeUndefined();
  });

  test("subnets", () => {
    const s = subnetOf(parseIPv4("10.77.0.1"), 24);
    expect(formatIPv4(s.network)).toBe("10.77.0.0");
    expect(formatIPv4(s.broadcast)).toBe("10.77.0.255");
    expect(inSubnet(parseIPv4("10.77.0.200"), s)).toBe(true);
    expect(inSubnet(parseIPv4("10.78.0.1"), s)).toBe(false);
    expect(maskToPrefix(prefixToMask(23))).toBe(23);
    expect(() => maskToPrefix(parseIPv4("255.0.255.0"))).toThrow();
  });
});
