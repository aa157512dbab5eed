/**
 * Who `netboot reinstall` drives, and with what: hosts named on the command line (MAC or hostname), else
 * every host with a bmc:; each one's driver made now, its password read now (before root is dropped). Every
 * host that cannot be driven is one line; the caller refuses the run before anything starts.
 */
import type { Driver } from "../bmc/driver.ts";
import { errorMessage } from "../errors.ts";
import { readSecret, type HostBook, type HostEntry } from "../hosts/book.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import { driverFor, hostName, type Link } from "./drivers.ts";

export interface Targets {
  hosts: HostEntry[];
  drivers: Map<Mac, Driver>;
  /** Every secret the run knows (BMC passwords, the hosts' secret kickstart variables): never reported. */
  secrets: string[];
  /** One line per host that cannot be driven. */
  problems: string[];
}

export function selectTargets(book: HostBook, named: readonly string[], labPath: string, link: Link | undefined, env: NodeJS.ProcessEnv = process.env): Targets {
  const hosts: HostEntry[] = [];
  const problems: string[] = [];
  if (named.length) {
    for (const n of named) {
      const mac = tryParseMac(n);
      const h = book.hosts.find((x) => (mac ? x.mac === mac : x.hostname === n));
      if (!h) problems.push(`${n}: not a host of ${labPath} (a MAC or a hostname)`);
      else if (!h.bmc) problems.push(`${hostName(h)}: no bmc: in the lab file (${h.at}): netboot cannot power it`);
      else if (!hosts.includes(h)) hosts.push(h);
    }
  } else {
    hosts.push(...book.hosts.filter((h) => h.bmc));
    if (hosts.length === 0) problems.push(`${labPath}: no host has a bmc: (how netboot reaches its BMC)`);
  }
  for (const h of hosts) if (h.mode === "local") problems.push(`${hostName(h)}: mode local: it boots from its own disk, there is nothing to install`);
  const drivers = new Map<Mac, Driver>();
  const secrets: string[] = [];
  for (const h of hosts) {
    for (const k of h.secrets) if (h.vars[k]) secrets.push(h.vars[k]!);
    try {
      const b = h.bmc!;
      if (b.kind !== "wol") secrets.push(readSecret(b.password, `${h.at}: ${hostName(h)}: bmc.password`, env));
      drivers.set(h.mac, driverFor(h, link, env));
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  return { hosts, drivers, secrets, problems };
}
