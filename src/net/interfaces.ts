/** Local network interfaces: the default server address, and an interface's address and subnet. */
import { networkInterfaces } from "node:os";
import { ConfigError } from "../errors.ts";
import { parseIPv4 } from "../wire/ipv4.ts";

export interface InterfaceAddress {
  iface: string;
  address: string;
  prefix: number;
  mac: string | undefined;
}

export function listIPv4(): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== "IPv4") continue;
      const prefix = a.cidr ? Number(a.cidr.split("/")[1]) : 24;
      out.push({ iface, address: a.address, prefix, mac: a.mac && a.mac !== "00:00:00:00:00:00" ? a.mac : undefined });
    }
  }
  return out;
}

/** First non-loopback IPv4 address: the default address clients are told to use. */
export function defaultAddress(): InterfaceAddress | undefined {
  return listIPv4().find((a) => !a.address.startsWith("127."));
}

/** The IPv4 address of a named interface; ConfigError with the names that exist when there is none. */
export function interfaceAddress(name: string): InterfaceAddress {
  const all = listIPv4();
  const hit = all.find((a) => a.iface === name);
  if (!hit) {
    const names = [...new Set(all.map((a) => a.iface))].join(", ") || "none";
    const exists = Object.keys(networkInterfaces()).includes(name);
    throw new ConfigError(
      "E_IFACE",
      exists ? `interface ${name} has no IPv4 address (give it one, or pass --ip)` : `no interface named ${name} (interfaces with IPv4: ${names})`,
    );
  }
  parseIPv4(hit.address);
  return hit;
}
