/** IPv4 addresses as unsigned 32-bit numbers, dotted-quad text and subnet arithmetic. */
import { ConfigError } from "../errors.ts";

export function tryParseIPv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function parseIPv4(s: string, what = "address"): number {
  const n = tryParseIPv4(s);
  if (n === undefined) throw new ConfigError("E_IPV4", `${what}: ${JSON.stringify(s)} is not an IPv4 address (a.b.c.d)`);
  return n;
}

export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function ipv4ToBytes(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

export function ipv4FromBytes(b: Uint8Array, at = 0): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function prefixToMask(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new ConfigError("E_PREFIX", `bad prefix length ${prefix}`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function maskToPrefix(mask: number): number {
  let p = 0;
  while (p < 32 && (mask >>> (31 - p)) & 1) p++;
  if (prefixToMask(p) !== mask >>> 0) throw new ConfigError("E_MASK", `not a contiguous netmask: ${formatIPv4(mask)}`);
  return p;
}

export interface Subnet {
  readonly network: number;
  readonly prefix: number;
  readonly mask: number;
  readonly broadcast: number;
}

export function subnetOf(address: number, prefix: number): Subnet {
  const mask = prefixToMask(prefix);
  const network = (address & mask) >>> 0;
  return { network, prefix, mask, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

export function inSubnet(address: number, subnet: Subnet): boolean {
  return ((address & subnet.mask) >>> 0) === subnet.network;
}

export function isLoopback(address: number): boolean {
  return address >>> 24 === 127;
}
