import { describe, expect, test } from "bun:test";
import { checkRequestPath, httpPathRules, tftpPathRules } from "../../src/files/paths.ts";

describe("request paths", () => {
  test.each([
    ["/esxi/b.b00", ["esxi", "b.b00"]],
    ["//esxi///efi/./boot/", ["esxi", "efi", "boot"]],
    ["/esxi/My%20File.txt", ["esxi", "My File.txt"]],
    ["/", []],
  ])("http %p → %p", (raw, parts) => expect(checkRequestPath(raw, httpPathRules)).toEqual({ ok: true, parts }));

  test.each([
    ["/esxi/../etc/passwd", /leave/],
    ["/esxi/%2e%2e/etc", /leave/],
    ["/esxi/%2E%2e/etc", /leave/],
    ["/esxi/..%2fetc", /encoded separator/],
    ["/esxi/a%5cb", /encoded separator/],
    ["/esxi/a%00b", /encoded separator or NUL/],
    ["/esxi/a\u0000b", /NUL/],
    ["/esxi\\..\\etc", /backslash/],
    ["/esxi/%zz", /malformed/],
    ["/esxi/a%0ab", /control character/],
  ])("http %p is refused", (raw, reason) => {
    const r = checkRequestPath(raw, httpPathRules);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  test.each([
    ["esxi\\EFI\\BOOT\\BOOTX64.EFI", ["esxi", "EFI", "BOOT", "BOOTX64.EFI"]],
    ["/esxi/b.b00", ["esxi", "b.b00"]],
    ["\\01-aa-bb-cc-dd-ee-ff\\boot.cfg", ["01-aa-bb-cc-dd-ee-ff", "boot.cfg"]],
    ["esxi/%2e%2e", ["esxi", "%2e%2e"]],
  ])("tftp %p → %p", (raw, parts) => expect(checkRequestPath(raw, tftpPathRules)).toEqual({ ok: true, parts }));

  test.each(["esxi\\..\\..\\etc\\passwd", "../etc/passwd", "esxi/../../x"])("tftp %p is refused", (raw) => {
    expect(checkRequestPath(raw, tftpPathRules).ok).toBe(false);
  });
});
