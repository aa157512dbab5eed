/**
 * Is there another DHCP server on the link? Broadcast a DISCOVER from port 68 out of the interface and
 * collect the OFFERs. Used by --dhcp auto (proxy beside a server, full server on an empty link) and to
 * refuse --dhcp server where one already answers.
 */
import { DEFAULTS } from "../config.ts";
import { ServiceError } from "../errors.ts";
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
    const why = `cannot listen on port ${opts.clientPort ?? DHCP_CLIENT_PORT} (${(err as Error).message})`;
    if (process.platform === "darwin") {
      // macOS's own DHCP client holds *:68 whenever any network service is set to "Using DHCP".
      return { servers: [], uncertain: `${why}: macOS's DHCP client holds it (a network service is set to "Using DHCP"), which says nothing about ${opts.iface}; for a cable with no DHCP server on it, give ${opts.iface} a manual address (networksetup -setmanual "<service>" IP MASK) or pass --dhcp server` };
    }
    return { servers: [], uncertain: `${why}; a DHCP client on this machine suggests a DHCP server on the link` };
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
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULTS.probeMs);
    // A DISCOVER every second, as DHCP clients retry, until the deadline or the first OFFER: one packet
    // lost on a busy link must not decide the mode, and servers may be slow to offer (dnsmasq pings 3 s).
    while (Date.now() < deadline && servers.size === 0) {
      try {
        sock.send(bytes, opts.serverPort ?? DHCP_SERVER_PORT, "255.255.255.255");
      } catch (err) {
        throw broadcastError(err, opts.iface);
      }
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    }
    return { servers: [...servers], uncertain: undefined };
  } finally {
    sock.close();
  }
}

/**
 * A broadcast the kernel will not send: on macOS an address set by hand with ifconfig has no scoped
 * 255.255.255.255 route (configd adds one per network service), so the send fails with EHOSTUNREACH.
 */
export function broadcastError(err: unknown, iface: string): ServiceError {
  const code = String((err as { code?: unknown }).code ?? "");
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new ServiceError(
      "E_DHCP_BROADCAST",
      `cannot broadcast on ${iface} (${code}): no route for 255.255.255.255 there`,
      process.platform === "darwin"
        ? `on macOS give ${iface} its address through its network service, not ifconfig: networksetup -setmanual "<service>" IP MASK (networksetup -listallhardwareports names the service)`
        : `give ${iface} an address and bring it up (ip addr add …; ip link set ${iface} up)`,
    );
  }
  return new ServiceError("E_DHCP_BROADCAST", `cannot broadcast on ${iface}: ${(err as Error).message}`);
}
