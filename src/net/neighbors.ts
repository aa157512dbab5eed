/**
 * Which MAC is behind a client address: learned from our own DHCP traffic, else read from the kernel's ARP
 * table (Linux /proc/net/arp; macOS the routing sysctl under Bun, `arp -an` under Node). The iPXE script,
 * TFTP and HTTP use it to treat a client by its MAC when the request itself does not carry one (in proxy
 * mode a client that never used port 4011 is known only this way).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { LIMITS } from "../config.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import { parseArpOutput, parseRouteDump } from "./darwin.ts";

/** Addresses remembered at most (forged source addresses cannot grow the table past it). */
const MAX_LEARNED = LIMITS.hosts.maxNeighbors;

export class Neighbors {
  readonly #learned = new Map<string, Mac>();

  learn(address: string, mac: Mac): void {
    if (!address || address === "0.0.0.0") return;
    // Most recent last: past the bound, the address learned longest ago is forgotten (ARP still knows it).
    this.#learned.delete(address);
    this.#learned.set(address, mac);
    if (this.#learned.size > MAX_LEARNED) this.#learned.delete(this.#learned.keys().next().value!);
  }

  /** A lease of ours bound (an ACK): the address is that MAC's. */
  leased(mac: Mac, ip: number): void {
    this.learn(formatIPv4(ip), mac);
  }

  lookup(address: string): Mac | undefined {
    return this.#learned.get(address) ?? arpLookup(address);
  }
}

/**
 * The kernel's ARP table, read at most once a second (every HTTP and TFTP request asks: a lookup must stay
 * a map read), and again after 100 ms for an address it does not hold yet (a client new on the link).
 */
let arpTable: { at: number; table: Map<string, string> } | undefined;

function arpLookup(address: string): Mac | undefined {
  if (process.platform !== "darwin" && process.platform !== "linux") return undefined;
  const now = Date.now();
  if (!arpTable || now - arpTable.at > 1000 || (!arpTable.table.has(address) && now - arpTable.at > 100)) {
    arpTable = { at: now, table: process.platform === "darwin" ? readDarwinArp() : readLinuxArp() };
  }
  const mac = arpTable.table.get(address);
  return mac ? tryParseMac(mac) : undefined;
}

/** Linux: /proc/net/arp, "IP address  HW type  Flags  HW address  Mask  Device". */
function readLinuxArp(): Map<string, string> {
  const table = new Map<string, string>();
  try {
    for (const line of readFileSync("/proc/net/arp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[0] && f[3] && f[3] !== "00:00:00:00:00:00") table.set(f[0], f[3]);
    }
  } catch {
    // no ARP table to read
  }
  return table;
}

/** The sysctl binding, loaded once on darwin under Bun (a dynamic import: the Node bundle never loads bun:ffi). */
let darwinFfi: typeof import("./darwin-ffi.ts") | undefined;
if (process.platform === "darwin" && typeof Bun !== "undefined") {
  import("./darwin-ffi.ts").then(
    (m) => (darwinFfi = m),
    () => {},
  );
}

function readDarwinArp(): Map<string, string> {
  try {
    if (darwinFfi) return parseRouteDump(darwinFfi.routeDumpLlinfo());
  } catch {
    // fall through to arp(8)
  }
  try {
    return parseArpOutput(execFileSync("/usr/sbin/arp", ["-an"], { encoding: "utf8", timeout: 2000 }));
  } catch {
    return new Map();
  }
}
