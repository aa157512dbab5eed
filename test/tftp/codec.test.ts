import { describe, expect, test } from "bun:test";
import { PacketError } from "../../src/errors.ts";
import { ErrorCode, Opcode } from "../../src/tftp/constants.ts";
import { negotiate } from "../../src/tftp/negotiate.ts";
import { toNetascii } from "../../src/tftp/netascii.ts";
import { decodeTftpPacket, encodeTftpPacket, errorPacket, type TftpPacket } from "../../src/tftp/packet.ts";
import { Step, TransferState, wireBlock } from "../../src/tftp/transfer.ts";
import { readHexFixture, sliced } from "../helpers/hex.ts";

describe("TFTP packets (RFC 1350, 2347)", () => {
  test("RRQ with options, from a hand-made fixture, also from a sliced buffer", () => {
    const bytes = readHexFixture("tftp/rrq-options.hex");
    for (const b of [bytes, sliced(bytes)]) {
      const p = decodeTftpPacket(b);
      expect(p).toEqual({
        op: Opcode.RRQ,
        filename: "esxi/mboot.efi",
        mode: "octet",
        options: new Map([
          ["tsize", "0"],
          ["blksize", "1468"],
          ["windowsize", "4"],
        ]),
      });
      expect(encodeTftpPacket(p)).toEqual(bytes);
    }
  });

  test("ERROR 8 fixture", () => {
    expect(decodeTftpPacket(sliced(readHexFixture("tftp/error-refused.hex")))).toEqual({ op: Opcode.ERROR, code: 8, message: "no" });
  });

  test.each<TftpPacket>([
    { op: Opcode.WRQ, filename: "a", mode: "netascii", options: new Map() },
    { op: Opcode.DATA, block: 65535, data: new Uint8Array([1, 2, 3]) },
    { op: Opcode.DATA, block: 0, data: new Uint8Array(0) },
    { op: Opcode.ACK, block: 7 },
    { op: Opcode.ERROR, code: ErrorCode.FileNotFound, message: "file not found" },
    { op: Opcode.OACK, options: new Map([["blksize", "1432"]]) },
  ])("round trip %#", (p) => {
    const bytes = encodeTftpPacket(p);
    expect(decodeTftpPacket(bytes)).toEqual(p);
    expect(decodeTftpPacket(sliced(bytes))).toEqual(p);
  });

  test("option names are case-insensitive; mode is lower-cased; a dangling option name is dropped", () => {
    const raw = new Uint8Array([0, 1, ...new TextEncoder().encode("f\0OCTET\0BlkSize\x00512\0tsize\0"), ]);
    const p = decodeTftpPacket(raw);
    expect(p).toEqual({ op: Opcode.RRQ, filename: "f", mode: "octet", options: new Map([["blksize", "512"]]) });
  });

  test.each([
    [[0], /truncated/],
    [[0, 9, 0, 0], /unknown opcode 9/],
    [[0, 1, 0x61], /not NUL-terminated/],
    [[0, 1, 0x61, 0], /lacks filename or mode/],
    [[0, 1, 0, 0x6f, 0x63, 0x74, 0x65, 0x74, 0], /empty filename/],
  ])("malformed %p → PacketError", (bytes, msg) => {
    expect(() => decodeTftpPacket(new Uint8Array(bytes))).toThrow(PacketError);
    expect(() => decodeTftpPacket(new Uint8Array(bytes))).toThrow(msg);
  });

  test("a request longer than 512 bytes is refused (RFC 2347)", () => {
    const long = encodeTftpPacket({ op: Opcode.RRQ, filename: "x".repeat(600), mode: "octet", options: new Map() });
    expect(() => decodeTftpPacket(long)).toThrow(/limit 512/);
  });

  test("error packet", () => {
    expect(Array.from(errorPacket(2, "no"))).toEqual([0, 5, 0, 2, 0x6e, 0x6f, 0]);
  });
});

describe("option negotiation", () => {
  const req = (o: Record<string, string>) => new Map(Object.entries(o));
  test.each([
    ["nothing asked: lock-step 512, no OACK", {}, { blksize: 512, windowsize: 1, timeout: undefined, oack: [] }],
    ["blksize within limits", { blksize: "1468" }, { blksize: 1468, oack: [["blksize", "1468"]] }],
    ["blksize above our cap is lowered", { blksize: "65464" }, { blksize: 8192, oack: [["blksize", "8192"]] }],
    ["blksize below 8 is not an option we accept", { blksize: "7" }, { blksize: 512, oack: [] }],
    ["blksize not a number", { blksize: "big" }, { blksize: 512, oack: [] }],
    ["tsize gets the real size", { tsize: "0" }, { oack: [["tsize", "123456"]] }],
    ["timeout 1..255", { timeout: "3" }, { timeout: 3, oack: [["timeout", "3"]] }],
    ["timeout 0 ignored", { timeout: "0" }, { timeout: undefined, oack: [] }],
    ["windowsize capped", { windowsize: "1000" }, { windowsize: 64, oack: [["windowsize", "64"]] }],
    ["unknown options ignored, order kept", { windowsize: "4", foo: "bar", blksize: "1432" }, { oack: [["windowsize", "4"], ["blksize", "1432"]] }],
  ])("%s", (_name, asked, want) => {
    const g = negotiate(req(asked), 123456, { maxBlksize: 8192 });
    const got = { blksize: g.blksize, windowsize: g.windowsize, timeout: g.timeout, oack: [...g.oack] };
    expect(got).toMatchObject(want);
  });

  test("a per-client cap (Mac firmware: 1460) wins", () => {
    expect(negotiate(req({ blksize: "8192" }), 10, { maxBlksize: 1460 }).blksize).toBe(1460);
  });
});

describe("transfer state machine", () => {
  const run = (size: number, blksize: number, windowsize: number, oack = false) => new TransferState({ size, blksize, windowsize, oack });

  test("lock-step: DATA n after ACK n-1, done at the short block", () => {
    const s = run(1000, 512, 1);
    expect(s.start()).toBe(Step.Send);
    expect([s.from, s.to]).toEqual([1, 1]);
    expect(s.ack(1)).toBe(Step.Send);
    expect([s.from, s.to]).toEqual([2, 2]);
    expect(s.blockRange(2)).toEqual({ offset: 512, length: 488 });
    expect(s.ack(2)).toBe(Step.Done);
  });

  test("a size that divides evenly ends with an empty block", () => {
    const s = run(1024, 512, 1);
    expect(s.totalBlocks).toBe(3);
    expect(s.blockRange(3).length).toBe(0);
  });

  test("duplicate and stale ACKs send nothing (no Sorcerer's Apprentice)", () => {
    const s = run(5000, 512, 1);
    s.start();
    s.ack(1);
    expect(s.ack(1)).toBe(Step.Ignore);
    expect(s.ack(0)).toBe(Step.Ignore);
    expect(s.ack(9)).toBe(Step.Ignore);
    expect(s.ack(2)).toBe(Step.Send);
  });

  test("OACK first: only ACK 0 starts the data; a timeout resends the OACK", () => {
    const s = run(5000, 1468, 4, true);
    expect(s.start()).toBe(Step.Oack);
    expect(s.ack(1)).toBe(Step.Ignore);
    expect(s.timeout()).toBe(Step.Oack);
    expect(s.ack(0)).toBe(Step.Send);
    expect([s.from, s.to]).toEqual([1, 4]);
  });

  test("windows: a partial ACK restarts after the acknowledged block (RFC 7440 §4); a timeout resends from the last ACK", () => {
    const s = run(100 * 512, 512, 8);
    s.start();
    expect([s.from, s.to]).toEqual([1, 8]);
    expect(s.ack(8)).toBe(Step.Send);
    expect([s.from, s.to]).toEqual([9, 16]);
    expect(s.ack(11)).toBe(Step.Send); // 12..16 were lost
    expect([s.from, s.to]).toEqual([12, 19]);
    expect(s.ack(11)).toBe(Step.Ignore); // the same ACK again does not resend
    expect(s.timeout()).toBe(Step.Send);
    expect([s.from, s.to]).toEqual([12, 19]);
  });

  test("block numbers roll over past 65535 to 0 and ACKs map back", () => {
    const s = run(70000 * 512, 512, 4);
    s.start();
    let acked = 0;
    while (s.to < 65534) {
      expect(s.ack(wireBlock(s.to))).toBe(Step.Send);
      acked = s.acked;
    }
    expect(acked).toBeGreaterThan(65000);
    // window crossing the wrap: e.g. 65533..65536 → wire 65533, 65534, 65535, 0
    while (s.to < 65536) s.ack(wireBlock(s.to));
    expect(wireBlock(65536)).toBe(0);
    const before = s.acked;
    expect(s.ack(wireBlock(s.to))).toBe(Step.Send);
    expect(s.acked).toBeGreaterThan(before);
    expect(s.acked).toBeGreaterThanOrEqual(65536);
  });
});

describe("netascii", () => {
  test.each([
    ["a\nb\n", "a\r\nb\r\n"],
    ["a\r\nb", "a\r\nb"],
    ["a\rb", "a\r\0b"],
    ["\n", "\r\n"],
    ["plain", "plain"],
  ])("%p → %p", (inp, out) => {
    expect(new TextDecoder().decode(toNetascii(new TextEncoder().encode(inp)))).toBe(out);
  });
});
