/**
 * A DHCP load client for namespace tests and benches, run inside a client namespace
 * (`ip netns exec NS bun test/helpers/dhcp-load.ts MODE …`); prints one JSON line with its counts at the end.
 *
 *   flood --iface IF --count N [--mac MAC] [--ms T]   N DISCOVERs (made-up MACs, or one MAC in a loop) over
 *                                                    T ms; counts the OFFERs answering them
 *   dora  --iface IF --macs N --out FILE [--rate R]   DISCOVER/OFFER/REQUEST/ACK for N MACs, 16 at a time (R new
 *                                                    exchanges a second at most, default 150), each
 *                                                    retried until ACKed; every ACK is appended to FILE
 *                                                    ({"mac","ip"} per line) the moment it arrives, so the
 *                                                    record outlives a server killed right after sending it
 */
import { appendFileSync } from "node:fs";
import { bindSocketToDevice } from "../../src/net/device.ts";
import { openUdp } from "../../src/net/udp.ts";
import { MessageType, Op, Opt } from "../../src/dhcp/constants.ts";
import { decodeDhcpPacket, encodeDhcpPacket, optIp, optU8 } from "../../src/dhcp/packet.ts";
import { clientPacket } from "../../src/sim/dhcp.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import type { Mac } from "../../src/wire/mac.ts";

const [mode, ...rest] = process.argv.slice(2);
const arg = (name: string, dflt?: string) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1]! : dflt;
};
const iface = arg("iface", "lan0")!;

type Waiter = (type: number, yiaddr: number, serverId: number | undefined) => void;
const waiting = new Map<number, Waiter>();
const sock = await openUdp({
  address: "0.0.0.0",
  port: 68,
  service: "DHCP client",
  onMessage: (data) => {
    let p;
    try {
      p = decodeDhcpPacket(data);
    } catch {
      return;
    }
    if (p.op !== Op.Reply) return;
    waiting.get(p.xid)?.(optU8(p, Opt.MessageType) ?? 0, p.yiaddr, optIp(p, Opt.ServerIdentifier));
  },
});
const bound = await bindSocketToDevice(sock.fd, iface);
if (!bound.ok) throw new Error(`cannot bind to ${iface}: ${bound.why}`);
sock.setBroadcast(true);

const macOf = (prefix: number, i: number): Mac =>
  [0x02, prefix, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, "0")).join(":") as Mac;
let xidNext = (Math.random() * 0x7fffffff) >>> 0;
const send = (mac: Mac, type: number, xid: number, requested?: string, serverId?: string) =>
  sock.send(encodeDhcpPacket(clientPacket({ arch: "uefi", asker: "firmware", mac, xid, type, requested, serverId })), 67, "255.255.255.255");

if (mode === "flood") {
  const count = Number(arg("count", "1000"));
  const ms = Number(arg("ms", "1000"));
  const one = arg("mac") as Mac | undefined;
  const prefix = Number(arg("prefix", "254"));
  let offers = 0;
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const xid = xidNext++;
    waiting.set(xid, (type) => {
      if (type === MessageType.Offer) offers++;
    });
    send(one ?? macOf(prefix, i), MessageType.Discover, xid);
    const due = start + ((i + 1) * ms) / count;
    if (due > Date.now()) await Bun.sleep(due - Date.now());
  }
  await Bun.sleep(500);
  console.log(JSON.stringify({ sent: count, offers }));
  process.exit(0);
}

if (mode === "dora") {
  const macs = Number(arg("macs", "100"));
  const out = arg("out")!;
  const prefix = Number(arg("prefix", "1"));
  const gap = 1000 / Number(arg("rate", "150"));
  let slot = Date.now();
  const pace = async () => {
    slot = Math.max(slot + gap, Date.now());
    if (slot > Date.now()) await Bun.sleep(slot - Date.now());
  };
  const answer = (xid: number, want: number, ms: number) =>
    new Promise<{ yiaddr: number; serverId: number | undefined } | undefined>((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(xid);
        resolve(undefined);
      }, ms);
      waiting.set(xid, (type, yiaddr, serverId) => {
        if (type !== want && type !== MessageType.Nak) return;
        clearTimeout(t);
        waiting.delete(xid);
        resolve(type === want ? { yiaddr, serverId } : undefined);
      });
    });
  let acks = 0;
  let tries = 0;
  const one = async (mac: Mac) => {
    for (;;) {
      await pace();
      tries++;
      const xid = xidNext++;
      const offered = answer(xid, MessageType.Offer, 300);
      send(mac, MessageType.Discover, xid);
      const offer = await offered;
      if (!offer) continue;
      const acked = answer(xid, MessageType.Ack, 300);
      send(mac, MessageType.Request, xid, formatIPv4(offer.yiaddr), offer.serverId !== undefined ? formatIPv4(offer.serverId) : undefined);
      const ack = await acked;
      if (!ack) continue;
      appendFileSync(out, JSON.stringify({ mac, ip: formatIPv4(ack.yiaddr) }) + "\n");
      acks++;
      return;
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < macs) await one(macOf(prefix, next++));
    }),
  );
  console.log(JSON.stringify({ acks, tries }));
  process.exit(0);
}

console.error(`usage: dhcp-load.ts flood|dora --iface IF …`);
process.exit(2);
