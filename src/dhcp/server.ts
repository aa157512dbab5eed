/**
 * DHCP edge: UDP 67 (and the PXE boot-server port 4011), bound to one interface, decoding requests, asking
 * the responders in order, sending their answers. Malformed packets are dropped and the loop goes on. Each
 * request and what became of it goes on the bus (dhcp.request, or bsdp.request for the BSDP responder's),
 * typed here from the packets: the answer's message type, the boot file, what the policy said.
 */
import { firmwareOf } from "../boot/policy.ts";
import type { BootClient } from "../boot/types.ts";
import { bindFailure, PortError, ServiceError } from "../errors.ts";
import type { DhcpAnswerType, EventInput, EventSink } from "../events.ts";
import type { Mac } from "../wire/mac.ts";
import { ThrottledNotice, type Logger } from "../log.ts";
import { bindSocketToDevice, growReceiveBuffer } from "../net/device.ts";
import { openUdp, type UdpSocket } from "../net/udp.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import { bootClientFromDhcp } from "./client.ts";
import { broadcastError } from "./probe.ts";
import { DHCP_SERVER_PORT, MessageType, Op, Opt, PXE_PORT, messageTypeName } from "./constants.ts";
import { clientMac, decodeDhcpPacket, encodeDhcpPacket, optString, optU8, type DhcpPacket } from "./packet.ts";
import { DHCP_RATE, RateLimiter, type RateLimitOptions } from "./rate.ts";
import type { DhcpAnswer, DhcpRequest, Responder } from "./responders.ts";
import { replyDestination } from "./transmit.ts";
import { LIMITS, type TransmitOptions } from "../config.ts";
import type { BootDecision } from "../boot/types.ts";

export interface DhcpServerOptions {
  /** Who answers, in order; without them the sockets are bound and requests wait for `serve` (queued, bounded). */
  responders?: readonly Responder[] | undefined;
  /** Interface to serve (and to bind the sockets to); undefined only in tests on loopback. */
  iface: string | undefined;
  /** Address the sockets listen on: 0.0.0.0 to hear broadcasts. */
  host?: string;
  serverPort?: number;
  /** PXE boot-server port (4011); 0 for any (tests), null to leave it closed. */
  pxePort?: number | null;
  log: Logger;
  runtime?: "bun" | "node";
  transmit?: TransmitOptions;
  /** Where every request and what became of it goes (dhcp.request, bsdp.request). */
  events?: EventSink | undefined;
  /** A client's address as its own packets show it (not through a relay): the neighbour table learns it. */
  learn?: ((address: string, mac: Mac) => void) | undefined;
  /**
   * How the sockets keep to --iface: "bound" binds them to it (SO_BINDTODEVICE on Linux, IP_BOUND_IF on
   * macOS, which restricts only sending there); "filtered" asks every datagram's receiving interface and
   * drops the others (net/iface-udp.ts). Default: filtered on macOS under Bun, bound elsewhere;
   * NETBOOT_DHCP_RECEIVE=filtered|bound overrides (the tests run the filtered path on Linux).
   */
  receive?: "bound" | "filtered";
  /** When the interface filter cannot be set up: go on without it (true), or refuse to start. */
  allowUnfiltered?: boolean;
  /**
   * Makes what the responders recorded durable (the lease journal's fsync); answers that promise a lease
   * (an ACK) wait for it, so a crash after the answer cannot lose the lease. Calls in one turn share one sync.
   */
  commit?: () => Promise<void>;
  /** Answers per MAC (default DHCP_RATE: a burst of 20, then 5 a second); requests past it are dropped. */
  rate?: RateLimitOptions;
}

export interface DhcpExchange {
  mac: string;
  type: string;
  /** The request (its ciaddr, giaddr). */
  packet: DhcpPacket;
  /** The source address and port it came from (a relay's, when relayed). */
  from: { address: string; port: number };
  /** Asked on the PXE boot-server port (4011). */
  viaPxePort: boolean;
  /** The client as the boot policy sees it. */
  client: BootClient;
  responder: Responder | undefined;
  answers: Array<DhcpAnswer & { to: string }>;
  ignored: string | undefined;
  /** What the policy said, when the responder asked it and did not answer. */
  decision: BootDecision | undefined;
}

export interface DhcpServerHandle {
  readonly port: number;
  readonly pxePort: number | undefined;
  /** How the sockets are tied to the interface ("SO_BINDTODEVICE"), or why they are not. */
  readonly binding: string;
  /** Starts answering (when bound without responders): what arrived meanwhile is answered now, in order. */
  serve(responders: readonly Responder[], commit?: () => Promise<void>): void;
  close(): Promise<void>;
}

export async function startDhcpServer(opts: DhcpServerOptions): Promise<DhcpServerHandle> {
  const host = opts.host ?? "0.0.0.0";
  const sockets: UdpSocket[] = [];
  const bindings: string[] = [];

  const forced = process.env.NETBOOT_DHCP_RECEIVE;
  const receive = opts.receive ?? (forced === "filtered" || forced === "bound" ? forced : process.platform === "darwin" && typeof Bun !== "undefined" ? "filtered" : "bound");
  const open = async (port: number, viaPxePort: boolean) => {
    let sock: UdpSocket | undefined = undefined;
    if (opts.iface && receive === "filtered") {
      try {
        const { openInterfaceUdp } = await import("../net/iface-udp.ts");
        sock = await openInterfaceUdp({ address: host, port, iface: opts.iface, log: opts.log, onMessage: (data, address, sport) => sock && handle(sock, data, address, sport, viaPxePort) });
        sock.setBroadcast(true);
        bindings.push(process.platform === "darwin" ? "IP_RECVIF filter, IP_BOUND_IF" : "IP_PKTINFO filter");
        sockets.push(sock);
        return sock;
      } catch (err) {
        if ((err as { errno?: number }).errno !== undefined && /bind/.test((err as Error).message)) throw udpBindError(err, port, viaPxePort);
        if (!opts.allowUnfiltered) {
          throw new ServiceError(
            "E_DHCP_IFACE_FILTER",
            `cannot keep DHCP to ${opts.iface}: ${(err as Error).message}; this machine has several interfaces and DHCP would answer all of them`,
            "pass --force if every link may be answered",
          );
        }
        opts.log.warn(`DHCP socket not filtered to ${opts.iface} (${(err as Error).message}); answering requests from every interface`);
      }
    }
    sock = await openUdp({
      address: host,
      port,
      service: "DHCP",
      portFlag: viaPxePort ? undefined : "--dhcp-port",
      runtime: opts.runtime,
      onMessage: (data, address, sport) => sock && handle(sock, data, address, sport, viaPxePort),
    });
    sock.setBroadcast(true);
    if (opts.iface) {
      const b = await bindSocketToDevice(sock.fd, opts.iface);
      bindings.push(b.ok ? b.how : `not bound (${b.why})`);
    }
    // Room for a rack's DISCOVERs at once (the default buffer dropped most of a 200-machine burst).
    const room = await growReceiveBuffer(sock.fd, LIMITS.listenReceiveBuffer);
    if (!room.ok) opts.log.debug(`DHCP receive buffer left as it is: ${room.why}`);
    sockets.push(sock);
    return sock;
  };

  let responders = opts.responders;
  let commit = opts.commit;
  const held: Array<() => void> = [];
  const rate = opts.rate ?? DHCP_RATE;
  const limiter = new RateLimiter(rate);
  const limited = new ThrottledNotice((line) => opts.log.warn(line));
  const handle = (sock: UdpSocket, data: Uint8Array, address: string, port: number, viaPxePort: boolean): void => {
    if (!responders) {
      if (held.length < LIMITS.heldBeforeReady) held.push(() => handle(sock, data, address, port, viaPxePort));
      return;
    }
    let packet: DhcpPacket;
    try {
      packet = decodeDhcpPacket(data);
    } catch (err) {
      opts.log.debug(`dropped malformed packet from ${address}:${port}: ${(err as Error).message}`);
      return;
    }
    if (packet.op !== Op.Request || packet.htype !== 1 || packet.hlen !== 6) return; // replies of other servers, non-Ethernet
    const mac = clientMac(packet);
    if (!limiter.take(mac)) {
      limited.note(mac, (n, macs) => `dropped ${n} request${n === 1 ? "" : "s"} from ${macs.size === 1 ? [...macs][0] : `${macs.size}${macs.size >= 1000 ? "+" : ""} MACs`} past the rate limit (${rate.burst} at once, ${rate.perSecond} a second per MAC)`);
      return;
    }
    const type = messageTypeName(optU8(packet, Opt.MessageType));
    const req: DhcpRequest = { packet, client: bootClientFromDhcp(packet), viaPxePort, source: { address, port } };
    const exchange: DhcpExchange = { mac, type, packet, from: { address, port }, viaPxePort, client: req.client, responder: undefined, answers: [], ignored: undefined, decision: undefined };
    // Its own packet from its own address (not a relay's, not 0.0.0.0): which MAC is behind that address.
    if (!packet.giaddr && address !== "0.0.0.0") opts.learn?.(address, mac as Mac);
    for (const r of responders) {
      let out;
      try {
        out = r.handle(req);
      } catch (err) {
        opts.log.warn(`${r.name} failed on ${type} from ${exchange.mac}: ${(err as Error).message}`);
        return;
      }
      if (out === undefined) continue;
      exchange.responder = r;
      if ("ignore" in out) {
        exchange.ignored = out.ignore;
        exchange.decision = out.decision;
        opts.log.debug(`${exchange.mac} ${type}${viaPxePort ? " (port 4011)" : ""}: ignored by ${r.name}: ${out.ignore}`);
        break;
      }
      if (out.durable && commit) {
        const answers = out.answers;
        commit().then(
          () => send(sock, req, exchange, answers),
          (err) => {
            opts.log.warn(`${exchange.mac} ${type}: not answered, the lease could not be written: ${(err as Error).message}`);
            report({ ...exchange, ignored: "lease not written" });
          },
        );
        return;
      }
      send(sock, req, exchange, out.answers);
      return;
    }
    if (!exchange.responder) opts.log.debug(`${exchange.mac} ${type}: no responder took it`);
    report(exchange);
  };

  const report = (e: DhcpExchange) => opts.events?.(exchangeEvent(e));

  const send = (sock: UdpSocket, req: DhcpRequest, exchange: DhcpExchange, answers: readonly DhcpAnswer[]) => {
    const { packet, viaPxePort } = req;
    for (const a of answers) {
      const to = replyDestination(packet, a.packet, req.source, viaPxePort, opts.transmit);
      if (a.clientPort !== undefined && !packet.giaddr && !viaPxePort) to.port = a.clientPort;
      try {
        sock.send(encodeDhcpPacket(a.packet), to.port, to.address);
      } catch (err) {
        const b = to.address === "255.255.255.255" ? broadcastError(err, opts.iface ?? "the link") : undefined;
        opts.log.warn(`could not send to ${to.address}:${to.port}: ${b ? `${b.message}; ${b.hint ?? ""}` : (err as Error).message}`);
        continue;
      }
      exchange.answers.push({ ...a, to: `${to.address}:${to.port}` });
      opts.log.info(`${exchange.mac} ${exchange.type}${viaPxePort ? " on port 4011" : ""}${packet.giaddr ? ` via relay ${formatIPv4(packet.giaddr)}` : ""} → ${a.note}`);
    }
    report(exchange);
  };

  const main = await open(opts.serverPort ?? DHCP_SERVER_PORT, false);
  let pxe: UdpSocket | undefined;
  if (opts.pxePort !== null) {
    try {
      pxe = await open(opts.pxePort ?? PXE_PORT, true);
    } catch (err) {
      for (const s of sockets) s.close();
      throw err;
    }
  }
  return {
    port: main.port,
    pxePort: pxe?.port,
    binding: opts.iface ? [...new Set(bindings)].join(", ") : "no interface (all)",
    serve(r, c) {
      responders = r;
      commit = c;
      for (const h of held.splice(0)) h();
    },
    async close() {
      for (const s of sockets) s.close();
    },
  };
}

/**
 * A request and what became of it, as the bus carries it. The host's address is what its own packets show:
 * ciaddr, else the source of a packet that did not come through a relay (a relay's address is not the
 * host's), else the address our answer gives it.
 */
export function exchangeEvent(e: DhcpExchange): EventInput {
  const answer = e.answers[0];
  const relayed = e.packet.giaddr !== 0;
  const ip = e.packet.ciaddr ? formatIPv4(e.packet.ciaddr) : !relayed && e.from.address !== "0.0.0.0" ? e.from.address : answer?.packet.yiaddr ? formatIPv4(answer.packet.yiaddr) : undefined;
  const decision = answer?.decision ?? e.decision;
  const file = answer ? (optString(answer.packet, Opt.BootfileName) ?? (answer.packet.file || undefined)) : undefined;
  const mac = e.mac as Mac;
  if (e.responder?.protocol === "bsdp") return { type: "bsdp.request", mac, ip, message: e.type, answer: answer?.bsdp, file, ignored: e.ignored };
  return {
    type: "dhcp.request",
    mac,
    ip,
    message: e.type,
    port: e.viaPxePort ? 4011 : 67,
    relay: relayed ? formatIPv4(e.packet.giaddr) : undefined,
    answer: answer ? answerType(answer.packet) : undefined,
    file,
    ignored: e.ignored,
    firmware: decision?.firmware ?? firmwareOf(e.client),
    decision: decision?.action,
    declined: decision?.action === "ignore" ? decision.declined : undefined,
    reason: decision === undefined ? undefined : decision.action === "boot" ? decision.why : decision.reason,
  };
}

function answerType(p: DhcpPacket): DhcpAnswerType | undefined {
  const t = optU8(p, Opt.MessageType);
  return t === MessageType.Offer ? "OFFER" : t === MessageType.Ack ? "ACK" : t === MessageType.Nak ? "NAK" : undefined;
}

/** A port the filtered socket could not bind: the same words as for the plain socket. */
function udpBindError(err: unknown, port: number, viaPxePort: boolean): ServiceError {
  const why = bindFailure(err);
  const flag = viaPxePort ? "" : " (or --dhcp-port N)";
  if (why === "in-use") return new PortError("in-use", "E_DHCP_PORT_IN_USE", `DHCP port ${port} is already in use`, `stop the other server${flag}${process.platform === "darwin" ? "; on macOS, Internet Sharing runs bootpd (System Settings > General > Sharing)" : ""}`);
  if (why === "denied") return new PortError("denied", "E_DHCP_PORT_DENIED", `no permission to use DHCP port ${port}`, `run with sudo${flag}`);
  return new ServiceError("E_DHCP_LISTEN", `cannot open DHCP socket on port ${port}: ${(err as Error).message}`);
}
