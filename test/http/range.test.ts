import { describe, expect, test } from "bun:test";
import { ifRangeMatches, noneMatch, resolveRange } from "../../src/http/range.ts";

describe("Range (RFC 9110 §14)", () => {
  test.each([
    [undefined, 100, { kind: "full" }],
    ["bytes=0-0", 100, { kind: "partial", start: 0, end: 1 }],
    ["bytes=0-99", 100, { kind: "partial", start: 0, end: 100 }],
    ["bytes=10-", 100, { kind: "partial", start: 10, end: 100 }],
    ["bytes=-10", 100, { kind: "partial", start: 90, end: 100 }],
    ["bytes=-1000", 100, { kind: "partial", start: 0, end: 100 }],
    ["bytes=50-5000", 100, { kind: "partial", start: 50, end: 100 }],
    [" Bytes = 1 - 2 ", 100, { kind: "partial", start: 1, end: 3 }],
    ["bytes=100-", 100, { kind: "unsatisfiable" }],
    ["bytes=-0", 100, { kind: "unsatisfiable" }],
    ["bytes=0-0", 0, { kind: "unsatisfiable" }],
    ["bytes=5-1", 100, { kind: "full" }],
    ["bytes=0-1,5-6", 100, { kind: "full" }],
    ["bytes=x", 100, { kind: "full" }],
    ["items=0-1", 100, { kind: "full" }],
    ["bytes=-", 100, { kind: "full" }],
  ])("%p of %d bytes", (h, size, want) => expect(resolveRange(h, size)).toEqual(want as never));

  test("If-Range and If-None-Match", () => {
    const mtime = new Date("2026-11-22T00:00:00Z");
    expect(ifRangeMatches(undefined, '"a"', mtime)).toBe(true);
    expect(ifRangeMatches('"a"', '"a"', mtime)).toBe(true);
    expect(ifRangeMatches('"b"', '"a"', mtime)).toBe(false);
    expect(ifRangeMatches('W/"a"', '"a"', mtime)).toBe(false);
    expect(ifRangeMatches(mtime.toUTCString(), '"a"', mtime)).toBe(true);
    expect(ifRangeMatches(new Date(mtime.getTime() - 5000).toUTCString(), '"a"', mtime)).toBe(false);
    expect(noneMatch('"x", W/"a"', '"a"')).toBe(true);
    expect(noneMatch("*", '"a"')).toBe(true);
    expect(noneMatch('"x"', '"a"')).toBe(false);
  });
});
