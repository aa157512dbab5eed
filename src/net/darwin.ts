/**
 * macOS's socket constants and the byte layouts of the structures netboot reads or writes there, in one
 * table, never mixed with Linux's (net/libc.ts): values from xnu bsd/sys/socket.h, bsd/netinet/in.h,
 * bsd/sys/errno.h, bsd/net/if_dl.h, bsd/net/route.h, bsd/sys/sysctl.h (64-bit darwin, x86_64 and arm64).
 * Pure: no FFI here, so Linux tests check every layout against bytes written from those headers.
 */

export const DARWIN = {
  AF_INET: 2,
  AF_LINK: 18,
  SOCK_DGRAM: 2,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x0004,
  SO_BROADCAST: 0x0020,
  SO_REUSEPORT: 0x0200,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  IPPROTO_IP: 0,
  /** in.h: "bool; receive reception if w/dgram" (a sockaddr_dl of the receiving interface). */
  IP_RECVIF: 20,
  /** in.h: "int; set/get bound interface". */
  IP_BOUND_IF: 25,
  MSG_DONTWAIT: 0x80,
  POLLIN: 0x0001,
  EAGAIN: 35,
  EINTR: 4,
  EMSGSIZE: 40,
  ENOBUFS: 55,
  EHOSTUNREACH: 65,
  EADDRINUSE: 48,
  EACCES: 13,
  CTL_NET: 4,
  PF_ROUTE: 17,
  NET_RT_FLAGS: 2,
  RTF_LLINFO: 0x400,
  RTA_DST: 0x1,
  RTA_GATEWAY: 0x2,
} as const;

/** struct msghdr on 64-bit darwin: name, namelen, iov, iovlen, control, controllen, flags. */
export const DARWIN_MSGHDR = { size: 48, name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 44 } as const;
/** struct cmsghdr: socklen_t cmsg_len, int cmsg_level, int cmsg_type; data aligned to 4 (__DARWIN_ALIGN32). */
export const DARWIN_CMSGHDR = { size: 12, align: 4 } as const;
/** struct rt_msghdr (route.h): 92 bytes, rtm_msglen at 0, rtm_addrs at 12. */
export const DARWIN_RT_MSGHDR = { size: 92, msglen: 0, version: 2, type: 3, index: 4, flags: 8, addrs: 12 } as const;

/** struct sockaddr_in, BSD style: sin_len, sin_family, sin_port (network order), sin_addr, sin_zero[8]. */
export function encodeSockaddrIn(ip: string, port: number): Uint8Array {
  const b = new Uint8Array(16);
  b[0] = 16;
  b[1] = DARWIN.AF_INET;
  b[2] = (port >>> 8) & 0xff;
  b[3] = port & 0xff;
  ip.split(".").forEach((p, i) => (b[4 + i] = Number(p) & 0xff));
  return b;
}

export function decodeSockaddrIn(b: Uint8Array): { address: string; port: number } | undefined {
  if (b.length < 8 || b[1] !== DARWIN.AF_INET) return undefined;
  return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: (b[2]! << 8) | b[3]! };
}

/** struct sockaddr_dl (if_dl.h): len, family, index (host order), type, nlen, alen, slen, then name and address. */
export interface SockaddrDl {
  index: number;
  type: number;
  name: string;
  /** The link-layer address, "aa:bb:cc:dd:ee:ff", when it has one. */
  mac: string | undefined;
}

export function decodeSockaddrDl(b: Uint8Array): SockaddrDl | undefined {
  if (b.length < 8 || b[1] !== DARWIN.AF_LINK) return undefined;
  const nlen = b[5]!;
  const alen = b[6]!;
  const name = new TextDecoder().decode(b.subarray(8, 8 + nlen));
  const addr = b.subarray(8 + nlen, 8 + nlen + alen);
  return {
    index: b[2]! | (b[3]! << 8),
    type: b[4]!,
    name,
    mac: alen === 6 && addr.length === 6 ? [...addr].map((x) => x.toString(16).padStart(2, "0")).join(":") : undefined,
  };
}

/** The receiving interface's index from recvmsg's control data (IP_RECVIF), or undefined without one. */
export function darwinRecvIf(control: Uint8Array): number | undefined {
  const v = new DataView(control.buffer, control.byteOffset, control.byteLength);
  let at = 0;
  while (at + DARWIN_CMSGHDR.size <= control.length) {
    const len = v.getUint32(at, true);
    const level = v.getInt32(at + 4, true);
    const type = v.getInt32(at + 8, true);
    if (len < DARWIN_CMSGHDR.size || at + len > control.length) return undefined;
    if (level === DARWIN.IPPROTO_IP && type === DARWIN.IP_RECVIF) return decodeSockaddrDl(control.subarray(at + DARWIN_CMSGHDR.size, at + len))?.index;
    at += align(len, DARWIN_CMSGHDR.align);
  }
  return undefined;
}

/**
 * The IPv4 neighbour (ARP) table from sysctl {CTL_NET, PF_ROUTE, 0, AF_INET, NET_RT_FLAGS, RTF_LLINFO}:
 * rt_msghdr records, each followed by its sockaddrs (RTA_DST a sockaddr_in, RTA_GATEWAY the sockaddr_dl with
 * the MAC), every sockaddr padded to 4 bytes (route.h ROUNDUP). IP → MAC for the entries that have one.
 */
export function parseRouteDump(buf: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let at = 0; at + DARWIN_RT_MSGHDR.size <= buf.length; ) {
    const msglen = v.getUint16(at + DARWIN_RT_MSGHDR.msglen, true);
    if (msglen < DARWIN_RT_MSGHDR.size || at + msglen > buf.length) break;
    const addrs = v.getInt32(at + DARWIN_RT_MSGHDR.addrs, true);
    let sa = at + DARWIN_RT_MSGHDR.size;
    let ip: string | undefined;
    let mac: string | undefined;
    for (let bit = 1; bit <= 0x80 && sa < at + msglen; bit <<= 1) {
      if (!(addrs & bit)) continue;
      const len = buf[sa]!;
      const sockaddr = buf.subarray(sa, sa + Math.max(len, 1));
      if (bit === DARWIN.RTA_DST) ip = decodeSockaddrIn(sockaddr)?.address;
      if (bit === DARWIN.RTA_GATEWAY) mac = decodeSockaddrDl(sockaddr)?.mac;
      sa += len > 0 ? align(len, 4) : 4;
    }
    if (ip && mac && mac !== "00:00:00:00:00:00") out.set(ip, mac);
    at += msglen;
  }
  return out;
}

/** `arp -an` output ("? (10.0.0.5) at 0:c:29:ab:cd:ef on en0 ifscope [ethernet]"): IP → MAC, octets padded. */
export function parseArpOutput(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/\((\d+\.\d+\.\d+\.\d+)\) at ([0-9a-f]{1,2}(?::[0-9a-f]{1,2}){5})\b/gi)) {
    out.set(m[1]!, m[2]!.split(":").map((o) => o.toLowerCase().padStart(2, "0")).join(":"));
  }
  return out;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
