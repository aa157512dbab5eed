/**
 * Responders: each flavour of DHCP answer as a pure function of a request. The server loop (server.ts) hands
 * every request to its responders in order; the first that claims it answers (or declines with a reason).
 * BSDP (bsdp/) is one more responder the composition root puts in front: this file never imports it.
 */
import type { BootClient, BootDecision } from "../boot/types.ts";
import type { BsdpAnswerType } from "../events.ts";
import { formatIPv4, ipv4ToBytes, type Subnet } from "../wire/ipv4.ts";
import { MessageType, Opt, messageTypeName } from "./constants.ts";
import type { LeasePool } from "./leases.ts";
import { clientMac, ips, optIp, optString, optU8, str, type DhcpPacket } from "./packet.ts";
import { addBootFields, addLeaseTimes, baseReply, echoRelayInfo } from "./reply.ts";

export interface DhcpRequest {
  packet: DhcpPacket;
  client: BootClient;
  /** Arrived on the PXE boot-server port (4011), not on 67. */
  viaPxePort: boolean;
  source: { address: string; port: number };
}

export interface DhcpAnswer {
  packet: DhcpPacket;
  /** One line for the log ("OFFER 10.0.0.5, boot ipxe/snponly.efi"). */
  note: string;
  /** The client asked to be answered on this port instead of 68 (BSDP reply port); relays still get 67. */
  clientPort?: number;
  /** What the boot policy said for this client (a denied host in server mode still gets an address). */
  decision?: BootDecision | undefined;
  /** A BSDP answer's kind (the BSDP responder sets it; a DHCP answer's type is its option 53). */
  bsdp?: BsdpAnswerType | undefined;
}

/**
 * undefined: not mine, ask the next responder; `ignore`: mine, no answer (the reason goes to the log, with
 * what the policy said when it was asked). `durable`: the answers promise a lease (an ACK), so they go out
 * only once the lease is on disk (DhcpServerOptions.commit).
 */
export type Outcome = { answers: DhcpAnswer[]; mac?: string; durable?: boolean } | { ignore: string; decision?: BootDecision | undefined } | undefined;

export interface Responder {
  readonly name: string;
  /** Which protocol its answers are, on the bus (dhcp.request or bsdp.request). */
  readonly protocol: "dhcp" | "bsdp";
  handle(req: DhcpRequest): Outcome;
}

/** The boot policy, as a responder sees it. */
export type Decide = (client: BootClient) => BootDecision;

// --- proxyDHCP ---

/**
 * proxyDHCP (PXE 2.1 §2.2.4, RFC 4578): beside the site's DHCP server, answer PXE and UEFI HTTP clients'
 * DISCOVERs with an offer that carries no address, only where to boot from; and their requests on port 4011
 * (the "boot server" exchange some firmwares use) with an ACK carrying the same. Everything else is left
 * to the site's server.
 */
export function proxyResponder(opts: { serverIp: number; decide: Decide }): Responder {
  return {
    name: "proxyDHCP",
    protocol: "dhcp",
    handle(req) {
      const type = optU8(req.packet, Opt.MessageType);
      const bootRequest = type === MessageType.Discover || (req.viaPxePort && (type === MessageType.Request || type === MessageType.Inform));
      if (!bootRequest) return undefined;
      const d = opts.decide(req.client);
      // A machine that boots from its own disk gets no proxy answer: the site's server's lease is all it needs.
      if (d.action !== "boot") return { ignore: d.action === "local" ? `boots from its own disk: ${d.reason}` : d.reason, decision: d };
      const reply = baseReply(req.packet, type === MessageType.Discover ? MessageType.Offer : MessageType.Ack, opts.serverIp);
      addBootFields(reply, req.packet, d, { serverIp: opts.serverIp, proxy: true });
      echoRelayInfo(req.packet, reply);
      return { answers: [{ packet: reply, note: `${messageTypeName(optU8(reply, Opt.MessageType))} (proxy), boot ${d.file}: ${d.why}`, decision: d }] };
    },
  };
}

// --- full DHCP server ---

export interface NetworkOptions {
  subnet: Subnet;
  /** Option 3; for a relayed pool the relay's address is the default. */
  router: number | undefined;
  dns: readonly number[];
  domain: string | undefined;
}

export interface ScopedPool {
  pool: LeasePool;
  net: NetworkOptions;
  /** Serves requests relayed from this subnet (giaddr inside it), or the local link when undefined. */
  relayed: boolean;
}

export interface ServerResponderOptions {
  serverIp: number;
  /** The pool for a request: the local one, or the one whose subnet holds giaddr. */
  poolFor: (packet: DhcpPacket) => ScopedPool | undefined;
  decide: Decide;
  /** Called after a lease is bound (ACK), for IP → MAC lookups (iPXE script, TFTP). */
  onBound?: (mac: string, ip: number) => void;
  /** Last word on each OFFER/ACK before it goes out (BSDP folds its answer into a Mac's offer). */
  extend?: (req: DhcpPacket, reply: DhcpPacket, client: BootClient) => void;
}

/**
 * A DHCP server for a link netboot owns (RFC 2131 §4.3): DISCOVER/OFFER/REQUEST/ACK/NAK, INIT-REBOOT,
 * RENEW/REBIND, RELEASE, DECLINE, INFORM. Every client gets an address; network-boot clients also get
 * where to boot from (the policy's answer), so no proxyDHCP is needed beside it.
 */
export function serverResponder(opts: ServerResponderOptions): Responder {
  const answer = (req: DhcpPacket, type: number, scoped: ScopedPool, yiaddr: number, client: BootClient, leaseSeconds?: number, note = "") => {
    const reply = baseReply(req, type, opts.serverIp);
    reply.yiaddr = yiaddr;
    networkOptions(reply, scoped.net, req);
    if (leaseSeconds !== undefined) addLeaseTimes(reply, leaseSeconds);
    const hostname = yiaddr ? scoped.pool.byIp(yiaddr)?.hostname : undefined;
    if (hostname) reply.options.set(Opt.HostName, str(hostname));
    const d = opts.decide(client);
    let boot = "";
    if (d.action === "boot") {
      addBootFields(reply, req, d, { serverIp: opts.serverIp, proxy: false });
      boot = `, boot ${d.file}`;
    }
    opts.extend?.(req, reply, client);
    echoRelayInfo(req, reply);
    return { packet: reply, note: `${messageTypeName(type)} ${formatIPv4(yiaddr)}${boot}${note}`, decision: d };
  };
  const nak = (req: DhcpPacket, why: string): Outcome => {
    const reply = baseReply(req, MessageType.Nak, opts.serverIp);
    reply.options.set(Opt.Message, str(why));
    echoRelayInfo(req, reply);
    return { answers: [{ packet: reply, note: `NAK (${why})` }] };
  };

  return {
    name: "DHCP server",
    protocol: "dhcp",
    handle(req) {
      if (req.viaPxePort) return undefined;
      const p = req.packet;
      const type = optU8(p, Opt.MessageType);
      const mac = clientMac(p);
      const scoped = opts.poolFor(p);
      if (!scoped) return { ignore: p.giaddr ? `no pool for relay ${formatIPv4(p.giaddr)}` : "no pool for this link" };
      const { pool } = scoped;
      const serverId = optIp(p, Opt.ServerIdentifier);
      const requested = optIp(p, Opt.RequestedAddress);
      const hostname = optString(p, Opt.HostName);
      const leaseSeconds = pool.config.leaseSeconds;

      switch (type) {
        case MessageType.Discover: {
          const lease = pool.offer(mac, requested, hostname);
          if (!lease) return { ignore: "address pool exhausted" };
          return { answers: [answer(p, MessageType.Offer, scoped, lease.ip, req.client, leaseSeconds)], mac };
        }
        case MessageType.Request: {
          if (serverId !== undefined && serverId !== opts.serverIp) {
            // SELECTING, and the client chose another server's offer (RFC 2131 §4.3.2).
            pool.forgetOffer(mac);
            return { ignore: `chose server ${formatIPv4(serverId)}` };
          }
          // SELECTING/INIT-REBOOT name the address in option 50; RENEWING/REBINDING in ciaddr.
          const ip = requested ?? p.ciaddr;
          if (!ip) return nak(p, "no address requested");
          if (!pool.inSubnet(ip)) return nak(p, `${formatIPv4(ip)} is not on this network`);
          const bound = pool.request(mac, ip, hostname);
          if (!bound.ok) {
            // INIT-REBOOT/RENEW for an address we never gave: on a link we own, tell the client to start over.
            return nak(p, bound.reason);
          }
          opts.onBound?.(mac, ip);
          const state = serverId !== undefined ? "" : p.ciaddr ? " (renew)" : " (init-reboot)";
          return { answers: [answer(p, MessageType.Ack, scoped, ip, req.client, leaseSeconds, state)], mac, durable: true };
        }
        case MessageType.Release:
          pool.release(mac, p.ciaddr);
          return { answers: [], mac };
        case MessageType.Decline:
          if (requested !== undefined) pool.decline(mac, requested);
          return { answers: [], mac };
        case MessageType.Inform: {
          // RFC 2131 §3.4: configuration only, no address, no lease time.
          const a = answer(p, MessageType.Ack, scoped, 0, req.client, undefined, ` (inform from ${formatIPv4(p.ciaddr)})`);
          a.packet.ciaddr = p.ciaddr;
          return { answers: [a], mac };
        }
        default:
          return { ignore: `${messageTypeName(type)} is not for a server` };
      }
    },
  };
}

function networkOptions(reply: DhcpPacket, net: NetworkOptions, req: DhcpPacket): void {
  reply.options.set(Opt.SubnetMask, ipv4ToBytes(net.subnet.mask));
  const router = net.router ?? (req.giaddr || undefined);
  if (router) reply.options.set(Opt.Router, ips(router));
  if (net.dns.length) reply.options.set(Opt.DomainServer, ips(...net.dns));
  if (net.domain) reply.options.set(Opt.DomainName, str(net.domain));
  reply.options.set(Opt.BroadcastAddress, ipv4ToBytes(net.subnet.broadcast));
}

/**
 * Who answers, in order, for the mode this run is in: BSDP first (handed in: this folder never imports
 * bsdp/), then the full server when this instance owns the link's pools, then proxyDHCP (port 4011, and
 * DISCOVERs beside another server).
 */
export function respondersFor(o: { mode: "server" | "proxy" | "off" | "auto"; serverIp: number; decide: Decide; pools: { poolFor(giaddr: number): ScopedPool | undefined } | undefined; bsdp?: { responder: Responder; extension: ServerResponderOptions["extend"] } | undefined; onBound?: ServerResponderOptions["onBound"] }): Responder[] {
  const out: Responder[] = [];
  if (o.bsdp) out.push(o.bsdp.responder);
  const pools = o.pools;
  if (pools) out.push(serverResponder({ serverIp: o.serverIp, poolFor: (p) => pools.poolFor(p.giaddr), decide: o.decide, onBound: o.onBound, extend: o.bsdp?.extension }));
  if (o.mode !== "off") out.push(proxyResponder({ serverIp: o.serverIp, decide: o.decide }));
  return out;
}
