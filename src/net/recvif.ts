/**
 * Which interface a datagram came in on, from recvmsg's control data: what a DHCP server on a machine with
 * several links needs when the OS cannot tie a socket's receiving side to one interface. On macOS,
 * IP_BOUND_IF restricts only sending: xnu delivers a broadcast to every matching socket whatever
 * interface it is bound to (udp_usrreq.c), so Apple's own bootpd asks for IP_RECVIF and drops what came in
 * elsewhere (bootpd.c). Linux says the same with IP_PKTINFO; netboot uses SO_BINDTODEVICE there, and this
 * layout for the tests that run the darwin path's mechanics on Linux. Pure: layouts and parsers only.
 */
import { DARWIN, DARWIN_MSGHDR, darwinRecvIf, decodeSockaddrIn, encodeSockaddrIn } from "./darwin.ts";

export interface RecvIfLayout {
  platform: "darwin" | "linux";
  /** The shared library with the socket calls. */
  library: string;
  /** errno's address: __error on darwin, __errno_location in glibc. */
  errnoSymbol: "__error" | "__errno_location";
  constants: {
    AF_INET: number;
    SOCK_DGRAM: number;
    SOL_SOCKET: number;
    SO_REUSEADDR: number;
    SO_BROADCAST: number;
    IPPROTO_IP: number;
    /** The option that makes recvmsg report the receiving interface. */
    RECVIF_OPTION: number;
    /** Sends out of one interface without filtering what comes in: darwin IP_BOUND_IF, Linux IP_UNICAST_IF. */
    BOUND_IF: number;
    MSG_DONTWAIT: number;
    POLLIN: number;
    EAGAIN: number;
  };
  msghdr: { size: number; name: number; namelen: number; iov: number; iovlen: number; control: number; controllen: number; flags: number };
  /** Bytes of control data to offer recvmsg (room for the one message asked for). */
  controlSize: number;
  encodeSockaddrIn(ip: string, port: number): Uint8Array;
  decodeSockaddrIn(b: Uint8Array): { address: string; port: number } | undefined;
  /** BOUND_IF's value for an interface index (Linux's IP_UNICAST_IF takes it in network byte order). */
  boundIfValue(ifindex: number): number;
  /** The receiving interface's index in the control data, or undefined. */
  ifindex(control: Uint8Array): number | undefined;
}

export const DARWIN_LAYOUT: RecvIfLayout = {
  platform: "darwin",
  library: "/usr/lib/libSystem.B.dylib",
  errnoSymbol: "__error",
  constants: {
    AF_INET: DARWIN.AF_INET,
    SOCK_DGRAM: DARWIN.SOCK_DGRAM,
    SOL_SOCKET: DARWIN.SOL_SOCKET,
    SO_REUSEADDR: DARWIN.SO_REUSEADDR,
    SO_BROADCAST: DARWIN.SO_BROADCAST,
    IPPROTO_IP: DARWIN.IPPROTO_IP,
    RECVIF_OPTION: DARWIN.IP_RECVIF,
    BOUND_IF: DARWIN.IP_BOUND_IF,
    MSG_DONTWAIT: DARWIN.MSG_DONTWAIT,
    POLLIN: DARWIN.POLLIN,
    EAGAIN: DARWIN.EAGAIN,
  },
  msghdr: DARWIN_MSGHDR,
  controlSize: 128,
  encodeSockaddrIn,
  decodeSockaddrIn,
  boundIfValue: (i) => i,
  ifindex: darwinRecvIf,
};

/** Linux IP_PKTINFO and IP_UNICAST_IF (linux/in.h). */
const LINUX_IP_PKTINFO = 8;
const LINUX_IP_UNICAST_IF = 50;

/** 64-bit Linux (x86_64, aarch64): values from asm-generic and linux/in.h. */
export const LINUX_LAYOUT: RecvIfLayout = {
  platform: "linux",
  library: "libc.so.6",
  errnoSymbol: "__errno_location",
  constants: { AF_INET: 2, SOCK_DGRAM: 2, SOL_SOCKET: 1, SO_REUSEADDR: 2, SO_BROADCAST: 6, IPPROTO_IP: 0, RECVIF_OPTION: LINUX_IP_PKTINFO, BOUND_IF: LINUX_IP_UNICAST_IF, MSG_DONTWAIT: 0x40, POLLIN: 1, EAGAIN: 11 },
  // struct msghdr: iovlen and controllen are size_t; 56 bytes.
  msghdr: { size: 56, name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 48 },
  controlSize: 128,
  encodeSockaddrIn(ip, port) {
    const b = new Uint8Array(16);
    b[0] = 2; // sa_family_t, little-endian, no length byte
    b[2] = (port >>> 8) & 0xff;
    b[3] = port & 0xff;
    ip.split(".").forEach((p, i) => (b[4 + i] = Number(p) & 0xff));
    return b;
  },
  decodeSockaddrIn(b) {
    if (b.length < 8 || (b[0]! | (b[1]! << 8)) !== 2) return undefined;
    return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: (b[2]! << 8) | b[3]! };
  },
  // ip(7): "the interface index in network byte order" for IPv4.
  boundIfValue: (i) => (((i & 0xff) << 24) | ((i & 0xff00) << 8) | ((i >>> 8) & 0xff00) | (i >>> 24)) >>> 0,
  ifindex: linuxPktinfoIf,
};

/** struct cmsghdr on 64-bit Linux: size_t cmsg_len, int level, int type (16 bytes); struct in_pktinfo's ipi_ifindex first. */
export function linuxPktinfoIf(control: Uint8Array): number | undefined {
  const v = new DataView(control.buffer, control.byteOffset, control.byteLength);
  let at = 0;
  while (at + 16 <= control.length) {
    const len = Number(v.getBigUint64(at, true));
    const level = v.getInt32(at + 8, true);
    const type = v.getInt32(at + 12, true);
    if (len < 16 || at + len > control.length) return undefined;
    if (level === 0 && type === LINUX_IP_PKTINFO && len >= 16 + 4) return v.getInt32(at + 16, true);
    at += Math.ceil(len / 8) * 8;
  }
  return undefined;
}

export function layoutFor(platform: string): RecvIfLayout | undefined {
  return platform === "darwin" ? DARWIN_LAYOUT : platform === "linux" ? LINUX_LAYOUT : undefined;
}
