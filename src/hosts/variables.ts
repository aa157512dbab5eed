/** A host's kickstart variables: its own and the defaults' (lab.yaml vars:), then the built-ins (boot/kickstart.ts). */
import { networkLine } from "../boot/kickstart.ts";
import { DEFAULTS, type ServeConfig } from "../config.ts";
import { formatIPv4, parseIPv4, subnetOf } from "../wire/ipv4.ts";
import type { Mac } from "../wire/mac.ts";
import type { HostEntry } from "./book.ts";

export interface SiteFacts {
  /** "http://IP[:PORT]" */
  base: string;
  netmask: string | undefined;
  gateway: string | undefined;
  dns: readonly string[];
}

/** The network as this run hands it out (the link's mask, --router, --dns) and the HTTP base. */
export function siteFacts(config: ServeConfig, base: string): SiteFacts {
  return { base, netmask: formatIPv4(subnetOf(parseIPv4(config.ip), config.prefix ?? DEFAULTS.prefix).mask), gateway: config.dhcp.router, dns: config.dhcp.dns };
}

export function kickstartVariables(entry: HostEntry | undefined, mac: Mac, image: string, site: SiteFacts, leasedIp: string | undefined, token: string): Record<string, string> {
  const ip = entry?.ip ?? leasedIp;
  const api = `${site.base}/api/hosts/${mac}`;
  return {
    ...(entry?.vars ?? {}),
    hostname: entry?.hostname ?? "",
    ip: ip ?? "",
    netmask: site.netmask ?? "",
    gateway: site.gateway ?? "",
    dns: site.dns.join(","),
    mac,
    image,
    server: site.base,
    done_url: `${api}/done?token=${token}`,
    failed_url: `${api}/failed?token=${token}`,
    firstboot_url: `${api}/firstboot?token=${token}`,
    network: networkLine({ mac, hostname: entry?.hostname, ip, netmask: ip ? site.netmask : undefined, gateway: site.gateway, dns: site.dns }),
  };
}

/** The same variables with every secret replaced, for printing (netboot check). */
export function redacted(vars: Record<string, string>, entry: HostEntry | undefined): Record<string, string> {
  const out = { ...vars };
  for (const k of entry?.secrets ?? []) out[k] = "********";
  return out;
}
