/**
 * Which MAC is behind a client address: learned from our own DHCP traffic, else read from the kernel's ARP
 * table (Linux /proc/net/arp). The iPXE script, TFTP and HTTP use it to treat a client by its MAC when the
 * request itself does not carry one.
 */
import { readFileSync } from "node:fs";
import { tryParseMac, type Mac } from "../wire/mac.ts";

export class Neighbors {
  readonly #learned = new Map<string, Mac>();

  learn(address: string, mac: Mac): void {
    if (address && address !== "0.0.0.0") this.#learned.set(address, mac);
  }

  lookup(address: string): Mac | undefined {
    return this.#learned.get(address) ?? arpLookup(address);
  }
}

function arpLookup(address: string): Mac | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    // "IP address  HW type  Flags  HW address  Mask  Device"
    for (const line of readFileSync("/proc/net/arp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[0] === address && f[3] && f[3] !== "00:00:00:00:00:00") return tryParseMac(f[3]);
    }
  } catch {
    // no ARP table to read
  }
  return undefined;
}
