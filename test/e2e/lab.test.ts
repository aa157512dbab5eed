/**
 * Boot-once with real firmware: OVMF, listed in a lab file in mode once, boots iPXE and the (test) loader,
 * which loads every module; after its done callback, the next boot of the same machine gets no boot file
 * (checked in a capture on the server's side with tshark), and the machine goes on to its disk.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { bookFromFlags } from "../../src/hosts/book.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { memoryLogger } from "../../src/log.ts";
import type { Mac } from "../../src/wire/mac.ts";
import { startCapture, tshark } from "../helpers/capture.ts";
import { makeEsxiIso, testModules } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";
import { buildGuests, parseModules } from "./guest.ts";
import { CLIENT_MAC, bootFirmware, type Qemu } from "./qemu.ts";

for (const t of ["qemu-system-x86_64", "ip", "tcpdump", "tshark", "curl"]) requireTool(t);
requireRoot();

const running: Array<{ stop(): Promise<unknown> }> = [];
const lans: Lan[] = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  for (const l of lans.splice(0)) l.destroy();
});

async function until(ok: () => boolean, ms: number, what: string, srv: Served, q?: Qemu): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`no ${what} within ${ms / 1000} s\n--- log ---\n${srv.log().slice(-5000)}\n--- serial ---\n${q?.serial().slice(-3000) ?? ""}`);
    await Bun.sleep(250);
  }
}

test("OVMF in mode once: installs (iPXE, loader, modules), reports done, then gets no boot file", async () => {
  const guests = buildGuests();
  const iso = makeEsxiIso({ efi: guests.loader });
  const lan = createLan(236, [{ name: "srv" }], ["tap0"]);
  lans.push(lan);
  const state = tempDir("state-");
  const lab = join(tempDir("lab-"), "lab.yaml");
  writeFileSync(lab, `server: { iface: lan0, dhcp: server, force: true }\nimages: { esxi: ${iso} }\ndefaults: { kickstart: default, vars: { rootpw: { env: LAB_ROOTPW } } }\nhosts:\n  - { mac: "${CLIENT_MAC}", hostname: qemu01, mode: once }\n`);
  const srv = await serve(["--config", lab, "--state-dir", state, "-v"], { ns: lan.nodes.srv!.ns, env: { LAB_ROOTPW: "x" }, readyMs: 40_000 });
  running.push(srv);

  const first = bootFirmware("uefi-pxe", lan.switchNs, "tap0");
  running.push(first);
  await until(() => /NETBOOT-TEST-LOADER-DONE/.test(first.serial()), 170_000, "loader done", srv, first);
  expect(parseModules(first.serial())).toHaveLength(1 + testModules.length);
  // The boot.cfg it read named its kickstart (it is armed).
  expect(first.serial()).toMatch(/kernelopt=runweasel ks=http:\/\/10\.236\.0\.1\/esxi\/01-52-54-00-12-34-56\/ks\.cfg/);
  await first.stop();
  const api = () => JSON.parse(lan.exec("srv", ["curl", "-s", "http://10.236.0.1/api/hosts"]).out) as { hosts: Array<{ mac: string; phase: string }> };
  expect(api().hosts.find((h) => h.mac === CLIENT_MAC)?.phase).toBe("modules");

  // What the kickstart's %post does (this test loader runs no installer): call done_url with its token.
  // Its token, as the host store beside the server has it (`netboot hosts` reads it the same way).
  const store = await openHostStore({ url: undefined, stateDir: state }, bookFromFlags({ allow: [CLIENT_MAC as Mac], allowAny: false, ks: undefined, image: "esxi" }), memoryLogger(), "client");
  const token = store.get(CLIENT_MAC as Mac)!.token!;
  await store.close();
  const done = lan.exec("srv", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://10.236.0.1/api/hosts/${CLIENT_MAC}/done?token=${token}`]);
  expect(done.out).toBe("200");
  expect(api().hosts.find((h) => h.mac === CLIENT_MAC)?.phase).toBe("done");

  // The next boot: DHCP answers, without a boot file; the firmware finds nothing to boot from us.
  const cap = await startCapture(lan.switchNs, "br0", "udp port 67 or udp port 68");
  running.push(cap);
  const from = srv.log().length;
  const second = bootFirmware("uefi-pxe", lan.switchNs, "tap0");
  running.push(second);
  // A PXE firmware does not take an offer without boot information: "No valid offer received".
  await until(() => /DISCOVER → OFFER 10\.236\.0\.\d+\n/.test(srv.log().slice(from)) && /PXE-E16: No valid offer received/.test(second.serial()), 120_000, "the second boot's plain offer", srv, second);
  await cap.stop();
  const later = srv.log().slice(from);
  expect(later).toMatch(new RegExp(`${CLIENT_MAC}: boots from its own disk \\(installed`));
  expect(later).not.toMatch(/boot ipxe\/snponly\.efi/);
  const files = tshark(["-r", cap.file, "-Y", "udp.srcport == 67 && (dhcp.option.dhcp == 2 || dhcp.option.dhcp == 5)", "-T", "fields", "-e", "dhcp.file", "-e", "dhcp.option.bootfile_name"]).trim();
  expect(files.replaceAll(/\s/g, "")).toBe("");
}, 400_000);
