/**
 * Address pool for the full DHCP server: a range, static reservations, leases with expiry. Pure logic with
 * an injected clock; persistence is the caller's (every change is reported through onChange).
 * RFC 2131 §4.3.1 order for choosing an address: the client's current or previous address, the address
 * it asks for, then a free one.
 */
import { formatIPv4, inSubnet, type Subnet } from "../wire/ipv4.ts";
import type { Mac } from "../wire/mac.ts";

export type LeaseState = "offered" | "bound" | "declined" | "released";

export interface Lease {
  mac: Mac;
  ip: number;
  /** Epoch milliseconds. */
  expires: number;
  state: LeaseState;
  hostname?: string | undefined;
}

export interface Reservation {
  mac: Mac;
  ip: number;
  hostname?: string | undefined;
}

export interface PoolConfig {
  start: number;
  end: number;
  subnet: Subnet;
  /** Never handed out: the server's own address, the router, anything else in use. */
  exclude: readonly number[];
  reservations: readonly Reservation[];
  leaseSeconds: number;
  /** How long an OFFERed address is held for the client that was offered it (a listed host). */
  offerSeconds: number;
  /**
   * How long an offer to a MAC the lab does not list is held (default: offerSeconds). Short, so a flood of
   * DISCOVERs from made-up MACs holds the pool for seconds only.
   */
  unlistedOfferSeconds?: number;
  /**
   * The lab's hosts. When the pool is exhausted, one of them takes the oldest offer held by an unlisted MAC
   * (an offer is no promise: that client's REQUEST is NAKed and it starts over). Default: nobody is listed.
   */
  listed?: (mac: Mac) => boolean;
  /** How long an address a client DECLINEd (RFC 2131 §4.3.3: in use by someone) stays out of the pool. */
  declineSeconds: number;
}

export type RequestResult = { ok: true; lease: Lease } | { ok: false; reason: string };

export class LeasePool {
  readonly config: PoolConfig;
  readonly #now: () => number;
  readonly #byMac = new Map<Mac, Lease>();
  readonly #byIp = new Map<number, Lease>();
  readonly #reservedByMac = new Map<Mac, Reservation>();
  readonly #reservedIps = new Set<number>();
  readonly #excluded: Set<number>;
  #cursor: number;
  onChange: ((lease: Lease) => void) | undefined;

  constructor(config: PoolConfig, now: () => number = Date.now) {
    this.config = config;
    this.#now = now;
    this.#excluded = new Set(config.exclude);
    for (const r of config.reservations) {
      this.#reservedByMac.set(r.mac, r);
      this.#reservedIps.add(r.ip);
    }
    this.#cursor = config.start;
  }

  get size(): number {
    return this.config.end - this.config.start + 1;
  }

  /** Leases from storage; expired ones are kept (a client coming back gets its old address if free). */
  load(leases: Iterable<Lease>): void {
    for (const l of leases) this.#put({ ...l });
  }

  all(): Lease[] {
    return [...this.#byMac.values()];
  }

  byMac(mac: Mac): Lease | undefined {
    return this.#byMac.get(mac);
  }

  byIp(ip: number): Lease | undefined {
    return this.#byIp.get(ip);
  }

  /** Active (unexpired, bound or offered) lease of an address, if any. */
  holder(ip: number): Lease | undefined {
    const l = this.#byIp.get(ip);
    return l && this.#active(l) ? l : undefined;
  }

  /** DISCOVER: choose an address and hold it for this client. Undefined when the pool is exhausted. */
  offer(mac: Mac, requested?: number, hostname?: string): Lease | undefined {
    const now = this.#now();
    const ip = this.#choose(mac, requested);
    if (ip === undefined) return undefined;
    const current = this.#byMac.get(mac);
    // A bound lease stays bound (and keeps its expiry) while the client re-discovers.
    const state: LeaseState = current && current.ip === ip && current.state === "bound" && current.expires > now ? "bound" : "offered";
    const hold = this.#listed(mac) ? this.config.offerSeconds : (this.config.unlistedOfferSeconds ?? this.config.offerSeconds);
    const expires = state === "bound" ? current!.expires : now + hold * 1000;
    return this.#put({ mac, ip, expires, state, hostname: hostname ?? this.#reservedByMac.get(mac)?.hostname ?? current?.hostname });
  }

  /** REQUEST: bind `ip` to `mac` when it may be theirs. */
  request(mac: Mac, ip: number, hostname?: string): RequestResult {
    if (!this.#allowed(mac, ip)) return { ok: false, reason: `${formatIPv4(ip)} is not available to ${mac}` };
    const holder = this.holder(ip);
    if (holder && holder.mac !== mac) return { ok: false, reason: `${formatIPv4(ip)} is leased to ${holder.mac}` };
    const lease = this.#put({
      mac,
      ip,
      expires: this.#now() + this.config.leaseSeconds * 1000,
      state: "bound",
      hostname: hostname ?? this.#reservedByMac.get(mac)?.hostname ?? this.#byMac.get(mac)?.hostname,
    });
    return { ok: true, lease };
  }

  /** The client picked another server's offer: drop our hold. */
  forgetOffer(mac: Mac): void {
    const l = this.#byMac.get(mac);
    if (l && l.state === "offered") this.#put({ ...l, expires: this.#now(), state: "released" });
  }

  release(mac: Mac, ip: number): boolean {
    const l = this.#byMac.get(mac);
    if (!l || l.ip !== ip) return false;
    this.#put({ ...l, expires: this.#now(), state: "released" });
    return true;
  }

  /** DECLINE: the address is in use by someone else; keep it out of the pool for a while. */
  decline(mac: Mac, ip: number): boolean {
    const l = this.#byIp.get(ip);
    if (!l || l.mac !== mac) return false;
    this.#byMac.delete(mac);
    this.#put({ mac: `declined:${formatIPv4(ip)}`, ip, expires: this.#now() + this.config.declineSeconds * 1000, state: "declined" });
    return true;
  }

  /** True when the address belongs to the pool's subnet (reservations may lie outside the range). */
  inSubnet(ip: number): boolean {
    return inSubnet(ip, this.config.subnet);
  }

  // --- internal ---

  #listed(mac: Mac): boolean {
    return this.config.listed?.(mac) ?? false;
  }

  #active(l: Lease): boolean {
    return l.state !== "released" && l.expires > this.#now();
  }

  #inRange(ip: number): boolean {
    return ip >= this.config.start && ip <= this.config.end;
  }

  /** May `mac` have `ip` at all: its reservation, or a free dynamic address in the range. */
  #allowed(mac: Mac, ip: number): boolean {
    const r = this.#reservedByMac.get(mac);
    if (r) return r.ip === ip;
    return this.#inRange(ip) && !this.#excluded.has(ip) && !this.#reservedIps.has(ip);
  }

  #choose(mac: Mac, requested: number | undefined): number | undefined {
    const r = this.#reservedByMac.get(mac);
    if (r) return r.ip;
    const free = (ip: number) => this.#allowed(mac, ip) && (!this.holder(ip) || this.holder(ip)!.mac === mac);
    const current = this.#byMac.get(mac);
    if (current && current.state !== "declined" && free(current.ip)) return current.ip;
    if (requested !== undefined && free(requested)) return requested;
    // Fresh addresses first (never leased), then any expired one: scan from a cursor, twice round at most.
    const size = this.size;
    for (const pass of [0, 1]) {
      for (let i = 0; i < size; i++) {
        const ip = this.config.start + ((this.#cursor - this.config.start + i) % size);
        if (!free(ip)) continue;
        if (pass === 0 && this.#byIp.has(ip)) continue;
        this.#cursor = ip + 1 > this.config.end ? this.config.start : ip + 1;
        return ip;
      }
    }
    return this.#listed(mac) ? this.#oldestUnlistedOffer() : undefined;
  }

  /** The address of the oldest active offer to an unlisted MAC (what a listed host may take over). */
  #oldestUnlistedOffer(): number | undefined {
    let oldest: Lease | undefined;
    for (const l of this.#byIp.values()) {
      if (l.state !== "offered" || !this.#active(l) || this.#listed(l.mac) || !this.#inRange(l.ip)) continue;
      if (!oldest || l.expires < oldest.expires) oldest = l;
    }
    return oldest?.ip;
  }

  #put(lease: Lease): Lease {
    const prevForMac = this.#byMac.get(lease.mac);
    if (prevForMac && prevForMac.ip !== lease.ip && this.#byIp.get(prevForMac.ip) === prevForMac) this.#byIp.delete(prevForMac.ip);
    const prevForIp = this.#byIp.get(lease.ip);
    if (prevForIp && prevForIp.mac !== lease.mac && this.#byMac.get(prevForIp.mac) === prevForIp) this.#byMac.delete(prevForIp.mac);
    this.#byMac.set(lease.mac, lease);
    this.#byIp.set(lease.ip, lease);
    this.onChange?.(lease);
    return lease;
  }
}
