/** Stable, readable text for a DHCP packet: golden files, `-v` logs and the tests. */
import { toHex } from "../wire/bytes.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import { FLAG_BROADCAST, Opt, messageTypeName } from "./constants.ts";
import { clientMac, optU8, type DhcpPacket } from "./packet.ts";

const names: Record<number, string> = Object.fromEntries(Object.entries(Opt).map(([k, v]) => [v, k]));
const textual = new Set<number>([Opt.HostName, Opt.DomainName, Opt.Message, Opt.VendorClass, Opt.TftpServerName, Opt.BootfileName]);
const addresses = new Set<number>([Opt.SubnetMask, Opt.Router, Opt.DomainServer, Opt.BroadcastAddress, Opt.RequestedAddress, Opt.ServerIdentifier]);

export function formatDhcpPacket(p: DhcpPacket): string {
  const lines = [
    `${messageTypeName(optU8(p, Opt.MessageType))} op=${p.op} xid=0x${p.xid.toString(16).padStart(8, "0")} secs=${p.secs} flags=${p.flags & FLAG_BROADCAST ? "broadcast" : "unicast"} hops=${p.hops}`,
    `  mac=${clientMac(p)} ciaddr=${formatIPv4(p.ciaddr)} yiaddr=${formatIPv4(p.yiaddr)} siaddr=${formatIPv4(p.siaddr)} giaddr=${formatIPv4(p.giaddr)}`,
  ];
  if (p.sname) lines.push(`  sname=${JSON.stringify(p.sname)}`);
  if (p.file) lines.push(`  file=${JSON.stringify(p.file)}`);
  for (const [code, v] of p.options) lines.push(`  ${String(code).padStart(3)} ${(names[code] ?? "?").padEnd(20)} ${formatValue(code, v)}`);
  return lines.join("\n") + "\n";
}

export function formatValue(code: number, v: Uint8Array): string {
  if (textual.has(code)) return JSON.stringify(new TextDecoder().decode(v));
  if (addresses.has(code) && v.length % 4 === 0 && v.length > 0) {
    const out: string[] = [];
    for (let i = 0; i < v.length; i += 4) out.push(formatIPv4(((v[i]! << 24) | (v[i + 1]! << 16) | (v[i + 2]! << 8) | v[i + 3]!) >>> 0));
    return out.join(",");
  }
  if ((code === Opt.LeaseTime || code === Opt.RenewalTime || code === Opt.RebindingTime) && v.length === 4) {
    return String(((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0);
  }
  if (code === Opt.MessageType && v.length === 1) return messageTypeName(v[0]);
  if (code === Opt.ClientArch && v.length % 2 === 0) {
    const out: number[] = [];
    for (let i = 0; i < v.length; i += 2) out.push((v[i]! << 8) | v[i + 1]!);
    return out.join(",");
  }
  if (code === Opt.ParameterRequestList) return Array.from(v).join(",");
  return toHex(v, " ");
}
