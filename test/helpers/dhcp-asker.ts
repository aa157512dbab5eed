/**
 * Many simulated machines' DHCP on one port-68 socket bound to a link (the storm's clients, the small
 * probe): each exchange is matched by its xid, timed from its own send (a retransmission restarts the
 * clock, as a client's does), with the packets OVMF sends (src/sim/dhcp.ts).
 */
import { MessageType, Op, Opt } from "../../src/dhcp/constants.ts";
import { decodeDhcpPacket, encodeDhcpPacket, optIp, optString, optU8 } from "../../src/dhcp/packet.ts";
import { bindSocketToDevice } from "../../src/net/device.ts";
import { openUdp } from "../../src/net/udp.ts";
import { clientPacket } from "../../src/sim/dhcp.ts";
import type { Mac } from "../../src/wire/mac.ts";

export type DhcpReply = { type: number; yiaddr: number; serverId?: number; file?: string };
export interface DhcpAsker {
  /**
   * Sends `type` and waits for `want`: up to `attempts` sends, the n-th waiting timeoutMs + n × backoffMs.
   * Resolves with the answer and how long the send that got it waited, or undefined when none came.
   */
  ask(mac: Mac, type: number, xid: number, want: number, opts?: { requested?: string; serverId?: string; attempts?: number; timeoutMs?: number; backoffMs?: number }): Promise<(DhcpReply & { ms: number }) | undefined>;
  close(): void;
}

export async function openDhcpAsker(iface: string): Promise<DhcpAsker> {
  const waiting = new Map<number, (r: DhcpReply) => void>();
  const sock = await openUdp({
    address: "0.0.0.0",
    port: 68,
    service: "DHCP client",
    onMessage: (data) => {
      try {
        const p = decodeDhcpPacket(data);
        if (p.op !== Op.Reply) return;
        waiting.get(p.xid)?.({ type: optU8(p, Opt.MessageType) ?? 0, yiaddr: p.yiaddr, serverId: optIp(p, Opt.ServerIdentifier), file: optString(p, Opt.BootfileName) ?? (p.file || undefined) });
      } catch {}
    },
  });
  const b = await bindSocketToDevice(sock.fd, iface);
  if (!b.ok) throw new Error(`bind ${iface}: ${b.why}`);
  sock.setBroadcast(true);
  return {
    async ask(mac, type, xid, want, o = {}) {
      for (let attempt = 0; attempt < (o.attempts ?? 1); attempt++) {
        const sent = performance.now();
        const got = new Promise<DhcpReply | undefined>((resolve) => {
          const t = setTimeout(() => resolve(undefined), (o.timeoutMs ?? 2000) + attempt * (o.backoffMs ?? 0));
          waiting.set(xid, (r) => {
            if (r.type !== want && r.type !== MessageType.Nak) return;
            clearTimeout(t);
            resolve(r);
          });
        });
        sock.send(encodeDhcpPacket(clientPacket({ arch: "uefi", asker: "firmware", mac, xid, type, requested: o.requested, serverId: o.serverId })), 67, "255.255.255.255");
        const r = await got;
        waiting.delete(xid);
        if (r && r.type === want) return { ...r, ms: performance.now() - sent };
        if (r) throw new Error(`NAK to ${type}`);
      }
      return undefined;
    },
    close: () => sock.close(),
  };
}
