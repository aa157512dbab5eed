/**
 * DHCP packet codec (RFC 2131 §2, RFC 2132): BOOTP header, magic cookie, options. Options that appear more
 * than once are joined (RFC 3396), overloaded file/sname fields are read (option 52), long options are
 * split on output. Pure: bytes in, typed packet out, and back.
 */
import { PacketError } from "../errors.ts";
import { ByteReader, ByteWriter, bytesEqual, cString } from "../wire/bytes.ts";
import { ipv4FromBytes, ipv4ToBytes } from "../wire/ipv4.ts";
import { macFromBytes, type Mac } from "../wire/mac.ts";
import { BOOTP_HEADER, MAGIC_COOKIE, MIN_PACKET, Opt } from "./constants.ts";

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  /** Transaction id, as the client chose it. */
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  /** Relay agent address (RFC 1542); 0 when the client is on our link. */
  giaddr: number;
  /** Client hardware address field, all 16 bytes. */
  chaddr: Uint8Array;
  /** Server host name field (64 bytes, NUL-terminated text). */
  sname: string;
  /** Boot file name field (128 bytes, NUL-terminated text). */
  file: string;
  /** Options in the order they appeared (joined when repeated, RFC 3396). */
  options: Map<number, Uint8Array>;
}

const enc = new TextEncoder();

export function decodeDhcpPacket(bytes: Uint8Array): DhcpPacket {
  // 236 bytes of BOOTP header and 4 bytes of magic cookie: the smallest DHCP message (RFC 2131 §3).
  if (bytes.length < BOOTP_HEADER + 4) {
    throw new PacketError("E_DHCP_SHORT", `dhcp packet of ${bytes.length} bytes, need at least ${BOOTP_HEADER + 4}`);
  }
  const r = new ByteReader(bytes, "dhcp packet");
  const p = {
    op: r.u8(),
    htype: r.u8(),
    hlen: r.u8(),
    hops: r.u8(),
    xid: r.u32(),
    secs: r.u16(),
    flags: r.u16(),
    ciaddr: r.u32(),
    yiaddr: r.u32(),
    siaddr: r.u32(),
    giaddr: r.u32(),
    chaddr: r.take(16, "chaddr").slice(),
  };
  const snameField = r.take(64, "sname");
  const fileField = r.take(128, "file");
  if (!bytesEqual(r.take(4, "magic cookie"), MAGIC_COOKIE)) throw new PacketError("E_DHCP_COOKIE", "no DHCP magic cookie (plain BOOTP?)");
  if (p.hlen > 16) throw new PacketError("E_DHCP_HLEN", `hardware address length ${p.hlen} > 16`);

  const options = new Map<number, Uint8Array>();
  const parts = new Map<number, Uint8Array[]>();
  parseOptions(r.rest(), parts, "options");
  // RFC 2131 §4.1: with option 52, the file and/or sname fields hold more options (file first).
  const overload = parts.get(Opt.Overload)?.[0]?.[0] ?? 0;
  if (overload & 1) parseOptions(fileField, parts, "file field");
  if (overload & 2) parseOptions(snameField, parts, "sname field");
  for (const [code, chunks] of parts) options.set(code, chunks.length === 1 ? chunks[0]! : concat(chunks));

  return {
    ...p,
    sname: overload & 2 ? "" : cString(snameField),
    file: overload & 1 ? "" : cString(fileField),
    options,
  };
}

/**
 * Encodes a packet. Options longer than 255 bytes are split into several instances (RFC 3396); option 53
 * goes first (some ROMs look only there); the packet is padded to 300 bytes (BOOTP minimum).
 */
export function encodeDhcpPacket(p: DhcpPacket): Uint8Array {
  const w = new ByteWriter(576);
  w.u8(p.op).u8(p.htype).u8(p.hlen).u8(p.hops).u32(p.xid).u16(p.secs).u16(p.flags);
  w.u32(p.ciaddr).u32(p.yiaddr).u32(p.siaddr).u32(p.giaddr);
  w.fixed(p.chaddr, 16);
  w.fixed(enc.encode(p.sname), 64);
  w.fixed(enc.encode(p.file), 128);
  w.bytes(MAGIC_COOKIE);
  const ordered = [...p.options].sort(([a], [b]) => (a === Opt.MessageType ? -1 : b === Opt.MessageType ? 1 : 0));
  for (const [code, value] of ordered) {
    // We never overload file/sname on output, so a decoded option 52 is not carried over.
    if (code === Opt.Pad || code === Opt.End || code === Opt.Overload) continue;
    if (value.length === 0) {
      w.u8(code).u8(0);
      continue;
    }
    for (const chunk of code === Opt.VendorSpecific ? splitEncapsulated(value) : splitRaw(value)) w.u8(code).u8(chunk.length).bytes(chunk);
  }
  w.u8(Opt.End);
  if (w.length < MIN_PACKET) w.zeros(MIN_PACKET - w.length);
  return w.finish();
}

/** A blank packet with every field zero, for builders. */
export function emptyPacket(): DhcpPacket {
  return { op: 0, htype: 1, hlen: 6, hops: 0, xid: 0, secs: 0, flags: 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: new Uint8Array(16), sname: "", file: "", options: new Map() };
}

// --- typed option access ---

export function optU8(p: DhcpPacket, code: number): number | undefined {
  const v = p.options.get(code);
  return v && v.length >= 1 ? v[0] : undefined;
}

export function optU16(p: DhcpPacket, code: number): number | undefined {
  const v = p.options.get(code);
  return v && v.length >= 2 ? (v[0]! << 8) | v[1]! : undefined;
}

export function optU32(p: DhcpPacket, code: number): number | undefined {
  const v = p.options.get(code);
  return v && v.length >= 4 ? ipv4FromBytes(v) : undefined;
}

export function optIp(p: DhcpPacket, code: number): number | undefined {
  return optU32(p, code);
}

export function optString(p: DhcpPacket, code: number): string | undefined {
  const v = p.options.get(code);
  return v ? new TextDecoder().decode(v).replace(/\0+$/, "") : undefined;
}

export function u8(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff);
}

export function u16(v: number): Uint8Array {
  return Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
}

export function u32(v: number): Uint8Array {
  return ipv4ToBytes(v >>> 0);
}

export function ips(...addresses: number[]): Uint8Array {
  return concat(addresses.map(ipv4ToBytes));
}

export function str(s: string): Uint8Array {
  return enc.encode(s);
}

/** The client's MAC: the first hlen bytes of chaddr (Ethernet: 6). */
export function clientMac(p: DhcpPacket): Mac {
  return macFromBytes(p.chaddr.subarray(0, 6));
}

// --- internal ---

function parseOptions(area: Uint8Array, into: Map<number, Uint8Array[]>, where: string): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === Opt.Pad) {
      i++;
      continue;
    }
    if (code === Opt.End) return;
    if (i + 1 >= area.length) throw new PacketError("E_DHCP_OPTION", `${where}: option ${code} has no length byte`);
    const len = area[i + 1]!;
    if (i + 2 + len > area.length) {
      throw new PacketError("E_DHCP_OPTION", `${where}: option ${code} claims ${len} bytes, only ${area.length - i - 2} left`);
    }
    const list = into.get(code);
    const value = area.slice(i + 2, i + 2 + len);
    if (list) list.push(value);
    else into.set(code, [value]);
    i += 2 + len;
  }
  // A missing End option is tolerated: several PXE ROMs end the options with padding only.
}

function splitRaw(value: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < value.length; at += 255) out.push(value.subarray(at, at + 255));
  return out;
}

/**
 * Option 43 holds sub-options (RFC 2132 §8.4): when it needs several instances, cut between sub-options,
 * so that a client that reads each instance on its own (Mac firmware, BSDP) still sees whole ones.
 */
function splitEncapsulated(value: Uint8Array): Uint8Array[] {
  if (value.length <= 255) return [value];
  const out: Uint8Array[] = [];
  let start = 0;
  let i = 0;
  while (i < value.length) {
    const tag = value[i]!;
    const size = tag === 0 || tag === 255 ? 1 : 2 + (value[i + 1] ?? 0);
    if (size > 255) return splitRaw(value); // not a sub-option stream we can honour
    if (i + size - start > 255) {
      out.push(value.subarray(start, i));
      start = i;
    }
    i += size;
  }
  out.push(value.subarray(start));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
