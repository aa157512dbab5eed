/** The memory of hosts whose iPXE never started (Secure Boot), and that it survives a restart. */
import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IPXE_START_WINDOW_MS, openSignedLoaderMemory } from "../../src/hosts/signed-loader.ts";
import { memoryLogger } from "../../src/log.ts";
import { tempDir } from "../helpers/tools.ts";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";

test("snponly.efi sent, then a firmware DHCP within two minutes and no iPXE: remembered, also after a restart", () => {
  const dir = tempDir("state-");
  const log = memoryLogger();
  const m = openSignedLoaderMemory(dir, log);
  m.ipxeSent(A, 1000);
  expect(m.dhcp(A, "efi-x64", 1000 + 30_000)).toBe(true);
  expect(m.reason(A)).toMatch(/iPXE never started: Secure Boot\?/);
  expect(log.lines.some((l) => l.level === "warn" && l.msg.includes(`${A}: iPXE never started`))).toBe(true);
  // The firmware's HTTP boot attempt that follows a refused PXE image counts as well (OVMF does this).
  m.ipxeSent(B, 0);
  expect(m.dhcp(B, "efi-x64-http", 5_000)).toBe(true);
  const again = openSignedLoaderMemory(dir, log);
  expect(again.reason(A)).toBeDefined();
  expect(again.reason(B)).toBeDefined();
  again.forget(A);
  expect(openSignedLoaderMemory(dir, log).reason(A)).toBeUndefined();
});

test("iPXE that starts (its own DHCP, or /boot.ipxe) is not mistaken for Secure Boot; nor a late reboot", () => {
  const dir = tempDir("state-");
  const m = openSignedLoaderMemory(dir, memoryLogger());
  m.ipxeSent(A, 0);
  expect(m.dhcp(A, "ipxe", 2_000)).toBe(false);
  expect(m.dhcp(A, "efi-x64", 60_000)).toBe(false);
  m.ipxeSent(B, 0);
  m.ipxeStarted(B);
  expect(m.dhcp(B, "efi-x64", 10_000)).toBe(false);
  m.ipxeSent(A, 0);
  expect(m.dhcp(A, "efi-x64", IPXE_START_WINDOW_MS + 1)).toBe(false);
  expect(m.dhcp(A, "bios", 10)).toBe(false);
  expect(m.reason(A)).toBeUndefined();
  expect(m.reason(B)).toBeUndefined();
  // Nothing to remember: no file written, the state directory not even needed.
  expect(existsSync(join(dir, "signed-loader.json"))).toBe(false);
});

test("an unreadable memory file is a warning, not a refusal to start", () => {
  const dir = tempDir("state-");
  writeFileSync(join(dir, "signed-loader.json"), "{torn");
  const log = memoryLogger();
  const m = openSignedLoaderMemory(dir, log);
  expect(m.reason(A)).toBeUndefined();
  expect(log.lines.some((l) => l.level === "warn" && /unreadable/.test(l.msg))).toBe(true);
  m.ipxeSent(A, 0);
  m.dhcp(A, "efi-x64", 1);
  expect(JSON.parse(readFileSync(join(dir, "signed-loader.json"), "utf8")).hosts[A]).toBeDefined();
});
