/**
 * A UDP socket that hears only one interface, for the DHCP server on macOS (see net/recvif.ts): a worker
 * receives with the receiving interface asked for and drops what came in elsewhere; the main thread sends
 * on the same descriptor. Bun only (bun:ffi); darwin in production, Linux in the tests.
 */
import type { Logger } from "../log.ts";
import { openSocketLib } from "./recvif-ffi.ts";
import type { FromRecvIfWorker, ToRecvIfWorker } from "./recvif-protocol.ts";
import { guardSend, type UdpHandler, type UdpSocket } from "./udp.ts";

export interface InterfaceUdpOptions {
  address: string;
  port: number;
  iface: string;
  onMessage: UdpHandler;
  log: Logger;
  platform?: string;
}

export interface InterfaceUdpSocket extends UdpSocket {
  /** Datagrams dropped because they came in on another interface. */
  readonly dropped: number;
}

export async function openInterfaceUdp(opts: InterfaceUdpOptions): Promise<InterfaceUdpSocket> {
  const platform = opts.platform ?? process.platform;
  const lib = openSocketLib(platform);
  const ifindex = lib.ifindex(opts.iface);
  if (!ifindex) throw new Error(`no interface ${opts.iface}`);
  const compiled = import.meta.url.includes("$bunfs");
  const worker = new Worker(new URL(compiled ? "./net/recvif-worker.ts" : "./recvif-worker.ts", import.meta.url).href);
  let dropped = 0;
  const ready = await new Promise<{ fd: number; port: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("receiving worker did not start")), 5000);
    worker.onerror = (e) => {
      clearTimeout(t);
      reject(new Error(`receiving worker failed: ${e.message}`));
    };
    worker.onmessage = (e: MessageEvent<FromRecvIfWorker>) => {
      const m = e.data;
      if (m.type === "ready") {
        clearTimeout(t);
        resolve(m);
      } else if (m.type === "error") {
        clearTimeout(t);
        reject(Object.assign(new Error(`${m.message} failed (errno ${m.errno})`), { errno: m.errno }));
      }
    };
    worker.postMessage({ type: "init", platform, address: opts.address, port: opts.port, ifindex } satisfies ToRecvIfWorker);
  });
  worker.onmessage = (e: MessageEvent<FromRecvIfWorker>) => {
    const m = e.data;
    if (m.type === "datagram") {
      try {
        opts.onMessage(m.data, m.address, m.port);
      } catch (err) {
        opts.log.warn(`handler failed: ${(err as Error).message}`);
      }
    } else if (m.type === "dropped") {
      dropped += m.count;
      opts.log.debug(`dropped ${m.count} datagram(s) that came in on interface ${m.lastIfindex ?? "(unknown)"}, not ${opts.iface} (${ifindex})`);
    }
  };
  worker.onerror = (e) => opts.log.error(`receiving worker for ${opts.iface} crashed: ${e.message}`);
  const fd = ready.fd;
  const { layout, sym } = lib;
  const send = (data: Uint8Array, port: number, address: string): boolean =>
    guardSend(() => {
      const to = layout.encodeSockaddrIn(address, port);
      const n = Number(sym.sendto!(fd, data, data.length, 0, to, to.length));
      if (n < 0) {
        const errno = lib.errno();
        if (errno === layout.constants.EAGAIN) return false;
        throw Object.assign(new Error(`sendto ${address}:${port} failed (errno ${errno})`), { code: errnoName(errno, platform) });
      }
      return true;
    }, false);
  let closed = false;
  return {
    address: opts.address,
    port: ready.port,
    fd,
    get dropped() {
      return dropped;
    },
    send,
    sendMany(packets, port, address) {
      let n = 0;
      for (const p of packets) if (send(p, port, address)) n++;
      return n;
    },
    setBroadcast: (on) => void lib.setInt(fd, layout.constants.SOL_SOCKET, layout.constants.SO_BROADCAST, on ? 1 : 0),
    close() {
      if (closed) return;
      closed = true;
      worker.postMessage({ type: "stop" } satisfies ToRecvIfWorker);
      // The worker leaves its poll within 200 ms; the descriptor goes when it has.
      const t = setTimeout(() => finish(), 1000);
      const finish = () => {
        clearTimeout(t);
        sym.close!(fd);
        worker.terminate();
      };
      worker.addEventListener("message", (e: MessageEvent<FromRecvIfWorker>) => e.data.type === "stopped" && finish());
    },
  };
}

/** The errno names guardSend tells apart (darwin and Linux numbers differ). */
function errnoName(errno: number, platform: string): string {
  const names: Record<number, string> = platform === "darwin" ? { 55: "ENOBUFS", 35: "EAGAIN", 40: "EMSGSIZE", 65: "EHOSTUNREACH", 4: "EINTR" } : { 105: "ENOBUFS", 11: "EAGAIN", 90: "EMSGSIZE", 113: "EHOSTUNREACH", 4: "EINTR" };
  return names[errno] ?? `errno ${errno}`;
}
