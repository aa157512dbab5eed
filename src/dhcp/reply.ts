/** Reply builders: the header rules of RFC 2131 §4.3.1 (Table 3) and the PXE/UEFI boot fields. Pure. */
import type { BootDecision } from "../boot/types.ts";
import { formatIPv4, ipv4ToBytes } from "../wire/ipv4.ts";
import { IPXE_NO_PXEDHCP, Op, Opt } from "./constants.ts";
import { emptyPacket, str, u8, u32, type DhcpPacket } from "./packet.ts";

/**
 * A reply with the fields every answer copies from the request (htype, hlen, xid, flags, giaddr, chaddr),
 * message type and server identifier, and the relay agent information echoed back (RFC 3046 §2.2).
 */
export function baseReply(req: DhcpPacket, type: number, serverIp: number): DhcpPacket {
  const p = emptyPacket();
  p.op = Op.Reply;
  p.htype = req.htype;
  p.hlen = req.hlen;
  p.xid = req.xid;
  p.flags = req.flags;
  p.giaddr = req.giaddr;
  p.chaddr = req.chaddr.slice();
  p.options.set(Opt.MessageType, u8(type));
  p.options.set(Opt.ServerIdentifier, ipv4ToBytes(serverIp));
  return p;
}

/** Option 82 goes back last, as received (RFC 3046 §2.2). Call after every other option is set. */
export function echoRelayInfo(req: DhcpPacket, reply: DhcpPacket): void {
  const agent = req.options.get(Opt.RelayAgentInfo);
  if (agent) reply.options.set(Opt.RelayAgentInfo, agent);
}

export interface BootFieldsOptions {
  serverIp: number;
  /** proxyDHCP answers carry the client's GUID back and, for BIOS/iPXE, PXE option 43. */
  proxy: boolean;
}

/**
 * Puts a boot decision into a reply: siaddr and sname (the TFTP server), file (path or URL), option 60
 * ("PXEClient" or "HTTPClient": UEFI HTTP boot ignores offers without "HTTPClient"), options 66/67 when the
 * client asked for them, and for iPXE in a full-DHCP answer option 175.176 = 1 ("no-pxedhcp"), so iPXE does
 * not wait 3 s for ProxyDHCP offers that will never come.
 */
export function addBootFields(reply: DhcpPacket, req: DhcpPacket, d: Extract<BootDecision, { action: "boot" }>, opts: BootFieldsOptions): void {
  const server = formatIPv4(opts.serverIp);
  reply.siaddr = opts.serverIp;
  reply.sname = server;
  reply.file = d.file;
  reply.options.set(Opt.VendorClass, str(d.vendorClass));
  const prl = req.options.get(Opt.ParameterRequestList) ?? new Uint8Array(0);
  if (prl.includes(Opt.TftpServerName)) reply.options.set(Opt.TftpServerName, str(server));
  if (prl.includes(Opt.BootfileName)) reply.options.set(Opt.BootfileName, str(d.file));
  if (opts.proxy) {
    const uuid = req.options.get(Opt.ClientUuid);
    if (uuid) reply.options.set(Opt.ClientUuid, uuid);
    // PXE 2.1 option 43, sub-option 6 (discovery control) = 8: skip boot server discovery, use the file.
    // UEFI clients get no option 43: some firmwares ignore a ProxyDHCP offer that carries one and come
    // back on port 4011 instead (pixiecore's finding), which is answered too.
    if (d.firmware === "bios" || d.firmware === "ipxe") reply.options.set(Opt.VendorSpecific, Uint8Array.of(6, 1, 8, 255));
  } else if (d.firmware === "ipxe") {
    reply.options.set(Opt.Ipxe, Uint8Array.of(IPXE_NO_PXEDHCP, 1, 1));
  }
}

/** Lease timing options: lease time, T1 = 50%, T2 = 87.5% (RFC 2131 §4.4.5). */
export function addLeaseTimes(reply: DhcpPacket, seconds: number): void {
  reply.options.set(Opt.LeaseTime, u32(seconds));
  reply.options.set(Opt.RenewalTime, u32(Math.floor(seconds / 2)));
  reply.options.set(Opt.RebindingTime, u32(Math.floor((seconds * 7) / 8)));
}
