/**
 * Receiving side of an interface-filtered UDP socket (net/iface-udp.ts), in a worker so that its blocking
 * poll/recvmsg never hold up the main thread: binds the socket, asks for the receiving interface on every
 * datagram (IP_RECVIF on darwin, IP_PKTINFO on Linux), and passes on only those that came in on the one
 * interface; the rest are counted and reported.
 */
import { openSocketLib } from "./recvif-ffi.ts";
import type { FromRecvIfWorker, ToRecvIfWorker } from "./recvif-protocol.ts";

declare const self: { onmessage: ((e: MessageEvent<ToRecvIfWorker>) => void) | null; postMessage(m: FromRecvIfWorker, transfer?: ArrayBuffer[]): void };
const post = (m: FromRecvIfWorker, transfer: ArrayBuffer[] = []) => self.postMessage(m, transfer);
let stopping = false;

self.onmessage = (e) => {
  const m = e.data;
  if (m.type === "stop") stopping = true;
  else void run(m.platform, m.address, m.port, m.ifindex);
};

async function run(platform: string, address: string, port: number, ifindex: number): Promise<void> {
  const lib = openSocketLib(platform);
  const { layout, sym } = lib;
  const c = layout.constants;
  const fail = (what: string) => post({ type: "error", message: what, errno: lib.errno() });
  const fd = sym.socket!(c.AF_INET, c.SOCK_DGRAM, 0) as number;
  if (fd < 0) return fail("socket()");
  const options: Array<[number, number, number, string]> = [
    [c.SOL_SOCKET, c.SO_REUSEADDR, 1, "SO_REUSEADDR"],
    [c.SOL_SOCKET, c.SO_BROADCAST, 1, "SO_BROADCAST"],
    [c.IPPROTO_IP, c.RECVIF_OPTION, 1, layout.platform === "darwin" ? "IP_RECVIF" : "IP_PKTINFO"],
  ];
  options.push([c.IPPROTO_IP, c.BOUND_IF, layout.boundIfValue(ifindex), layout.platform === "darwin" ? "IP_BOUND_IF" : "IP_UNICAST_IF"]);
  for (const [level, opt, value, name] of options) {
    if (!lib.setInt(fd, level, opt, value)) {
      sym.close!(fd);
      return fail(`setsockopt(${name})`);
    }
  }
  const sa = layout.encodeSockaddrIn(address, port);
  if ((sym.bind!(fd, sa, sa.length) as number) !== 0) {
    const errno = lib.errno();
    sym.close!(fd);
    return post({ type: "error", message: `bind(${address}:${port})`, errno });
  }
  const name = new Uint8Array(new ArrayBuffer(16));
  const nameLen = new Uint32Array(new ArrayBuffer(4));
  nameLen[0] = 16;
  sym.getsockname!(fd, name, nameLen);
  post({ type: "ready", fd, port: layout.decodeSockaddrIn(name)?.port ?? port });

  // One arena for everything whose address goes into msghdr: every view used below keeps it alive. (A
  // separate iovec nothing referenced after setup was collected, and recvmsg then wrote through freed memory.)
  const h = layout.msghdr;
  const at = { buf: 0, from: 65536, control: 65552, iov: 65552 + layout.controlSize, msg: 65568 + layout.controlSize, poll: 65568 + layout.controlSize + h.size };
  const arena = new Uint8Array(new ArrayBuffer(at.poll + 8));
  const view = new DataView(arena.buffer);
  const base = lib.ptr(arena);
  const buf = arena.subarray(at.buf, at.from);
  const from = arena.subarray(at.from, at.from + 16);
  const control = arena.subarray(at.control, at.control + layout.controlSize);
  const msg = arena.subarray(at.msg, at.msg + h.size);
  const pollfd = arena.subarray(at.poll, at.poll + 8);
  view.setBigUint64(at.iov, BigInt(base + at.buf), true);
  view.setBigUint64(at.iov + 8, BigInt(buf.length), true);
  view.setBigUint64(at.msg + h.name, BigInt(base + at.from), true);
  view.setBigUint64(at.msg + h.iov, BigInt(base + at.iov), true);
  view.setBigUint64(at.msg + h.control, BigInt(base + at.control), true);
  // iovlen is an int on darwin, a size_t on Linux; both fit the low 32 bits of a little-endian word.
  view.setUint32(at.msg + h.iovlen, 1, true);
  view.setInt32(at.poll, fd, true);
  view.setInt16(at.poll + 4, c.POLLIN, true);
  const mv = { setUint32: (o: number, v: number) => view.setUint32(at.msg + o, v, true), setInt32: (o: number, v: number) => view.setInt32(at.msg + o, v, true), getUint32: (o: number) => view.getUint32(at.msg + o, true) };
  let dropped = 0;
  let lastIfindex: number | undefined;
  let lastReport = Date.now();
  while (!stopping) {
    const ready = sym.poll!(pollfd, 1, 200) as number;
    for (let k = 0; ready > 0 && k < 64; k++) {
      mv.setUint32(h.namelen, 16);
      mv.setUint32(h.controllen, control.length);
      if (h.controllen + 4 < h.flags) mv.setUint32(h.controllen + 4, 0);
      mv.setInt32(h.flags, 0);
      const n = Number(sym.recvmsg!(fd, msg, c.MSG_DONTWAIT));
      if (n < 0) break;
      const clen = mv.getUint32(h.controllen);
      const got = layout.ifindex(control.subarray(0, Math.min(clen, control.length)));
      const peer = layout.decodeSockaddrIn(from);
      if (got !== ifindex || !peer) {
        dropped++;
        lastIfindex = got;
        continue;
      }
      const data = buf.slice(0, n);
      // Copied by the structured clone, not transferred: a transfer has been seen to free memory recvmsg still writes to.
      post({ type: "datagram", data, address: peer.address, port: peer.port });
    }
    if (dropped && Date.now() - lastReport >= 1000) {
      post({ type: "dropped", count: dropped, lastIfindex });
      dropped = 0;
      lastReport = Date.now();
    }
    // Let the worker's own messages (stop) in between polls.
    await new Promise((r) => setTimeout(r, 0));
  }
  if (dropped) post({ type: "dropped", count: dropped, lastIfindex });
  post({ type: "stopped" });
}
