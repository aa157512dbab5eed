/**
 * Linux libc through bun:ffi: the few socket, poll and mmap calls the fast paths need (the TFTP worker engine,
 * SO_BINDTODEVICE for DHCP). Loaded only under Bun on Linux; importing it anywhere else throws, and callers
 * fall back to the runtime's own sockets. Structures are laid out for 64-bit Linux (x86_64, aarch64).
 */
import { dlopen, toArrayBuffer } from "bun:ffi";

if (process.platform !== "linux") throw new Error(`libc bindings are for Linux, not ${process.platform}`);
if (process.arch !== "x64" && process.arch !== "arm64") throw new Error(`libc bindings are for 64-bit Linux, not ${process.arch}`);

function open(): ReturnType<typeof load> {
  let last: unknown;
  for (const name of ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"]) {
    try {
      return load(name);
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`cannot load libc: ${(last as Error)?.message}`);
}

function load(name: string) {
  return dlopen(name, {
    socket: { args: ["i32", "i32", "i32"], returns: "i32" },
    bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
    connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
    getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
    setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
    getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
    epoll_create1: { args: ["i32"], returns: "i32" },
    epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
    epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
    recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
    send: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
    sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
    sendmmsg: { args: ["i32", "ptr", "u32", "i32"], returns: "i32" },
    pipe2: { args: ["ptr", "i32"], returns: "i32" },
    read: { args: ["i32", "ptr", "u64"], returns: "i32" },
    write: { args: ["i32", "ptr", "u64"], returns: "i32" },
    open: { args: ["ptr", "i32"], returns: "i32" },
    mmap: { args: ["ptr", "u64", "i32", "i32", "i32", "u64"], returns: "ptr" },
    munmap: { args: ["ptr", "u64"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  });
}

export const libc = open().symbols;

/** Linux values (asm-generic, the same on x86_64 and aarch64). */
export const C = {
  AF_INET: 2,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  O_RDONLY: 0,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_BROADCAST: 6,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_RCVBUFFORCE: 33,
  SO_BINDTODEVICE: 25,
  POLLIN: 1,
  POLLERR: 8,
  MSG_DONTWAIT: 0x40,
  PROT_READ: 1,
  MAP_SHARED: 1,
  EAGAIN: 11,
  EPOLL_CLOEXEC: 0o2000000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLLIN: 1,
} as const;

/** struct epoll_event is packed on x86_64 (12 bytes, data at 4) and naturally aligned elsewhere (16, data at 8). */
export const EPOLL_EVENT_SIZE = process.arch === "x64" ? 12 : 16;
export const EPOLL_DATA_AT = process.arch === "x64" ? 4 : 8;

/** Sizes and offsets of the structures used (64-bit Linux). */
export const SIZEOF_SOCKADDR_IN = 16;
export const SIZEOF_POLLFD = 8;
export const SIZEOF_IOVEC = 16;
/** struct mmsghdr: struct msghdr (56 bytes) + unsigned msg_len, padded to 64. */
export const SIZEOF_MMSGHDR = 64;

/** Writes a struct sockaddr_in at `at`. */
export function writeSockaddrIn(view: DataView, at: number, ip: string, port: number): void {
  view.setUint16(at, C.AF_INET, true);
  view.setUint16(at + 2, port, false);
  const parts = ip.split(".").map(Number);
  for (let i = 0; i < 4; i++) view.setUint8(at + 4 + i, parts[i] ?? 0);
  for (let i = 8; i < 16; i++) view.setUint8(at + i, 0);
}

/** A 64-bit pointer written as two 32-bit halves (no BigInt on the hot path). */
export function writePtr(view: DataView, at: number, address: number): void {
  view.setUint32(at, address % 0x100000000, true);
  view.setUint32(at + 4, Math.floor(address / 0x100000000), true);
}

export function errno(): number {
  const p = libc.__errno_location();
  return p ? new Int32Array(toArrayBuffer(p, 0, 4))[0]! : 0;
}

/**
 * A receive buffer of `bytes` (the kernel doubles what it is asked for, and reports that): SO_RCVBUFFORCE
 * where the process may (root, CAP_NET_ADMIN), which goes past net.core.rmem_max, else SO_RCVBUF up to it.
 * Returns what the kernel reports it now holds.
 */
export function setReceiveBuffer(fd: number, bytes: number): number {
  const v = new Int32Array(new ArrayBuffer(8));
  v[0] = bytes;
  const b = new Uint8Array(v.buffer, 0, 4);
  if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_RCVBUFFORCE, b, 4) !== 0 && libc.setsockopt(fd, C.SOL_SOCKET, C.SO_RCVBUF, b, 4) !== 0) {
    throw new Error(`SO_RCVBUF failed (errno ${errno()})`);
  }
  const len = new Uint32Array(new ArrayBuffer(4));
  len[0] = 4;
  if (libc.getsockopt(fd, C.SOL_SOCKET, C.SO_RCVBUF, v, len) !== 0) throw new Error(`getsockopt SO_RCVBUF failed (errno ${errno()})`);
  return v[0]!;
}

/** SO_BINDTODEVICE: the socket takes packets from, and sends out of, this interface only. */
export function bindToDevice(fd: number, iface: string): void {
  const name = new TextEncoder().encode(iface + "\0");
  const buf = new Uint8Array(new ArrayBuffer(name.length));
  buf.set(name);
  if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_BINDTODEVICE, buf, buf.length) !== 0) {
    throw new Error(`SO_BINDTODEVICE ${iface} failed (errno ${errno()})`);
  }
}
