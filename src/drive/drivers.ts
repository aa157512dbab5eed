/** A host's Driver from its lab entry (bmc:), its password read only now; WoL from the serving link. */
import { IpmiDriver } from "../bmc/ipmi.ts";
import { RedfishDriver } from "../bmc/redfish.ts";
import { WolDriver } from "../bmc/wol.ts";
import type { Driver } from "../bmc/driver.ts";
import { ConfigError } from "../errors.ts";
import { readSecret, type HostEntry } from "../hosts/book.ts";

export const hostName = (h: HostEntry) => h.hostname ?? h.mac;

/** The link a magic packet leaves by: the serving address and its prefix. */
export interface Link {
  address: string;
  prefix: number;
}

export function driverFor(h: HostEntry, link: Link | undefined, env: NodeJS.ProcessEnv = process.env): Driver {
  const b = h.bmc;
  const who = `${h.at}: ${hostName(h)}: bmc.password`;
  if (!b) throw new ConfigError("E_NO_BMC", `${hostName(h)} has no bmc: in the lab file (${h.at}): netboot cannot power it`);
  if (b.kind === "redfish") return new RedfishDriver({ url: b.url, user: b.user, password: readSecret(b.password, who, env), ca: b.ca, insecure: b.insecure, system: b.system });
  if (b.kind === "ipmi") return new IpmiDriver({ host: b.host, port: b.port, user: b.user, password: readSecret(b.password, who, env), cipherSuite: b.cipher });
  if (!link) throw new ConfigError("E_NO_LINK", `${hostName(h)}: Wake-on-LAN needs the link: give --iface (or server: iface: in the lab file)`);
  return new WolDriver(h.mac, link);
}
