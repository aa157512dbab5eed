/**
 * Which DHCP role netboot takes on its link: the link itself (--iface, else the interface holding --ip),
 * and for --dhcp auto/server a look for other DHCP servers on it (probe.ts): auto becomes proxyDHCP beside
 * one, the server on an empty link; --dhcp server refuses to start beside one (a second server breaks
 * networks) unless --force.
 */
import type { DhcpMode, ServeConfig } from "../config.ts";
import { ConfigError, ServiceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { interfaceAddress, listIPv4 } from "../net/interfaces.ts";
import { parseIPv4 } from "../wire/ipv4.ts";
import { describePools } from "./pools.ts";
import { probeDhcpServers } from "./probe.ts";

export interface Link {
  iface: string | undefined;
  prefix: number;
  mac: string | undefined;
}

/** The served link: --iface, else the interface that holds --ip. */
export function resolveLink(config: ServeConfig): Link {
  if (config.iface) {
    const a = interfaceAddress(config.iface);
    return { iface: config.iface, prefix: config.prefix ?? a.prefix, mac: a.mac };
  }
  const owner = listIPv4().find((a) => a.address === config.ip);
  if (!owner) throw new ConfigError("E_DHCP_IFACE", `DHCP needs the link to serve: --ip ${config.ip} is not an address of this machine; pass --iface, or --dhcp off`);
  return { iface: owner.iface, prefix: owner.prefix, mac: owner.mac };
}

/** This machine has one link besides loopback: a DHCP socket that hears every interface hears only that one. */
export function singleLink(): boolean {
  return listIPv4().filter((a) => !a.address.startsWith("127.")).length <= 1;
}

/**
 * Under Node there is no FFI to tie the DHCP socket to one interface: on a machine with several links it
 * would answer all of them, so it refuses unless --force says every link may be answered.
 */
export function checkNodeCanKeepToLink(config: ServeConfig, link: Link, single = singleLink()): void {
  if (!link.iface || typeof Bun !== "undefined" || single || config.dhcp.force) return;
  throw new ServiceError(
    "E_DHCP_NODE_IFACE",
    `under Node the DHCP socket cannot be tied to ${link.iface}, and this machine has several interfaces: it would answer on all of them`,
    "run the Bun build (dist/netboot-*) or pass --force if every link may be answered",
  );
}

/** The mode to run in: --dhcp as given, or what auto found on the link. `pools` describes the pools a server would lease. */
export async function chooseDhcpMode(config: ServeConfig, link: Link, serverIp: number, log: Logger, pools: () => string): Promise<DhcpMode> {
  const mode = config.dhcp.mode;
  if (mode === "off" || mode === "proxy" || (mode === "server" && config.dhcp.force)) return mode;
  if (!link.iface || !link.mac) {
    if (mode === "auto") {
      log.warn(`no interface MAC to probe ${link.iface ?? "the link"} with: choosing proxyDHCP, the mode that cannot break a network`);
      return "proxy";
    }
    return mode;
  }
  log.info(`looking for other DHCP servers on ${link.iface} (${(config.dhcp.probeMs / 1000).toFixed(1)} s)…`);
  const probe = await probeDhcpServers({ iface: link.iface, mac: link.mac, ownIp: serverIp, log, timeoutMs: config.dhcp.probeMs, runtime: config.udp });
  const found = probe.servers.length > 0 || probe.uncertain !== undefined;
  const what = probe.servers.length ? `DHCP server(s) ${probe.servers.join(", ")} answered` : (probe.uncertain ?? "no other DHCP server answered");
  if (mode === "server") {
    if (found) {
      throw new ServiceError("E_DHCP_OTHER_SERVER", `--dhcp server refused: ${what} on ${link.iface}; a second DHCP server breaks networks`, "use --dhcp proxy (or auto), or --force if you are sure");
    }
    return "server";
  }
  if (found) {
    log.warn(`--dhcp auto: ${what} on ${link.iface}, so netboot runs as proxyDHCP beside it (addresses come from that server)`);
    return "proxy";
  }
  log.warn(`--dhcp auto: ${what} on ${link.iface}, so netboot runs as the DHCP server for this link (pool ${pools()})`);
  return "server";
}

/** What DHCP does on this run: the mode (after the probe), whether BSDP is answered, on which link. */
export interface DhcpPlan {
  mode: DhcpMode;
  bsdp: boolean;
  link: Link | undefined;
  serverIp: number;
  /** The PXE boot-server port (4011), or null: BSDP alone needs none. */
  pxePort: number | null;
  /** Broadcasts are answered without checking which interface they came in on (one link, or --force). */
  allowUnfiltered: boolean;
}

/**
 * Run before any socket of ours is bound (the probe listens as a DHCP client would, as root): nothing is
 * served while it waits. --dhcp off still answers BSDP, but only on a link named with --iface.
 */
export async function planDhcp(config: ServeConfig, log: Logger): Promise<DhcpPlan> {
  const serverIp = parseIPv4(config.ip);
  const bsdp = config.bsdp.enabled && (config.dhcp.mode !== "off" || config.iface !== undefined);
  if (config.bsdp.enabled && !bsdp) log.info("BSDP not answered: --dhcp off without --iface (give --iface to answer Macs, or --no-bsdp)");
  const single = singleLink();
  const allowUnfiltered = config.dhcp.force || single;
  if (config.dhcp.mode === "off" && !bsdp) return { mode: "off", bsdp, link: undefined, serverIp, pxePort: null, allowUnfiltered };
  const link = resolveLink(config);
  // Before the probe's seconds: its answer does not depend on the mode.
  checkNodeCanKeepToLink(config, link, single);
  const mode = await chooseDhcpMode(config, link, serverIp, log, () => describePools(config, link, serverIp));
  return { mode, bsdp, link, serverIp, pxePort: mode === "off" ? null : config.dhcp.pxePort, allowUnfiltered };
}

/** The log's line for what DHCP does on this run. */
export function dhcpLine(plan: DhcpPlan, server: { binding: string; port: number; pxePort: number | undefined }): string {
  const what = plan.mode === "server" ? "DHCP server" : plan.mode === "proxy" ? "proxyDHCP" : "BSDP only (no DHCP)";
  return `${what} on ${plan.link?.iface ?? "all interfaces"} (${server.binding}), port ${server.port}${server.pxePort ? ` and ${server.pxePort}` : ""}${plan.bsdp && plan.mode !== "off" ? "; BSDP for Macs" : ""}`;
}
