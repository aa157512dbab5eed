/**
 * The few macOS calls beyond sockets, through bun:ffi on /usr/lib/libSystem.B.dylib: the routing sysctl that
 * dumps the ARP table (parsed by net/darwin.ts). Loaded only under Bun on darwin.
 */
import { dlopen, ptr } from "bun:ffi";
import { DARWIN } from "./darwin.ts";

if (process.platform !== "darwin") throw new Error(`darwin bindings are for macOS, not ${process.platform}`);

const sys = dlopen("/usr/lib/libSystem.B.dylib", {
  sysctl: { args: ["ptr", "u32", "ptr", "ptr", "ptr", "u64"], returns: "i32" },
}).symbols;

/** sysctl {CTL_NET, PF_ROUTE, 0, AF_INET, NET_RT_FLAGS, RTF_LLINFO}: the rt_msghdr records of the ARP table. */
export function routeDumpLlinfo(): Uint8Array {
  const mib = new Int32Array(new ArrayBuffer(24));
  mib.set([DARWIN.CTL_NET, DARWIN.PF_ROUTE, 0, DARWIN.AF_INET, DARWIN.NET_RT_FLAGS, DARWIN.RTF_LLINFO]);
  const len = new BigUint64Array(new ArrayBuffer(8));
  // The table may grow between the size query and the read: ask again with room to spare.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (sys.sysctl(mib, 6, null, len, null, 0) !== 0) throw new Error("sysctl(NET_RT_FLAGS) failed");
    const size = Number(len[0]) + 4096;
    const buf = new Uint8Array(new ArrayBuffer(size));
    len[0] = BigInt(size);
    if (sys.sysctl(mib, 6, ptr(buf), len, null, 0) === 0) return buf.subarray(0, Number(len[0]));
  }
  throw new Error("sysctl(NET_RT_FLAGS): the table kept growing");
}
