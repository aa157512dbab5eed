/**
 * The DHCP side of a simulated client: the packets each firmware sends (built with our own codec, in the
 * shape captured from OVMF, SeaBIOS's iPXE ROM, iPXE and an Intel Mac), and a socket on port 68 of one
 * link that broadcasts them and collects every answer with the same transaction id.
 */
import { encodeBsdpOptions, decodeBsdpOptions, type BsdpOptions } from "../bsdp/options.ts";
import { BSDP_VERSION_1_1, BsdpMessage } from "../bsdp/constants.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, FLAG_BROADCAST, MessageType, Op, Opt, messageTypeName } from "../dhcp/constants.ts";
export { MessageType };
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, ips, optIp, optString, optU8, str, u16, u8, type DhcpPacket } from "../dhcp/packet.ts";
import { PortError, ServiceError } from "../errors.ts";
import { bindSocketToDevice } from "../net/device.ts";
import { openUdp, type UdpSocket } from "../net/udp.ts";
import { formatIPv4, parseIPv4 } from "../wire/ipv4.ts";
import { macToBytes, type Mac } from "../wire/mac.ts";

export type SimArch = "bios" | "uefi" | "uefi-http" | "mac";
export const SIM_ARCHES: readonly SimArch[] = ["bios", "uefi", "uefi-http", "mac"];

/** Who is asking: the firmware itself, iPXE after it was loaded, or the ESXi installer once it runs. */
export type Asker = "firmware" | "ipxe" | "installer";

/** A Mac's model in option 60, as the fixtures' iMac sends it. */
export const MAC_MODEL = "AAPLBSDPC/i386/iMac14,3";

const ARCH_CODE: Record<Exclude<SimArch, "mac">, number> = { bios: 0, uefi: 7, "uefi-http": 16 };

export interface Answer {
  /** Source of the datagram. */
  from: string;
  packet: DhcpPacket;
  type: string;
  /** Option 54, else the source. */
  server: string;
  /** yiaddr, when it is an address offered. */
  address: string | undefined;
  /** Option 67 or the file field. */
  bootFile: string | undefined;
  /** siaddr, option 66: where the boot file is fetched by TFTP. */
  nextServer: string | undefined;
}

export function describeAnswer(a: Answer): string {
  const parts = [`${a.type} from ${a.server}`];
  if (a.address) parts.push(`address ${a.address}`);
  if (a.bootFile) parts.push(`boot ${a.bootFile}${a.nextServer && !a.bootFile.includes("://") ? ` from ${a.nextServer}` : ""}`);
  const vc = optString(a.packet, Opt.VendorClass);
  if (vc && !a.address && a.type === "OFFER") parts.push(`(${vc.split(":")[0]}, no address: proxyDHCP)`);
  return parts.join(", ");
}

export function readAnswer(packet: DhcpPacket, from: string): Answer {
  const server = optIp(packet, Opt.ServerIdentifier);
  const next = optString(packet, Opt.TftpServerName) ?? (packet.siaddr ? formatIPv4(packet.siaddr) : undefined);
  return {
    from,
    packet,
    type: messageTypeName(optU8(packet, Opt.MessageType)),
    server: server !== undefined ? formatIPv4(server) : from,
    address: packet.yiaddr ? formatIPv4(packet.yiaddr) : undefined,
    bootFile: optString(packet, Opt.BootfileName) ?? (packet.file || undefined),
    nextServer: next,
  };
}

/** The DISCOVER (or REQUEST) a client of this kind sends. */
export function clientPacket(opts: { arch: SimArch; asker: Asker; mac: Mac; xid: number; type: number; requested?: string; serverId?: string; uuid?: Uint8Array }): DhcpPacket {
  const p = emptyPacket();
  p.op = Op.Request;
  p.xid = opts.xid;
  p.flags = FLAG_BROADCAST;
  p.chaddr.set(macToBytes(opts.mac));
  p.options.set(Opt.MessageType, u8(opts.type));
  p.options.set(Opt.MaxMessageSize, u16(1472));
  if (opts.requested) p.options.set(Opt.RequestedAddress, ips(parseIPv4(opts.requested)));
  if (opts.serverId) p.options.set(Opt.ServerIdentifier, ips(parseIPv4(opts.serverId)));
  if (opts.asker === "installer") {
    // The installed system's DHCP client: no PXE marks at all.
    p.options.set(Opt.ParameterRequestList, Uint8Array.of(1, 3, 6, 12, 15, 28, 42));
    return p;
  }
  // iPXE on a Mac is iPXE for x86-64 UEFI: only the firmware speaks as a Mac.
  const arch = opts.arch === "mac" && opts.asker === "ipxe" ? "uefi" : opts.arch;
  if (arch === "mac") {
    p.options.set(Opt.VendorClass, str(MAC_MODEL));
    p.options.set(Opt.ParameterRequestList, Uint8Array.of(1, 3, 17, 43, 60));
    return p;
  }
  const code = ARCH_CODE[arch];
  const kind = arch === "uefi-http" ? "HTTPClient" : "PXEClient";
  const undi = opts.asker === "ipxe" ? "003010" : arch === "bios" ? "002001" : "003016";
  p.options.set(Opt.VendorClass, str(`${kind}:Arch:${String(code).padStart(5, "0")}:UNDI:${undi}`));
  p.options.set(Opt.ClientArch, u16(code));
  p.options.set(Opt.ClientNdi, Uint8Array.of(1, 3, arch === "bios" ? 0 : 16));
  p.options.set(Opt.ClientUuid, Uint8Array.of(0, ...(opts.uuid ?? uuidFor(opts.mac))));
  p.options.set(Opt.ParameterRequestList, Uint8Array.of(1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135, 175));
  if (opts.asker === "ipxe") {
    // iPXE marks itself with user class "iPXE" and its encapsulated options (175): the server then
    // hands it the script instead of iPXE again.
    p.options.set(Opt.UserClass, str("iPXE"));
    p.options.set(Opt.Ipxe, Uint8Array.of(0xb1, 1, 1, 0x13, 1, 1, 0x15, 1, 1));
  }
  return p;
}

/** An INFORM[LIST] or INFORM[SELECT], as an Intel Mac sends them once it has an address. */
export function bsdpInform(opts: { mac: Mac; xid: number; ciaddr: string; message: "list" | "select"; serverId?: string; image?: number }): DhcpPacket {
  const p = emptyPacket();
  p.op = Op.Request;
  p.xid = opts.xid;
  p.ciaddr = parseIPv4(opts.ciaddr);
  p.chaddr.set(macToBytes(opts.mac));
  p.options.set(Opt.MessageType, u8(MessageType.Inform));
  p.options.set(Opt.ParameterRequestList, Uint8Array.of(1, 3, 17, 43, 60));
  p.options.set(Opt.MaxMessageSize, u16(1500));
  p.options.set(Opt.VendorClass, str(MAC_MODEL));
  const o: BsdpOptions = { messageType: opts.message === "list" ? BsdpMessage.List : BsdpMessage.Select, version: BSDP_VERSION_1_1, replyPort: DHCP_CLIENT_PORT, maxMessageSize: 1500 };
  if (opts.message === "select") {
    o.serverIdentifier = parseIPv4(opts.serverId!);
    o.selectedImage = opts.image;
  }
  p.options.set(Opt.VendorSpecific, encodeBsdpOptions(o));
  return p;
}

export function bsdpOf(p: DhcpPacket): BsdpOptions | undefined {
  const v = p.options.get(Opt.VendorSpecific);
  if (!v) return undefined;
  try {
    return decodeBsdpOptions(v);
  } catch {
    return undefined;
  }
}

/** Port 68 on one link: broadcasts a packet and gathers the answers to its transaction. */
export class DhcpLink {
  readonly #sock: UdpSocket;
  #waiting: { xid: number; answers: Answer[]; wake: () => void } | undefined;

  private constructor(sock: UdpSocket) {
    this.#sock = sock;
  }

  static async open(iface: string, opts: { port?: number; serverPort?: number } = {}): Promise<DhcpLink> {
    const box: { link?: DhcpLink } = {};
    let sock: UdpSocket;
    try {
      sock = await openUdp({
        address: "0.0.0.0",
        port: opts.port ?? DHCP_CLIENT_PORT,
        service: "DHCP client",
        onMessage: (data, address) => box.link?.receive(data, address),
      });
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      if (err instanceof PortError && err.why === "in-use") {
        throw new ServiceError("E_SIM_PORT", `port 68 is taken: a DHCP client (dhclient, NetworkManager, systemd-networkd) runs on this machine`, `run simulate on an interface no DHCP client manages, or from a network namespace (ip netns exec …)`);
      }
      if (err instanceof PortError && err.why === "denied") throw new ServiceError("E_SIM_ROOT", "a DHCP client needs port 68", "run simulate with sudo");
      throw new ServiceError("E_SIM_DHCP", `cannot open the DHCP client socket: ${(err as Error).message}${code ? ` (${code})` : ""}`);
    }
    const link = new DhcpLink(sock);
    box.link = link;
    const b = await bindSocketToDevice(sock.fd, iface);
    if (!b.ok && process.platform === "linux") {
      sock.close();
      throw new ServiceError("E_SIM_IFACE", `cannot tie the DHCP client to ${iface}: ${b.why}`, "run the Bun build (dist/netboot-*), as root");
    }
    sock.setBroadcast(true);
    link.serverPort = opts.serverPort ?? DHCP_SERVER_PORT;
    return link;
  }

  serverPort = DHCP_SERVER_PORT;

  /**
   * Sends `packet` (to the broadcast address, or `to`) and gathers answers for `waitMs`, resending once a
   * second as firmware does; `enough` ends the wait early.
   */
  async ask(packet: DhcpPacket, opts: { waitMs: number; to?: string; enough?: (answers: Answer[]) => boolean }): Promise<Answer[]> {
    const answers: Answer[] = [];
    const bytes = encodeDhcpPacket(packet);
    const deadline = Date.now() + opts.waitMs;
    let wake = () => {};
    this.#waiting = { xid: packet.xid, answers, wake: () => wake() };
    try {
      while (Date.now() < deadline) {
        this.#sock.send(bytes, this.serverPort, opts.to ?? "255.255.255.255");
        const until = Math.min(deadline, Date.now() + 1000);
        while (Date.now() < until) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, Math.max(0, until - Date.now()));
          });
          if (answers.length && opts.enough?.(answers)) return answers;
        }
        if (answers.length && !opts.enough) return answers;
      }
      return answers;
    } finally {
      this.#waiting = undefined;
    }
  }

  close(): void {
    this.#sock.close();
  }

  /** A datagram on port 68 (the socket's handler). */
  receive(data: Uint8Array, address: string): void {
    const w = this.#waiting;
    if (!w) return;
    let p: DhcpPacket;
    try {
      p = decodeDhcpPacket(data);
    } catch {
      return;
    }
    if (p.op !== Op.Reply || p.xid !== w.xid) return;
    w.answers.push(readAnswer(p, address));
    w.wake();
  }
}

export function newXid(): number {
  return (Math.random() * 0xffffffff) >>> 0;
}

/** A stable UUID per MAC (RFC 4578 option 97), as a machine keeps its own. */
function uuidFor(mac: Mac): Uint8Array {
  const m = macToBytes(mac);
  return Uint8Array.of(0x4e, 0x42, 0x53, 0x49, 0x4d, 0x00, 0x00, 0x01, 0x80, 0x00, ...m);
}

