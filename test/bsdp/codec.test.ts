/**
 * BSDP option 43 codec against bytes nobody here encoded: the seed recipe's strings, Apple's server as
 * quoted by Wikipedia, CloneDeploy's example, and INFORMs built by hand from the spec tables.
 */
import { describe, expect, test } from "bun:test";
import { BsdpMessage, IMAGE_NAME_MAX, MAX_LOCAL_INDEX } from "../../src/bsdp/constants.ts";
import { bsdpCatalog } from "../../src/bsdp/catalog.ts";
import { decodeBsdpOptions, encodeBsdpOptions, imageIdText, imageIndex, installImageId } from "../../src/bsdp/options.ts";
import { Opt } from "../../src/dhcp/constants.ts";
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, optString, optU8 } from "../../src/dhcp/packet.ts";
import { PacketError } from "../../src/errors.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import { toHex } from "../../src/wire/bytes.ts";
import { readHexFixture, sliced } from "../helpers/hex.ts";

describe("option 43 from published servers", () => {
  test("the seed recipe's ACK[LIST]: decoded field by field, and our encoder writes the same bytes", () => {
    const bytes = readHexFixture("bsdp/lamw-ack-list.opt43.hex");
    const o = decodeBsdpOptions(sliced(bytes));
    expect(o).toEqual({ messageType: BsdpMessage.List, priority: 0x8000, defaultImage: 0x81000089, images: [{ id: 0x81000089, name: "The-Image" }] });
    expect(toHex(encodeBsdpOptions(o))).toBe(toHex(bytes));
  });

  test("the seed recipe's ACK[SELECT] and Apple's own: selected image and machine name, byte-exact both ways", () => {
    const lamw = readHexFixture("bsdp/lamw-ack-select.opt43.hex");
    expect(decodeBsdpOptions(lamw)).toEqual({ messageType: BsdpMessage.Select, selectedImage: 0x81000089, machineName: "The-Image" });
    expect(toHex(encodeBsdpOptions(decodeBsdpOptions(lamw)))).toBe(toHex(lamw));
    const apple = readHexFixture("bsdp/apple-ack-select.opt43.hex");
    const o = decodeBsdpOptions(sliced(apple));
    expect(o.selectedImage).toBe(0x810007e5);
    expect(imageIndex(o.selectedImage!)).toBe(2021);
    expect(o.machineName).toBe("NetBoot001");
    expect(toHex(encodeBsdpOptions(o))).toBe(toHex(apple));
  });

  test("CloneDeploy's two-image LIST with a server identifier: boot (not install) ids, any order of sub-options", () => {
    const o = decodeBsdpOptions(readHexFixture("bsdp/clonedeploy-ack-list.opt43.hex"));
    expect(formatIPv4(o.serverIdentifier!)).toBe("162.51.75.160");
    expect(o.priority).toBe(65535);
    expect(o.images).toEqual([
      { id: 0x01000089, name: "net" },
      { id: 0x01000088, name: "boot" },
    ]);
    expect(imageIdText(o.defaultImage!)).toBe("[137] boot Mac OS X image");
  });
});

describe("INFORMs built from the spec tables", () => {
  test("INFORM[LIST]: the DHCP codec and then the BSDP codec read every field, also from a sliced buffer", () => {
    for (const bytes of [readHexFixture("bsdp/inform-list.hex"), sliced(readHexFixture("bsdp/inform-list.hex"))]) {
      const p = decodeDhcpPacket(bytes);
      expect(optU8(p, Opt.MessageType)).toBe(8);
      expect(formatIPv4(p.ciaddr)).toBe("10.213.0.50");
      expect(optString(p, Opt.VendorClass)).toBe("AAPLBSDPC/i386/iMac14,3");
      expect(decodeBsdpOptions(p.options.get(Opt.VendorSpecific)!)).toEqual({ messageType: BsdpMessage.List, version: 0x0101, replyPort: 68 });
    }
  });

  test("INFORM[SELECT]: server identifier and selected image", () => {
    const p = decodeDhcpPacket(readHexFixture("bsdp/inform-select.hex"));
    const o = decodeBsdpOptions(p.options.get(Opt.VendorSpecific)!);
    expect(o.messageType).toBe(BsdpMessage.Select);
    expect(formatIPv4(o.serverIdentifier!)).toBe("10.213.0.1");
    expect(o.selectedImage).toBe(0x81000089);
    expect(o.replyPort).toBe(68);
  });

  test("the OS client's extra sub-options are kept: NetBoot 1.0 flag, attribute filter, max message size", () => {
    // BSDPClient.c order: 1 LIST, 2 version, 10 (flag, no data), 5 reply port 1000, 12 max size 8192, 11 attrs.
    const o = decodeBsdpOptions(Uint8Array.of(1, 1, 1, 2, 2, 1, 1, 10, 0, 5, 2, 0x03, 0xe8, 12, 2, 0x20, 0x00, 11, 4, 0x81, 0x00, 0x01, 0x00));
    expect(o.replyPort).toBe(1000);
    expect(o.maxMessageSize).toBe(8192);
    expect(o.other).toEqual([
      [10, new Uint8Array(0)],
      [11, Uint8Array.of(0x81, 0, 1, 0)],
    ]);
  });
});

describe("bad option 43 is an error value, not a crash", () => {
  const bad: Array<[string, number[]]> = [
    ["no length byte", [1]],
    ["length past the end", [1, 5, 1]],
    ["message type of 2 bytes", [1, 2, 1, 1]],
    ["server id of 3 bytes", [3, 3, 10, 0, 0]],
    ["image entry cut short", [9, 3, 0x81, 0, 0]],
    ["image name past the list", [9, 6, 0x81, 0, 0, 1, 9, 0x41]],
  ];
  for (const [what, bytes] of bad) {
    test(what, () => {
      expect(() => decodeBsdpOptions(Uint8Array.from(bytes))).toThrow(PacketError);
    });
  }
  test("padding and an end tag are skipped; what follows the end is ignored", () => {
    expect(decodeBsdpOptions(Uint8Array.of(0, 0, 1, 1, 1, 255, 1, 7))).toEqual({ messageType: 1 });
  });
});

describe("a long image list", () => {
  const images = Array.from({ length: 12 }, (_, i) => ({ id: installImageId(100 + i), name: `ESXi 8.0.${i} installer with a long descriptive name (build 2238047${i})` }));

  test("is cut into list sub-options of whole entries, each in its own option 43 instance of at most 255 bytes", () => {
    const opt43 = encodeBsdpOptions({ messageType: BsdpMessage.List, priority: 0x8000, defaultImage: images[0]!.id, images });
    expect(opt43.length).toBeGreaterThan(255);
    const p = emptyPacket();
    p.op = 2;
    p.options.set(Opt.VendorSpecific, opt43);
    const wire = encodeDhcpPacket(p);
    // Walk the raw options: every option 43 instance must itself be a whole run of sub-options.
    const instances: Uint8Array[] = [];
    for (let i = 240; i < wire.length && wire[i] !== 255; ) {
      if (wire[i] === 0) {
        i++;
        continue;
      }
      if (wire[i] === Opt.VendorSpecific) instances.push(wire.subarray(i + 2, i + 2 + wire[i + 1]!));
      i += 2 + wire[i + 1]!;
    }
    expect(instances.length).toBeGreaterThan(1);
    const seen = instances.flatMap((inst) => decodeBsdpOptions(inst).images ?? []);
    expect(seen).toEqual(images);
    // And joined (RFC 3396), the DHCP decoder gives back the whole list.
    expect(decodeBsdpOptions(decodeDhcpPacket(wire).options.get(Opt.VendorSpecific)!).images).toEqual(images);
  });

  test("names longer than BSDP allows are cut at 246 bytes", () => {
    const o = decodeBsdpOptions(encodeBsdpOptions({ images: [{ id: installImageId(1), name: "x".repeat(400) }] }));
    expect(o.images![0]!.name.length).toBe(IMAGE_NAME_MAX);
  });
});

describe("image catalog", () => {
  test("install, Mac OS X ids with local indexes; stable per name, whatever else is served", () => {
    const one = bsdpCatalog([{ name: "esxi8", label: "ESXi 8.0.2 (22380479)" }]);
    const two = bsdpCatalog([
      { name: "esxi7", label: "ESXi 7.0.3" },
      { name: "esxi8", label: "ESXi 8.0.2 (22380479)" },
    ]);
    expect(two[1]).toEqual(one[0]!);
    for (const img of two) {
      expect(img.id >>> 24).toBe(0x81);
      expect(imageIndex(img.id)).toBeGreaterThanOrEqual(1);
      expect(imageIndex(img.id)).toBeLessThanOrEqual(MAX_LOCAL_INDEX);
    }
    expect(two[0]!.id).not.toBe(two[1]!.id);
  });

  test("a thousand images get a thousand distinct ids", () => {
    const many = bsdpCatalog(Array.from({ length: 1000 }, (_, i) => ({ name: `img${i}`, label: `Image ${i}` })));
    expect(new Set(many.map((i) => i.id)).size).toBe(1000);
  });
});

test("a long name is cut between UTF-8 characters, never inside one", () => {
  const o = decodeBsdpOptions(encodeBsdpOptions({ images: [{ id: installImageId(1), name: "é".repeat(200) }], machineName: "ü".repeat(200) }));
  expect(o.images![0]!.name).toBe("é".repeat(123)); // 246 bytes
  expect(o.machineName).toBe("ü".repeat(127)); // 254 of 255 bytes
});
