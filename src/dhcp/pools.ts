/**
 * The address pools of --dhcp server: the link's subnet (or --pool ranges, a relayed subnet each), the
 * reservations (--reserve, and the lab file's host IPs with their hostnames), the leases loaded from and
 * written to this instance's lease store. Leases belong to the instance serving the link: they are never
 * in the shared host store (two DHCP servers on one link need split pools or failover, not a shared table).
 */
import { LIMITS, type ReservationSpec, type ServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { formatIPv4, inSubnet, parseIPv4, subnetOf } from "../wire/ipv4.ts";
import { parseMac, type Mac } from "../wire/mac.ts";
import { COMPACT_AFTER, openLeaseStore, type LeaseStore } from "./lease-store.ts";
import { LeasePool } from "./leases.ts";
import type { DhcpPlan, Link } from "./mode.ts";
import type { ScopedPool } from "./responders.ts";

export interface PoolSpecOut {
  start: number;
  end: number;
  prefix: number;
  /** Serves a relayed subnet, not the link itself. */
  relayed: boolean;
}

/** The ranges to lease: --pool's, else the link's whole subnet but its network and broadcast addresses. */
export function poolSpecs(config: ServeConfig, link: Link, serverIp: number): PoolSpecOut[] {
  const local = subnetOf(serverIp, link.prefix);
  if (config.dhcp.pools.length === 0) {
    if (link.prefix > 30) throw new ConfigError("E_POOL", `the link's subnet /${link.prefix} is too small for a pool; pass --pool`);
    return [{ start: local.network + 1, end: local.broadcast - 1, prefix: link.prefix, relayed: false }];
  }
  return config.dhcp.pools.map((p) => {
    const start = parseIPv4(p.start);
    const end = parseIPv4(p.end);
    const isLocal = inSubnet(start, local);
    const prefix = p.prefix ?? (isLocal ? link.prefix : 24);
    if (!inSubnet(end, subnetOf(start, prefix))) throw new ConfigError("E_POOL", `pool ${p.start}-${p.end}: not one /${prefix} subnet`);
    return { start, end, prefix, relayed: !isLocal };
  });
}

export function describePools(config: ServeConfig, link: Link, serverIp: number): string {
  return poolSpecs(config, link, serverIp)
    .map((p) => `${formatIPv4(p.start)}-${formatIPv4(p.end)}`)
    .join(", ");
}

export interface Pools {
  readonly scoped: ScopedPool[];
  readonly store: LeaseStore;
  /** The pool for a request: the one whose subnet holds the relay's address (giaddr), else the link's. */
  poolFor(giaddr: number): ScopedPool | undefined;
  /** The address a MAC holds a bound lease on, in any pool. */
  leasedAddress(mac: Mac): string | undefined;
  /** Writes a last snapshot of every lease and closes the journal. */
  close(): void;
}

/** The pools a DHCP plan needs: only a DHCP server hands out addresses (proxyDHCP and BSDP alone do not). */
export function poolsFor(plan: DhcpPlan, config: ServeConfig, book: { hosts: ReadonlyArray<{ mac: Mac; ip: string | undefined; hostname: string | undefined }>; lookup(mac: Mac): unknown }, log: Logger): Pools | undefined {
  if (plan.mode !== "server" || !plan.link) return undefined;
  return buildPools(config, plan.link, plan.serverIp, book.hosts, (m) => book.lookup(m) !== undefined, log);
}

/**
 * The pools with their leases loaded. `hosts` are the lab file's hosts with an IP (reservations beside
 * --reserve) and `listed` says which MACs the lab knows (their offers are held longer: see PoolConfig).
 */
export function buildPools(config: ServeConfig, link: Link, serverIp: number, hosts: ReadonlyArray<{ mac: Mac; ip: string | undefined; hostname: string | undefined }>, listed: (mac: Mac) => boolean, log: Logger): Pools {
  const store = openLeaseStore(config.stateDir, { warn: (m) => log.warn(m) });
  const given = (r: ReservationSpec) => parseMac(r.mac);
  const reservations = [
    ...config.dhcp.reservations.map((r) => ({ mac: given(r), ip: parseIPv4(r.ip), hostname: r.hostname })),
    ...hosts.filter((h) => h.ip && !config.dhcp.reservations.some((r) => given(r) === h.mac)).map((h) => ({ mac: h.mac, ip: parseIPv4(h.ip!), hostname: h.hostname })),
  ];
  const reservedMacs = new Set(reservations.map((r) => r.mac));
  const router = config.dhcp.router ? parseIPv4(config.dhcp.router) : undefined;
  const dns = config.dhcp.dns.map((d) => parseIPv4(d));
  const all = () => scoped.flatMap((s) => s.pool.all());
  const scoped = poolSpecs(config, link, serverIp).map((spec): ScopedPool => {
    const subnet = subnetOf(spec.start, spec.prefix);
    const pool = new LeasePool({
      start: spec.start,
      end: spec.end,
      subnet,
      exclude: [serverIp, ...(router ? [router] : []), subnet.network, subnet.broadcast],
      reservations: reservations.filter((r) => inSubnet(r.ip, subnet)),
      leaseSeconds: config.dhcp.leaseSeconds,
      offerSeconds: LIMITS.dhcp.offerSeconds,
      unlistedOfferSeconds: LIMITS.dhcp.unlistedOfferSeconds,
      listed: (mac) => listed(mac) || reservedMacs.has(mac),
      declineSeconds: LIMITS.dhcp.declineSeconds,
    });
    pool.load(store.loaded.filter((l) => inSubnet(l.ip, subnet)));
    pool.onChange = (l) => {
      store.record(l);
      if (store.pending >= COMPACT_AFTER) store.compact(all());
    };
    return { pool, net: { subnet, router: spec.relayed ? undefined : router, dns, domain: config.dhcp.domain }, relayed: spec.relayed };
  });
  log.info(`leases in ${store.dir} (${store.loaded.length} loaded); pools ${scoped.map((s) => `${formatIPv4(s.pool.config.start)}-${formatIPv4(s.pool.config.end)}/${s.net.subnet.prefix}${s.relayed ? " (relayed)" : ""}`).join(", ")}`);
  return {
    scoped,
    store,
    // A relay's address picks the pool of its subnet; that may be our own link too (a relay agent on the
    // same segment, or perfdhcp, which speaks as one).
    poolFor: (giaddr) => (giaddr ? scoped.find((s) => inSubnet(giaddr, s.net.subnet)) : scoped.find((s) => !s.relayed)),
    leasedAddress(mac) {
      const now = Date.now();
      for (const s of scoped) {
        const l = s.pool.byMac(mac);
        if (l && l.state === "bound" && l.expires > now) return formatIPv4(l.ip);
      }
      return undefined;
    },
    close() {
      store.compact(all());
      store.close();
    },
  };
}
