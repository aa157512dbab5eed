/**
 * UDP sockets behind one small interface, so the protocol servers run on Bun (Bun.udpSocket: sendMany,
 * a file descriptor for SO_BINDTODEVICE) and on Node (node:dgram) alike.
 */
import { bindFailure, errorMessage, NetbootError, PortError, ServiceError } from "../errors.ts";

export interface UdpSocket {
  readonly address: string;
  readonly port: number;
  /** The socket's descriptor (Bun), for setsockopt through FFI. */
  readonly fd: number | undefined;
  /** False when the kernel buffer was full and the datagram was not sent (onDrain follows). */
  send(data: Uint8Array, port: number, address: string): boolean;
  /** Several datagrams to one peer (a TFTP window) in one system call where the runtime can; returns how many went. */
  sendMany(packets: readonly Uint8Array[], port: number, address: string): number;
  setBroadcast(on: boolean): void;
  close(): void;
}

export type UdpHandler = (data: Uint8Array, address: string, port: number) => void;

/**
 * A datagram the kernel refused for a reason that will not go away by retrying (EMSGSIZE: larger than the
 * socket may send, 9,216 bytes by default on macOS; EHOSTUNREACH; ENETDOWN…). Transient refusals (ENOBUFS:
 * the interface pushed back, which macOS reports on connected sockets; EAGAIN) are not errors: the send
 * reports "not sent" and the protocol's retransmission covers it.
 */
export class UdpSendError extends NetbootError {}

const TRANSIENT = new Set(["ENOBUFS", "EAGAIN", "EWOULDBLOCK", "EINTR"]);

/** Runs a send; transient refusals count as not sent, anything else becomes a UdpSendError. */
export function guardSend<T>(send: () => T, notSent: T): T {
  try {
    return send();
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? "");
    if (TRANSIENT.has(code)) return notSent;
    throw new UdpSendError(code || "ESEND", (err as Error).message ?? String(err));
  }
}

export interface UdpOptions {
  address: string;
  port: number;
  onMessage: UdpHandler;
  /** What the socket is for, in error messages ("TFTP", "DHCP"). */
  service: string;
  /** CLI flag that changes the port, for the hint on EACCES/EADDRINUSE. */
  portFlag?: string;
  reuseAddr?: boolean;
  runtime?: "bun" | "node";
  /** Connect to one peer: the kernel drops datagrams from anyone else, and sends skip the route lookup. */
  connect?: { address: string; port: number };
  /** The socket can take datagrams again after a send returned false / short. */
  onDrain?: () => void;
  /** A message handler threw: the socket goes on (a throw inside a Bun UDP handler would end the process). */
  onHandlerError?: (err: unknown) => void;
  /**
   * The kernel reported an error on the socket: ECONNREFUSED on a connected socket is an ICMP "port
   * unreachable" from a peer that went away. Without a handler Bun raises it as an uncaught error.
   */
  onSocketError?: (err: Error & { code?: string }) => void;
}

export async function openUdp(opts: UdpOptions): Promise<UdpSocket> {
  const runtime = opts.runtime ?? (typeof Bun !== "undefined" ? "bun" : "node");
  try {
    return runtime === "bun" ? await openBun(opts) : await openNode(opts);
  } catch (err) {
    throw udpError(err, opts);
  }
}

// --- internal ---

function udpError(err: unknown, opts: UdpOptions): ServiceError {
  if (err instanceof ServiceError) return err;
  const why = bindFailure(err);
  const msg = errorMessage(err);
  const flag = opts.portFlag ? ` (or ${opts.portFlag} N)` : "";
  const tag = opts.service.toUpperCase().replace(/[^A-Z0-9]+/g, "_");
  if (why === "denied") {
    return new PortError("denied", `E_${tag}_PORT_DENIED`, `no permission to use ${opts.service} port ${opts.port}`, `run with sudo${flag}`);
  }
  if (why === "in-use") {
    // On a Mac, port 67 is launchd's bootpd when Internet Sharing is on (com.apple.bootpd); 69 its tftpd.
    const mac = process.platform === "darwin" ? (opts.port === 67 ? "; on macOS, Internet Sharing runs bootpd: turn it off in System Settings > General > Sharing" : opts.port === 69 ? "; on macOS: sudo launchctl unload -w /System/Library/LaunchDaemons/tftp.plist" : "") : "";
    return new PortError("in-use", `E_${tag}_PORT_IN_USE`, `${opts.service} port ${opts.port} on ${opts.address} is already in use`, `stop the other server${flag}${mac}`);
  }
  if (why === "no-address") {
    return new PortError("no-address", `E_${tag}_ADDRESS`, `cannot use ${opts.address} for ${opts.service}: no such local address`, "pick an address of this machine with --ip / --bind");
  }
  return new ServiceError(`E_${tag}_LISTEN`, `cannot open ${opts.service} socket on ${opts.address}:${opts.port}: ${msg}`, undefined, { cause: err });
}

/** The handler, so that nothing it throws leaves the socket's callback. */
function safeHandler(opts: UdpOptions): UdpHandler {
  return (data, address, port) => {
    try {
      opts.onMessage(data, address, port);
    } catch (err) {
      opts.onHandlerError?.(err);
    }
  };
}

async function openBun(opts: UdpOptions): Promise<UdpSocket> {
  const onMessage = safeHandler(opts);
  const handlers = {
    data(_sock: unknown, buf: Uint8Array, port: number, addr: string) {
      onMessage(buf, addr, port);
    },
    drain() {
      opts.onDrain?.();
    },
    // Bun passes the error alone or after the socket, depending on the version: take whichever is one.
    error(...args: unknown[]) {
      const err = args.find((a) => a instanceof Error) as Error | undefined;
      opts.onSocketError?.(err ?? new Error(String(args[0])));
    },
  };
  if (opts.connect) {
    const c = await Bun.udpSocket({
      hostname: opts.address,
      port: opts.port,
      binaryType: "uint8array",
      connect: { hostname: opts.connect.address, port: opts.connect.port },
      socket: handlers,
    });
    return {
      address: opts.address,
      port: c.port,
      fd: (c as unknown as { fd?: number }).fd,
      send: (data) => guardSend(() => c.send(data), false),
      sendMany: (packets) => guardSend(() => (packets.length === 1 ? (c.send(packets[0]!) ? 1 : 0) : c.sendMany(packets)), 0),
      setBroadcast: (on) => void c.setBroadcast(on),
      close: () => c.close(),
    };
  }
  const s = await Bun.udpSocket({ hostname: opts.address, port: opts.port, binaryType: "uint8array", socket: handlers });
  return {
    address: opts.address,
    port: s.port,
    fd: (s as unknown as { fd?: number }).fd,
    send: (data, port, address) => guardSend(() => s.send(data, port, address), false),
    sendMany(packets, port, address) {
      if (packets.length === 1) return guardSend(() => (s.send(packets[0]!, port, address) ? 1 : 0), 0);
      const args: Array<Uint8Array | number | string> = [];
      for (const p of packets) args.push(p, port, address);
      return guardSend(() => s.sendMany(args as never), 0);
    },
    setBroadcast: (on) => void s.setBroadcast(on),
    close: () => s.close(),
  };
}

async function openNode(opts: UdpOptions): Promise<UdpSocket> {
  const dgram = await import("node:dgram");
  const s = dgram.createSocket({ type: "udp4", reuseAddr: opts.reuseAddr ?? false });
  const onMessage = safeHandler(opts);
  s.on("message", (msg, rinfo) => onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo.address, rinfo.port));
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(opts.port, opts.address, () => {
      s.off("error", reject);
      resolve();
    });
  });
  // Send errors (ICMP unreachable reported on the next call, etc.) must not kill the server.
  s.on("error", (err) => opts.onSocketError?.(err));
  const connected = opts.connect;
  if (connected) await new Promise<void>((resolve) => s.connect(connected.port, connected.address, () => resolve()));
  // node:dgram queues datagrams itself and copies them when queued, so a reused buffer is safe.
  const send = (data: Uint8Array, port: number, address: string) =>
    guardSend(() => {
      if (connected) s.send(Buffer.from(data));
      else s.send(Buffer.from(data), port, address);
      return true;
    }, false);
  return {
    address: opts.address,
    port: s.address().port,
    fd: undefined,
    send,
    sendMany(packets, port, address) {
      for (const p of packets) send(p, port, address);
      return packets.length;
    },
    setBroadcast: (on) => s.setBroadcast(on),
    close: () => {
      try {
        s.close();
      } catch {
        // already closed
      }
    },
  };
}
