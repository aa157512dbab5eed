/**
 * Wake-on-LAN: `netboot power HOST on` for a host with `bmc: { wol: true }` sends the magic packet to the
 * serving link's broadcast, and tshark's WOL dissector (an independent decoder) reads the host's MAC out
 * of it on the other end of the link. Network namespaces made by the test; nothing else is touched.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { directedBroadcast, magicPacket } from "../../src/bmc/wol.ts";
import { bun, repo, waitFor } from "../helpers/cli.ts";
import { createNetPair, type NetPair } from "../helpers/netns.ts";
import { tempDir } from "../helpers/tools.ts";

let pair: NetPair;
beforeAll(() => {
  pair = createNetPair(196);
});
afterAll(() => pair?.destroy());

test("the magic packet: six 0xFF, the MAC sixteen times; the link's directed broadcast", () => {
  const p = magicPacket("52:54:00:ab:cd:ef");
  expect(p.length).toBe(102);
  expect([...p.subarray(0, 6)]).toEqual([255, 255, 255, 255, 255, 255]);
  expect([...p.subarray(96, 102)]).toEqual([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
  expect(directedBroadcast("10.77.0.1", 24)).toBe("10.77.0.255");
  expect(directedBroadcast("172.16.5.9", 20)).toBe("172.16.15.255");
});

test("netboot power HOST on sends it on the serving link; tshark decodes the host's MAC; off is refused in one line", { timeout: 30_000 }, async () => {
  const dir = tempDir("wol-");
  const lab = join(dir, "lab.yaml");
  writeFileSync(lab, `images: { esxi: ${dir}/none.iso }\nhosts:\n  - { mac: 52:54:00:96:00:07, hostname: bench7, bmc: { wol: true } }\n`);
  const cap = spawn("ip", ["netns", "exec", pair.client, "tshark", "-l", "-i", pair.clientIf, "-c", "1", "-f", "udp port 9", "-Y", "wol", "-T", "fields", "-e", "wol.mac", "-e", "ip.dst"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  cap.stdout.on("data", (d) => (out += d));
  cap.stderr.on("data", (d) => (err += d));
  await waitFor(() => /Capturing on/.test(err), 15_000, "tshark to capture");
  const r = pair.exec(pair.server, [bun, join(repo, "src/main.ts"), "power", "bench7", "on", "--config", lab, "--iface", pair.serverIf]);
  expect(r.code).toBe(0);
  expect(r.out).toContain("bench7: power on sent (Wake-on-LAN 10.196.0.255:9)");
  await waitFor(() => out.includes("\n"), 10_000, "tshark to see the packet");
  // The dissector lists the sixteen copies of the MAC it found.
  const [macs, dst] = out.trim().split("\t");
  expect(macs!.split(",")).toEqual(Array(16).fill("52:54:00:96:00:07"));
  expect(dst).toBe("10.196.0.255");
  cap.kill();
  const off = pair.exec(pair.server, [bun, join(repo, "src/main.ts"), "power", "bench7", "off", "--config", lab, "--iface", pair.serverIf]);
  expect(off.code).toBe(1);
  expect(off.err).toContain("Wake-on-LAN can only power a machine on");
  expect(off.err).not.toContain("    at ");
});
