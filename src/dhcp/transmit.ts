/** Where a reply goes: RFC 2131 §4.1's decision table, for our UDP sockets. Pure. */
import type { TransmitOptions } from "../config.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, MessageType, Opt } from "./constants.ts";
import { optU8, type DhcpPacket } from "./packet.ts";

export interface Destination {
  address: string;
  port: number;
  /** Sent to the limited broadcast address: needs SO_BROADCAST, goes out of the bound interface only. */
  broadcast: boolean;
}

/**
 * RFC 2131 §4.1: a non-zero giaddr means reply to the relay, port 67; a NAK without relay is broadcast;
 * a non-zero ciaddr means unicast to it (RENEW, INFORM); otherwise the broadcast bit decides. A reply that
 * could go by unicast to yiaddr and chaddr is broadcast instead: that needs an ARP entry a UDP socket
 * cannot make, and the RFC allows broadcasting.
 * Requests that came to the PXE port (4011) are answered to where they came from (PXE 2.1 §2.2.4).
 */
export function replyDestination(req: DhcpPacket, reply: DhcpPacket, source: { address: string; port: number }, viaPxePort: boolean, opts: TransmitOptions = {}): Destination {
  const clientPort = opts.clientPort ?? DHCP_CLIENT_PORT;
  const bcast = opts.broadcastAddress ?? "255.255.255.255";
  if (viaPxePort && source.address !== "0.0.0.0") return { address: source.address, port: source.port, broadcast: false };
  if (req.giaddr !== 0) return { address: formatIPv4(req.giaddr), port: DHCP_SERVER_PORT, broadcast: false };
  if (optU8(reply, Opt.MessageType) === MessageType.Nak) return { address: bcast, port: clientPort, broadcast: true };
  if (req.ciaddr !== 0) return { address: formatIPv4(req.ciaddr), port: clientPort, broadcast: false };
  return { address: bcast, port: clientPort, broadcast: true };
}
