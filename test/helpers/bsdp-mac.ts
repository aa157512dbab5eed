/**
 * A scripted Intel Mac for namespace tests. Its packets are the hand-made fixtures in test/fixtures/bsdp
 * (and iPXE's captured DISCOVER) with this run's addresses put in; test/helpers/dhcp-peer.ts sends them
 * from inside the Mac's namespace and brings back every reply.
 */
import { join } from "node:path";
import { decodeBsdpOptions } from "../../src/bsdp/options.ts";
import { Opt } from "../../src/dhcp/constants.ts";
import { decodeDhcpPacket, type DhcpPacket } from "../../src/dhcp/packet.ts";
import { bun, repo } from "./cli.ts";
import { readHexFixture } from "./hex.ts";
import type { Lan } from "./lan.ts";

export const MAC = "00:3e:e1:c2:a1:b0";
export const MODEL = "AAPLBSDPC/i386/iMac14,3";

// --- packets from the fixtures, with this run's addresses put in ---

function replaceAll(bytes: Uint8Array, from: number[], to: number[]): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i + from.length <= out.length; i++) if (from.every((b, k) => out[i + k] === b)) out.set(to, i);
  return out;
}
const macBytes = (m: string) => m.split(":").map((h) => parseInt(h, 16));
const ipBytes = (a: string) => a.split(".").map(Number);

/** Offset of the value of BSDP sub-option `tag` inside the fixture's option 43. */
function subOptionAt(bytes: Uint8Array, tag: number): number {
  for (let i = 240; i < bytes.length && bytes[i] !== 255; i += 2 + bytes[i + 1]!) {
    if (bytes[i] !== Opt.VendorSpecific) continue;
    for (let j = i + 2; j < i + 2 + bytes[i + 1]!; j += 2 + bytes[j + 1]!) if (bytes[j] === tag) return j + 2;
  }
  throw new Error(`no sub-option ${tag}`);
}

export function informList(ciaddr: string, replyPort = 68): Uint8Array {
  const p = readHexFixture("bsdp/inform-list.hex");
  p.set(ipBytes(ciaddr), 12);
  const at = subOptionAt(p, 5);
  p[at] = replyPort >> 8;
  p[at + 1] = replyPort & 0xff;
  return p;
}

export function informSelect(ciaddr: string, server: string, image: number): Uint8Array {
  const p = readHexFixture("bsdp/inform-select.hex");
  p.set(ipBytes(ciaddr), 12);
  p.set(ipBytes(server), subOptionAt(p, 3));
  p.set([image >>> 24, (image >>> 16) & 0xff, (image >>> 8) & 0xff, image & 0xff], subOptionAt(p, 8));
  return p;
}

/** The INFORM[LIST] fixture turned into the DISCOVER a Mac sends at an N-key boot (no address yet). */
export function macDiscover(): Uint8Array {
  const p = informList("0.0.0.0");
  // option 53 is the first option (offset 240): DHCPDISCOVER; option 43 goes (the firmware sends none here)
  p[242] = 1;
  return p;
}

/** The DISCOVER real iPXE (snponly.efi) sent, captured in test/fixtures/dhcp, as if from the Mac. */
export function ipxeDiscover(): Uint8Array {
  return replaceAll(readHexFixture("dhcp/ipxe-efi-discover.hex"), macBytes("52:54:00:12:34:56"), macBytes(MAC));
}

export interface Reply {
  from: string;
  port: number;
  packet: DhcpPacket;
}

/** Runs test/helpers/dhcp-peer.ts in the Mac's namespace: sends each packet, collects what comes back. */
export async function peer(lan: Lan, node: string, port: number, packets: Uint8Array[], waitMs = 1500): Promise<Reply[][]> {
  const p = Bun.spawn(["ip", "netns", "exec", lan.nodes[node]!.ns, bun, join(repo, "test/helpers/dhcp-peer.ts")], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  p.stdin.write(JSON.stringify({ port, steps: packets.map((b) => ({ hex: Buffer.from(b).toString("hex"), waitMs })) }));
  await p.stdin.end();
  const out = await new Response(p.stdout).text();
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) throw new Error(`dhcp-peer failed: ${err}`);
  return (JSON.parse(out) as Array<Array<{ from: string; port: number; hex: string }>>).map((step) =>
    step.map((r) => ({ from: r.from, port: r.port, packet: decodeDhcpPacket(new Uint8Array(Buffer.from(r.hex, "hex"))) })),
  );
}

export const fromUs = (replies: Reply[], server: string) => replies.filter((r) => r.from === server && r.port === 67);
export const bsdpOf = (p: DhcpPacket) => decodeBsdpOptions(p.options.get(Opt.VendorSpecific)!);

