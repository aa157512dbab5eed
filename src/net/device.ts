/**
 * Binding a socket to one network interface, so a DHCP server answers only the link it was given:
 * Linux SO_BINDTODEVICE and macOS IP_BOUND_IF, both through bun:ffi on the socket's descriptor. Under Node
 * (no FFI) there is no way to do it from JavaScript; the caller decides what that means.
 */

export type DeviceBinding = { ok: true; how: string } | { ok: false; why: string };

export async function bindSocketToDevice(fd: number | undefined, iface: string): Promise<DeviceBinding> {
  if (fd === undefined) return { ok: false, why: "this runtime exposes no socket descriptor (Node)" };
  if (typeof Bun === "undefined") return { ok: false, why: "no FFI under Node" };
  try {
    if (process.platform === "linux") {
      const { bindToDevice } = await import("./libc.ts");
      bindToDevice(fd, iface);
      return { ok: true, how: "SO_BINDTODEVICE" };
    }
    if (process.platform === "darwin") {
      const { dlopen } = await import("bun:ffi");
      const sys = dlopen("libSystem.B.dylib", {
        if_nametoindex: { args: ["ptr"], returns: "u32" },
        setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
      }).symbols;
      const name = new TextEncoder().encode(iface + "\0");
      const index = sys.if_nametoindex(name);
      if (!index) return { ok: false, why: `no interface ${iface}` };
      const value = new Int32Array(new ArrayBuffer(4));
      value[0] = index;
      // IPPROTO_IP = 0, IP_BOUND_IF = 25 (netinet/in.h)
      if (sys.setsockopt(fd, 0, 25, value, 4) !== 0) return { ok: false, why: "setsockopt(IP_BOUND_IF) failed" };
      return { ok: true, how: "IP_BOUND_IF" };
    }
    return { ok: false, why: `binding to an interface is not implemented on ${process.platform}` };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}
