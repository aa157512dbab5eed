/**
 * Is there another DHCP server on the link? Broadcast a DISCOVER from port 68 out of the interface and
 * collect the OFFERs. Used by --dhcp auto (proxy beside a server, full server on an empty link) and to
 * refuse --dhcp server where one already answers.
 */
import type { Logger } from "../log.ts";
import { bindSocketToDevice } from "../net/device.ts";
import { openUdp } from "../net/udp.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import { macToBytes, type Mac } from "../wire/mac.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, FLAG_BROADCAST, MessageType, Op, Opt } from "./constants.ts";
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, optIp, optU8, str, u8 } from "./packet.ts";

export interface ProbeResult {
  /** Server identifiers (or source addresses) that offered. */
  servers: string[];
  /** When the probe could not run as designed, why (the caller treats that as "there may be one"). */
  uncertain: string | undefined;
}

export async function probeDhcpServers(opts: { iface: string; mac: Mac; ownIp: number; log: Logger; timeoutMs?: number; runtime?: "bun" | "node"; clientPort?: number; serverPort?: number }): Promise<ProbeResult> {
  const xid = (Math.random() * 0xffffffff) >>> 0;
  const servers = new Set<string>();
  let sock;
  try {
    sock = await openUdp({
      address: "0.0.0.0",
      port: opts.clientPort ?? DHCP_CLIENT_PORT,
      service: "DHCP probe",
      runtime: opts.runtime,
      onMessage: (data, address) => {
        try {
          const p = decodeDhcpPacket(data);
          if (p.op !== Op.Reply || p.xid !== xid || optU8(p, Opt.MessageType) !== MessageType.Offer) return;
          const id = optIp(p, Opt.ServerIdentifier);
          if (id === opts.ownIp) return;
          servers.add(id !== undefined ? formatIPv4(id) : address);
        } catch {
          // not a DHCP reply
        }
      },
    });
  } catch (err) {
    // Port 68 is taken when a DHCP client runs on this machine: then this link has a DHCP server.
    return { servers: [], uncertain: `cannot listen on port ${opts.clientPort ?? DHCP_CLIENT_PORT} (${(err as Error).message}); a DHCP client on this machine suggests a DHCP server on the link` };
  }
  try {
    const b = await bindSocketToDevice(sock.fd, opts.iface);
    if (!b.ok) opts.log.debug(`probe socket not bound to ${opts.iface}: ${b.why}`);
    sock.setBroadcast(true);
    const p = emptyPacket();
    p.op = Op.Request;
    p.xid = xid;
    p.flags = FLAG_BROADCAST;
    p.chaddr.set(macToBytes(opts.mac));
    p.options.set(Opt.MessageType, u8(MessageType.Discover));
    p.options.set(Opt.ParameterRequestList, Uint8Array.of(Opt.SubnetMask, Opt.Router, Opt.ServerIdentifier));
    p.options.set(Opt.VendorClass, str("netboot-probe"));
    const bytes = encodeDhcpPacket(p);
    const deadline = Date.now() + (opts.timeoutMs ?? 6000);
    // A DISCOVER every second, as DHCP clients retry, until the deadline or the first OFFER: one packet
    // lost on a busy link must not decide the mode, and servers may be slow to offer (dnsmasq pings 3 s).
    while (Date.now() < deadline && servers.size === 0) {
      sock.send(bytes, opts.serverPort ?? DHCP_SERVER_PORT, "255.255.255.255");
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    }
    return { servers: [...servers], uncertain: undefined };
  } finally {
    sock.close();
  }
}
