/**
 * The hosts whose iPXE never started (Secure Boot), marked in the host store, and that it survives a
 * restart; and a state directory of the layout before the store (hosts.json version 1, signed-loader.json,
 * bsdp.json, rearm/) read into it once, nothing lost, nothing armed again.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../../src/errors.ts";
import { EventBus } from "../../src/events.ts";
import { bookFromFlags } from "../../src/hosts/book.ts";
import { SignedLoaderWatch } from "../../src/hosts/signed-loader.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { LIMITS } from "../../src/config.ts";
import { memoryLogger } from "../../src/log.ts";
import { tempDir } from "../helpers/tools.ts";

const A = "52:54:00:00:00:0a" as never;
const B = "52:54:00:00:00:0b" as never;
const book = bookFromFlags({ allow: [A], allowAny: false, ks: undefined, image: "esxi" });

async function watch(dir: string) {
  const log = memoryLogger();
  const store = await openHostStore({ url: undefined, stateDir: dir }, book, log);
  const bus = new EventBus();
  const w = new SignedLoaderWatch({ store, bus, log });
  return { store, bus, w, log, close: async () => (w.close(), await store.close()) };
}

test("snponly.efi sent, then a firmware DHCP within two minutes and no iPXE: marked, also after a restart", async () => {
  const dir = tempDir("state-");
  const s = await watch(dir);
  // What the TFTP server says on the bus when snponly.efi went out.
  s.bus.emit({ type: "tftp.end", mac: A, ip: "10.0.0.5", client: "10.0.0.5:2000", file: "ipxe/snponly.efi", kind: "nbp", outcome: "sent", sizeProbe: false, reason: undefined, bytes: 1000, seconds: 0.1, retransmits: 0 });
  expect(s.w.dhcp(A, "efi-x64", Date.now() + 30_000)).toBe(true);
  expect(s.w.reason(A)).toMatch(/iPXE never started: Secure Boot\?/);
  expect(s.log.lines.some((l) => l.level === "warn" && l.msg.includes(`${A}: iPXE never started`))).toBe(true);
  // The firmware's HTTP boot attempt that follows a refused PXE image counts as well (OVMF does this).
  s.w.ipxeSent(B, 0);
  expect(s.w.dhcp(B, "efi-x64-http", 5_000)).toBe(true);
  await s.close();
  const again = await watch(dir);
  expect(again.w.reason(A)).toBeDefined();
  expect(again.w.reason(B)).toBeDefined(); // an unlisted MAC's mark is kept too
  await again.store.signedLoader(A, undefined);
  await again.close();
  const third = await watch(dir);
  expect(third.w.reason(A)).toBeUndefined();
  await third.close();
});

test("iPXE that starts (its own DHCP, or /boot.ipxe) is not mistaken for Secure Boot; nor a late reboot", async () => {
  const s = await watch(tempDir("state-"));
  s.w.ipxeSent(A, 0);
  expect(s.w.dhcp(A, "ipxe", 2_000)).toBe(false);
  expect(s.w.dhcp(A, "efi-x64", 60_000)).toBe(false);
  s.w.ipxeSent(B, 0);
  // What the HTTP edge says when iPXE fetched its script.
  s.bus.emit({ type: "http.end", mac: B, ip: "10.0.0.6", client: "10.0.0.6", method: "GET", path: "/boot.ipxe", status: 200, bytes: 300, kind: "script" });
  expect(s.w.dhcp(B, "efi-x64", 10_000)).toBe(false);
  s.w.ipxeSent(A, 0);
  expect(s.w.dhcp(A, "efi-x64", LIMITS.hosts.ipxeStartWindowMs + 1)).toBe(false);
  expect(s.w.dhcp(A, "bios", 10)).toBe(false);
  expect(s.w.reason(A)).toBeUndefined();
  expect(s.w.reason(B)).toBeUndefined();
  expect(s.store.get(B)).toBeUndefined();
  await s.close();
});

test("a state directory of the layout before the store: read once, kept as .v1, nothing armed again", async () => {
  const dir = tempDir("state-v1-");
  const doneAt = 1_790_000_000_000;
  writeFileSync(join(dir, "hosts.json"), JSON.stringify({ version: 1, hosts: { [A]: { token: "0123456789abcdef0123456789abcdef", phase: "done", startedAt: doneAt - 600_000, doneAt }, "52:54:00:00:00:0c": { token: "fedcba9876543210fedcba9876543210", phase: "failed", failure: "no disk" } } }));
  writeFileSync(join(dir, "signed-loader.json"), JSON.stringify({ version: 1, hosts: { [B]: { since: "2026-01-01T00:00:00.000Z", reason: "iPXE never started: Secure Boot? using the signed ESXi loader over TFTP" } } }));
  writeFileSync(join(dir, "bsdp.json"), JSON.stringify({ version: 1, selections: { [B]: { image: 0x81000123, at: "2026-01-01T00:00:00.000Z" } } }));
  mkdirSync(join(dir, "rearm"));
  writeFileSync(join(dir, "rearm", "52-54-00-00-00-0c"), "2026-01-02T00:00:00Z\n");
  const s = await watch(dir);
  expect(s.store.get(A)).toMatchObject({ phase: "done", doneAt, token: "0123456789abcdef0123456789abcdef" });
  expect(s.store.get("52:54:00:00:00:0c" as never)?.phase).toBeUndefined(); // its rearm request was applied
  expect(s.w.reason(B)).toMatch(/^iPXE never started/);
  expect(s.store.get(B)?.bsdp).toEqual({ image: 0x81000123 });
  for (const f of ["hosts.json.v1", "signed-loader.json.v1", "bsdp.json.v1", "rearm.v1"]) expect(existsSync(join(dir, f))).toBe(true);
  for (const f of ["signed-loader.json", "bsdp.json", "rearm"]) expect(existsSync(join(dir, f))).toBe(false);
  expect(JSON.parse(readFileSync(join(dir, "hosts.json"), "utf8"))).toMatchObject({ format: "netboot-hosts", version: 2 });
  await s.close();
  // Read again as version 2: the same.
  const again = await watch(dir);
  expect(again.store.get(A)).toMatchObject({ phase: "done", doneAt });
  expect(again.w.reason(B)).toBeDefined();
  await again.close();
});

test("a file of the old layout that is not one stops the start with one line, as every state file does", async () => {
  const dir = tempDir("state-");
  writeFileSync(join(dir, "signed-loader.json"), "{torn");
  const err = await watch(dir).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(StoreError);
  expect((err as Error).message).toMatch(/signed-loader\.json is not a Secure Boot memory file \(.*\); restore it from a backup, or move it away/);
  expect(existsSync(join(dir, "signed-loader.json"))).toBe(true); // left as it was
});
