/**
 * The socket calls for an interface-filtered UDP socket (net/iface-udp.ts), through bun:ffi, on darwin
 * (libSystem) and Linux (glibc), laid out by net/recvif.ts. Loaded only under Bun, by the main thread (to
 * send) and by the receiving worker (net/recvif-worker.ts).
 */
import { dlopen, ptr, toArrayBuffer } from "bun:ffi";
import { layoutFor, type RecvIfLayout } from "./recvif.ts";

export function openSocketLib(platform: string = process.platform) {
  const layout = layoutFor(platform);
  if (!layout) throw new Error(`no interface-filtered sockets on ${platform}`);
  const lib = dlopen(layout.library, {
    socket: { args: ["i32", "i32", "i32"], returns: "i32" },
    setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
    bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
    getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
    recvmsg: { args: ["i32", "ptr", "i32"], returns: "i64" },
    sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
    poll: { args: ["ptr", "u32", "i32"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    if_nametoindex: { args: ["ptr"], returns: "u32" },
    [layout.errnoSymbol]: { args: [], returns: "ptr" },
  } as const);
  const sym = lib.symbols as unknown as Record<string, (...a: unknown[]) => number> & { [k: string]: (...a: unknown[]) => number };
  const errno = () => {
    const p = sym[layout.errnoSymbol]!() as unknown as number;
    return p ? new Int32Array(toArrayBuffer(p as never, 0, 4))[0]! : 0;
  };
  const int = (v: number) => new Int32Array([v]);
  return {
    layout,
    sym,
    errno,
    ptr,
    setInt(fd: number, level: number, opt: number, value: number): boolean {
      return sym.setsockopt!(fd, level, opt, int(value), 4) === 0;
    },
    ifindex(name: string): number {
      return sym.if_nametoindex!(new TextEncoder().encode(name + "\0")) as number;
    },
  };
}

export type SocketLib = ReturnType<typeof openSocketLib>;
export type { RecvIfLayout };
