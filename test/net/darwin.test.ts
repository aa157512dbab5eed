/**
 * macOS's structures and constants, checked on Linux against bytes written by hand from the xnu headers
 * (quoted below), so a wrong offset is caught here rather than on a Mac at a lab bench.
 */
import { describe, expect, test } from "bun:test";
import { DARWIN, DARWIN_CMSGHDR, DARWIN_MSGHDR, DARWIN_RT_MSGHDR, darwinRecvIf, decodeSockaddrDl, decodeSockaddrIn, encodeSockaddrIn, parseArpOutput, parseRouteDump } from "../../src/net/darwin.ts";
import { DARWIN_LAYOUT, LINUX_LAYOUT, linuxPktinfoIf } from "../../src/net/recvif.ts";

describe("constants, as xnu's headers define them", () => {
  // bsd/sys/socket.h: #define SOL_SOCKET 0xffff, SO_REUSEADDR 0x0004, SO_BROADCAST 0x0020, SO_REUSEPORT 0x0200,
  //   SO_SNDBUF 0x1001, SO_RCVBUF 0x1002, MSG_DONTWAIT 0x80, AF_INET 2, AF_LINK 18, SOCK_DGRAM 2
  // bsd/netinet/in.h: #define IP_RECVIF 20 /* bool; receive reception if w/dgram */, IP_BOUND_IF 25
  // bsd/sys/errno.h: EINTR 4, EACCES 13, EAGAIN 35, EMSGSIZE 40, EADDRINUSE 48, ENOBUFS 55, EHOSTUNREACH 65
  // bsd/sys/socket.h CTL_NET 4, PF_ROUTE 17 (AF_ROUTE); bsd/net/route.h NET_RT_FLAGS 2, RTF_LLINFO 0x400,
  //   RTA_DST 0x1, RTA_GATEWAY 0x2; bsd/sys/poll.h POLLIN 0x0001
  const quoted = {
    SOL_SOCKET: 0xffff, SO_REUSEADDR: 0x4, SO_BROADCAST: 0x20, SO_REUSEPORT: 0x200, SO_SNDBUF: 0x1001, SO_RCVBUF: 0x1002,
    MSG_DONTWAIT: 0x80, AF_INET: 2, AF_LINK: 18, SOCK_DGRAM: 2, IPPROTO_IP: 0, IP_RECVIF: 20, IP_BOUND_IF: 25,
    EINTR: 4, EACCES: 13, EAGAIN: 35, EMSGSIZE: 40, EADDRINUSE: 48, ENOBUFS: 55, EHOSTUNREACH: 65,
    CTL_NET: 4, PF_ROUTE: 17, NET_RT_FLAGS: 2, RTF_LLINFO: 0x400, RTA_DST: 1, RTA_GATEWAY: 2, POLLIN: 1,
  };
  test("the darwin table holds exactly the header values", () => {
    expect({ ...DARWIN } as Record<string, number>).toEqual(quoted);
  });
  test("the darwin layout never takes a Linux value where they differ", () => {
    // Linux: SOL_SOCKET 1, SO_REUSEADDR 2, SO_BROADCAST 6, MSG_DONTWAIT 0x40, EAGAIN 11 (asm-generic).
    const d = DARWIN_LAYOUT.constants;
    const l = LINUX_LAYOUT.constants;
    expect([d.SOL_SOCKET, d.SO_REUSEADDR, d.SO_BROADCAST, d.MSG_DONTWAIT, d.EAGAIN]).toEqual([0xffff, 4, 0x20, 0x80, 35]);
    expect([l.SOL_SOCKET, l.SO_REUSEADDR, l.SO_BROADCAST, l.MSG_DONTWAIT, l.EAGAIN]).toEqual([1, 2, 6, 0x40, 11]);
    expect(DARWIN_LAYOUT.library).toBe("/usr/lib/libSystem.B.dylib");
    expect(DARWIN_LAYOUT.errnoSymbol).toBe("__error");
  });
});

describe("structure layouts", () => {
  test("struct msghdr (64-bit darwin): 48 bytes; socklen_t namelen at 8, int iovlen at 24, controllen at 40, flags at 44", () => {
    // struct msghdr { void *msg_name; socklen_t msg_namelen; struct iovec *msg_iov; int msg_iovlen;
    //                 void *msg_control; socklen_t msg_controllen; int msg_flags; };  (bsd/sys/socket.h)
    expect(DARWIN_MSGHDR).toEqual({ size: 48, name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 44 });
    // Linux's differs: size_t iovlen and controllen, 56 bytes.
    expect(LINUX_LAYOUT.msghdr).toEqual({ size: 56, name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 48 });
  });

  test("struct sockaddr_in with its sin_len byte (16, AF_INET, port big-endian, address, 8 zeros)", () => {
    expect([...encodeSockaddrIn("10.1.2.3", 67)]).toEqual([16, 2, 0, 67, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...LINUX_LAYOUT.encodeSockaddrIn("10.1.2.3", 67)]).toEqual([2, 0, 0, 67, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodeSockaddrIn(Uint8Array.of(16, 2, 0x10, 0x92, 192, 168, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0))).toEqual({ address: "192.168.2.7", port: 4242 });
    expect(decodeSockaddrIn(Uint8Array.of(2, 0, 0, 67, 10, 1, 2, 3))).toBeUndefined(); // a Linux one is not mistaken for it
  });

  /** struct sockaddr_dl (bsd/net/if_dl.h): u_char sdl_len, sdl_family; u_short sdl_index; u_char sdl_type, sdl_nlen, sdl_alen, sdl_slen; char sdl_data[12]. */
  const sdl = (index: number, name: string, mac: number[]) => {
    const n = new TextEncoder().encode(name);
    const len = Math.max(20, 8 + n.length + mac.length);
    const b = new Uint8Array(len);
    b.set([len, 18, index & 0xff, index >> 8, 6 /* IFT_ETHER */, n.length, mac.length, 0]);
    b.set(n, 8);
    b.set(mac, 8 + n.length);
    return b;
  };

  test("struct sockaddr_dl: index at 2, name then address after 8", () => {
    expect(decodeSockaddrDl(sdl(7, "en5", [0x00, 0x0c, 0x29, 0xab, 0xcd, 0xef]))).toEqual({ index: 7, type: 6, name: "en5", mac: "00:0c:29:ab:cd:ef" });
    expect(decodeSockaddrDl(sdl(300, "bridge100", []))).toEqual({ index: 300, type: 6, name: "bridge100", mac: undefined });
  });

  test("IP_RECVIF control data: a 12-byte cmsghdr (level IPPROTO_IP, type 20) and a sockaddr_dl, 4-byte aligned", () => {
    // CMSG_LEN(sizeof(struct sockaddr_dl)) = 12 + 20; a second message before it proves the walk and the alignment.
    const other = new Uint8Array(16);
    new DataView(other.buffer).setUint32(0, 13, true); // a 13-byte SCM_TIMESTAMP-ish message, padded to 16
    new DataView(other.buffer).setInt32(4, DARWIN.SOL_SOCKET, true);
    new DataView(other.buffer).setInt32(8, 2, true);
    const d = sdl(4, "en0", [0x3c, 0x22, 0xfb, 0x01, 0x02, 0x03]);
    const recvif = new Uint8Array(DARWIN_CMSGHDR.size + d.length);
    const v = new DataView(recvif.buffer);
    v.setUint32(0, recvif.length, true);
    v.setInt32(4, DARWIN.IPPROTO_IP, true);
    v.setInt32(8, DARWIN.IP_RECVIF, true);
    recvif.set(d, 12);
    expect(darwinRecvIf(recvif)).toBe(4);
    const both = new Uint8Array(other.length + recvif.length);
    both.set(other);
    both.set(recvif, other.length);
    expect(darwinRecvIf(both)).toBe(4);
    expect(darwinRecvIf(other)).toBeUndefined();
    expect(darwinRecvIf(recvif.subarray(0, 20))).toBeUndefined(); // truncated: no answer rather than a wrong one
  });

  test("Linux's IP_PKTINFO control data (the same filter on Linux): 16-byte cmsghdr, in_pktinfo.ipi_ifindex first", () => {
    const b = new Uint8Array(32);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, 28n, true); // CMSG_LEN(sizeof(struct in_pktinfo)) = 16 + 12
    v.setInt32(8, 0, true); // SOL_IP
    v.setInt32(12, 8, true); // IP_PKTINFO
    v.setInt32(16, 3, true); // ipi_ifindex
    expect(linuxPktinfoIf(b)).toBe(3);
    expect(LINUX_LAYOUT.boundIfValue(3)).toBe(0x03000000); // IP_UNICAST_IF takes the index in network order
    expect(DARWIN_LAYOUT.boundIfValue(3)).toBe(3);
  });
});

describe("the ARP table on macOS", () => {
  /** One rt_msghdr record (route.h: 92 bytes, rtm_msglen at 0, rtm_addrs at 12) with RTA_DST and RTA_GATEWAY. */
  const record = (ip: string, mac: number[], name = "en0") => {
    const dst = encodeSockaddrIn(ip, 0); // 16 bytes: already 4-aligned
    const n = new TextEncoder().encode(name);
    const dlLen = 8 + n.length + mac.length;
    const dl = new Uint8Array(Math.ceil(Math.max(dlLen, 20) / 4) * 4);
    dl.set([Math.max(dlLen, 20), 18, 4, 0, 6, n.length, mac.length, 0]);
    dl.set(n, 8);
    dl.set(mac, 8 + n.length);
    const len = DARWIN_RT_MSGHDR.size + dst.length + dl.length;
    const b = new Uint8Array(len);
    const v = new DataView(b.buffer);
    v.setUint16(0, len, true);
    b[2] = 5; // RTM_VERSION
    b[3] = 4; // RTM_GET
    v.setUint16(4, 4, true);
    v.setInt32(8, DARWIN.RTF_LLINFO | 0x1 | 0x4, true);
    v.setInt32(12, DARWIN.RTA_DST | DARWIN.RTA_GATEWAY, true);
    b.set(dst, DARWIN_RT_MSGHDR.size);
    b.set(dl, DARWIN_RT_MSGHDR.size + dst.length);
    return b;
  };

  test("sysctl NET_RT_FLAGS/RTF_LLINFO records walk to IP → MAC; incomplete entries (no address) are left out", () => {
    const records = [record("10.77.0.11", [0x52, 0x54, 0, 0, 0, 1]), record("10.77.0.12", []), record("10.77.0.13", [0, 0x0c, 0x29, 1, 2, 3], "bridge100")];
    const buf = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of records) {
      buf.set(r, at);
      at += r.length;
    }
    expect(Object.fromEntries(parseRouteDump(buf))).toEqual({ "10.77.0.11": "52:54:00:00:00:01", "10.77.0.13": "00:0c:29:01:02:03" });
    expect(parseRouteDump(buf.subarray(0, 50)).size).toBe(0); // a torn buffer: nothing, no throw
  });

  test("`arp -an` lines, whose octets are not zero-padded, give padded MACs", () => {
    const out = [
      "? (10.77.0.1) at 0:c:29:ab:cd:ef on en5 ifscope [ethernet]",
      "? (10.77.0.2) at (incomplete) on en5 ifscope [ethernet]",
      "? (224.0.0.251) at 1:0:5e:0:0:fb on en0 ifscope permanent [ethernet]",
    ].join("\n");
    expect(Object.fromEntries(parseArpOutput(out))).toEqual({ "10.77.0.1": "00:0c:29:ab:cd:ef", "224.0.0.251": "01:00:5e:00:00:fb" });
  });
});
