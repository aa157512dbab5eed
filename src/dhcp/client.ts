/** A DHCP request reduced to the protocol-neutral BootClient the boot policy takes. */
import type { BootClient } from "../boot/types.ts";
import { toHex } from "../wire/bytes.ts";
import { Opt } from "./constants.ts";
import { clientMac, optString, type DhcpPacket } from "./packet.ts";

export function bootClientFromDhcp(p: DhcpPacket): BootClient {
  const arch = p.options.get(Opt.ClientArch);
  return {
    mac: clientMac(p),
    arch: arch && arch.length >= 2 ? (arch[0]! << 8) | arch[1]! : undefined,
    vendorClass: optString(p, Opt.VendorClass),
    userClass: userClasses(p.options.get(Opt.UserClass)),
    ipxeOptions: p.options.has(Opt.Ipxe),
    uuid: guid(p.options.get(Opt.ClientUuid)),
    relayed: p.giaddr !== 0,
  };
}

/**
 * RFC 3004: option 77 is a list of length-prefixed user classes. iPXE (and others) send one plain string
 * instead ("iPXE"); anything that does not parse as RFC 3004 is taken as one string.
 */
export function userClasses(v: Uint8Array | undefined): string[] {
  if (!v || v.length === 0) return [];
  const dec = new TextDecoder();
  const out: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) return [dec.decode(v)];
    out.push(dec.decode(v.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  return out;
}

/** RFC 4578 §2.3: type 0, then the 16-byte GUID in SMBIOS order (first three fields little-endian). */
export function guid(v: Uint8Array | undefined): string | undefined {
  if (!v || v.length !== 17 || v[0] !== 0) return undefined;
  const b = v.subarray(1);
  const le = (from: number, n: number) => toHex(Uint8Array.from(b.subarray(from, from + n)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${toHex(b.subarray(8, 10))}-${toHex(b.subarray(10, 16))}`;
}
