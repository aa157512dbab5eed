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
      // IP_BOUND_IF restricts only what the socket sends (see net/recvif.ts for receiving).
      const { openSocketLib } = await import("./recvif-ffi.ts");
      const lib = openSocketLib("darwin");
      const index = lib.ifindex(iface);
      if (!index) return { ok: false, why: `no interface ${iface}` };
      if (!lib.setInt(fd, lib.layout.constants.IPPROTO_IP, lib.layout.constants.BOUND_IF, index)) return { ok: false, why: `setsockopt(IP_BOUND_IF) failed (errno ${lib.errno()})` };
      return { ok: true, how: "IP_BOUND_IF (sending only)" };
    }
    return { ok: false, why: `binding to an interface is not implemented on ${process.platform}` };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/**
 * Room in a listening socket's receive buffer for a burst: a rack powered on at once sends hundreds of
 * DISCOVERs (or RRQs) within a millisecond, and what does not fit is dropped by the kernel (UdpRcvbufErrors),
 * which costs that machine its firmware's first retry (4 s for a PXE ROM). Linux only (bun:ffi); elsewhere
 * the system's default stays, and the reason says so.
 */
export async function growReceiveBuffer(fd: number | undefined, bytes: number): Promise<{ ok: true; bytes: number } | { ok: false; why: string }> {
  if (fd === undefined || typeof Bun === "undefined") return { ok: false, why: "no socket descriptor in this runtime (Node)" };
  if (process.platform !== "linux") return { ok: false, why: `not set on ${process.platform}` };
  try {
    const { setReceiveBuffer } = await import("./libc.ts");
    return { ok: true, bytes: setReceiveBuffer(fd, bytes) };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}
