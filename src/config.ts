/** What `netboot serve` runs with: one object, per-service sections, validated in one place. */
import { ConfigError } from "./errors.ts";
import { isValidImageName } from "./boot/image.ts";
import { formatIPv4, parseIPv4 } from "./wire/ipv4.ts";

export type DhcpMode = "auto" | "server" | "proxy" | "off";

export interface PoolSpec {
  start: string;
  end: string;
  /** Prefix length of the pool's subnet; the interface's for the local pool when absent. */
  prefix: number | undefined;
}

export interface ReservationSpec {
  mac: string;
  ip: string;
  hostname: string | undefined;
}

export interface ImageSpec {
  /** ISO file, directory, http(s) URL or zip. */
  source: string;
  /** Name in URLs; derived from the source when absent. */
  name: string | undefined;
}

export interface ServeConfig {
  /** Served images, side by side; a host without one of its own boots the first. */
  images: ImageSpec[];
  /** Address clients are told to use (boot.cfg prefix, DHCP siaddr). */
  ip: string;
  /** Address the HTTP/TFTP sockets listen on. */
  bind: string;
  /** The link netboot serves (DHCP answers only there). */
  iface: string | undefined;
  /** Prefix length of the served link (from the interface). */
  prefix: number | undefined;
  dhcp: {
    mode: DhcpMode;
    port: number;
    pxePort: number;
    pools: PoolSpec[];
    router: string | undefined;
    dns: string[];
    domain: string | undefined;
    leaseSeconds: number;
    reservations: ReservationSpec[];
    /** Start a DHCP server even though another one answers on the link. */
    force: boolean;
    /** How long --dhcp auto/server listen for other servers' offers: dnsmasq pings a new address for 3 s
     *  before its first OFFER (ISC dhcpd 1 s), so this must be longer. */
    probeMs: number;
    /** Where replies go instead of the broadcast address (tests and benchmarks on loopback). */
    transmit?: import("./dhcp/transmit.ts").TransmitOptions | undefined;
  };
  /** Apple BSDP for Intel Macs (bsdp/). */
  bsdp: {
    /** --no-bsdp turns it off. With --dhcp off it still answers BSDP alone, on --iface's link. */
    enabled: boolean;
    /** Sub-option 4 in ACK[LIST]: Macs pick the server with the highest (--bsdp-priority). */
    priority: number;
    /** TFTP path a Mac boots after SELECT (--mac-bootfile). */
    bootFile: string;
  };
  /** Leases and BSDP selections live here. */
  stateDir: string;
  /** --cache-dir: disk cache of URL blocks, and where compressed zip entries are unpacked (files/open.ts). */
  cacheDir: string | undefined;
  ipxe: {
    /** --ipxe-dir: where undionly.kpxe, snponly.efi and ipxe.efi are; embedded/system ones otherwise. */
    dir: string | undefined;
    /** --no-ipxe: UEFI PXE clients get the ESXi loader by TFTP directly. */
    disabled: boolean;
  };
  http: {
    port: number;
    /** Which HTTP server: Bun.serve or node:http (default: Bun.serve under Bun, unless a source is not local). */
    edge?: "bun" | "node" | undefined;
    /** Caps (http/server.ts HttpLimits, defaults HTTP_LIMITS); tests lower them to cross them. */
    limits?: Partial<Record<"maxActive" | "requestsPerConnection" | "headerTimeoutMs" | "keepAliveMs" | "idleSeconds" | "maxConnections", number>> | undefined;
  };
  tftp: {
    enabled: boolean;
    port: number;
    /** Largest blksize granted (RFC 2348 allows up to 65464; Mac firmware needs 1460 or less). */
    maxBlksize: number;
    /** Largest RFC 7440 windowsize granted. */
    maxWindowsize: number;
    /** "auto": the worker engine on Linux under Bun, the event loop elsewhere. */
    engine?: "auto" | "event-loop" | "worker" | undefined;
  };
  /** Which UDP sockets (TFTP, DHCP): Bun's or node:dgram (default: the runtime's own). */
  udp?: "bun" | "node" | undefined;
  /** Who may boot, without a lab file: --allow MAC,… lists machines (the rest get no boot answer); --allow-any lets any machine have the kickstart. */
  hosts: { allow: string[]; allowAny: boolean };
  /** Bytes of hot small files kept in memory (0: none); see files/cache.ts. */
  cacheMem: number;
  boot: {
    /** Kickstart file served at NAME/01-<mac>/ks.cfg and put into kernelopt. */
    ks: string | undefined;
    keepCdromBoot: boolean;
    extraKernelopt: string | undefined;
    /** --secure-boot: every UEFI PXE client gets the ESXi loader (signed by VMware) over TFTP, never iPXE. */
    secureBoot: boolean;
  };
}

/** Every setting's default, in one place. */
export function defaultConfig(source: string, ip: string): ServeConfig {
  return {
    images: [{ source, name: undefined }],
    hosts: { allow: [], allowAny: false },
    ip,
    bind: ip,
    iface: undefined,
    prefix: undefined,
    http: { port: 80 },
    cacheMem: 512 * 1024 * 1024,
    tftp: { enabled: true, port: 69, maxBlksize: 65464, maxWindowsize: 64 },
    dhcp: { mode: "auto", port: 67, pxePort: 4011, pools: [], router: undefined, dns: [], domain: undefined, leaseSeconds: 3600, reservations: [], force: false, probeMs: 6000 },
    bsdp: { enabled: true, priority: 0x8000, bootFile: "ipxe/snponly.efi" },
    stateDir: defaultStateDir(),
    cacheDir: undefined,
    ipxe: { dir: undefined, disabled: false },
    boot: { ks: undefined, keepCdromBoot: false, extraKernelopt: undefined, secureBoot: false },
  };
}

/** /var/lib/netboot as root, else $XDG_STATE_HOME/netboot or ~/.local/state/netboot. */
export function defaultStateDir(): string {
  if (process.getuid?.() === 0) return "/var/lib/netboot";
  const xdg = process.env.XDG_STATE_HOME;
  return xdg ? `${xdg}/netboot` : `${process.env.HOME ?? "."}/.local/state/netboot`;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** Defaults overlaid with what was given, one level of sections deep; `name` names the first image. */
export function makeConfig(source: string, ip: string, over: DeepPartial<ServeConfig> & { name?: string | undefined } = {}): ServeConfig {
  const base = defaultConfig(source, ip);
  if (over.name !== undefined) base.images[0]!.name = over.name;
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined || k === "name") continue;
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] = b && typeof b === "object" && !Array.isArray(b) && typeof v === "object" && !Array.isArray(v) ? { ...b, ...v } : v;
  }
  if (over.bind === undefined) out.bind = (out.ip as string) ?? ip;
  return out as unknown as ServeConfig;
}

export function validatePort(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError("E_PORT", `${what}: ${n} is not a port number (0-65535)`);
  return n;
}

export function validateServeConfig(c: ServeConfig): ServeConfig {
  if (c.images.length === 0 || c.images.some((i) => !i.source)) throw new ConfigError("E_SOURCE", "no image source given (an ESXi ISO file, or images: in a lab file)");
  for (const i of c.images) {
    if (i.name !== undefined && !isValidImageName(i.name)) {
      throw new ConfigError("E_NAME", `image name ${JSON.stringify(i.name)} (--name): use letters, digits, ".", "_" and "-" (and not a 01-<mac> name)`);
    }
  }
  c.ip = formatIPv4(parseIPv4(c.ip, "--ip"));
  c.bind = formatIPv4(parseIPv4(c.bind, "--bind"));
  validatePort(c.http.port, "--http-port");
  validatePort(c.tftp.port, "--tftp-port");
  validatePort(c.dhcp.port, "--dhcp-port");
  validatePort(c.dhcp.pxePort, "--pxe-port");
  if (!["auto", "server", "proxy", "off"].includes(c.dhcp.mode)) throw new ConfigError("E_DHCP_MODE", `--dhcp ${c.dhcp.mode}: use auto, server, proxy or off`);
  for (const p of c.dhcp.pools) {
    const a = parseIPv4(p.start, "--pool start");
    const b = parseIPv4(p.end, "--pool end");
    if (b < a) throw new ConfigError("E_POOL", `--pool ${p.start}-${p.end}: the end comes before the start`);
    if (p.prefix !== undefined && (p.prefix < 8 || p.prefix > 30)) throw new ConfigError("E_POOL", `--pool …/${p.prefix}: prefix must be 8..30`);
  }
  if (c.dhcp.router) parseIPv4(c.dhcp.router, "--router");
  for (const d of c.dhcp.dns) parseIPv4(d, "--dns");
  for (const r of c.dhcp.reservations) parseIPv4(r.ip, `--reserve address for ${r.mac}`);
  if (!Number.isInteger(c.dhcp.leaseSeconds) || c.dhcp.leaseSeconds < 60) throw new ConfigError("E_LEASE", "--lease-time: at least 60 seconds");
  if (!Number.isInteger(c.tftp.maxBlksize) || c.tftp.maxBlksize < 8 || c.tftp.maxBlksize > 65464) {
    throw new ConfigError("E_BLKSIZE", `--tftp-max-blksize: ${c.tftp.maxBlksize} is outside 8..65464 (RFC 2348)`);
  }
  if (!Number.isInteger(c.tftp.maxWindowsize) || c.tftp.maxWindowsize < 1 || c.tftp.maxWindowsize > 65535) {
    throw new ConfigError("E_WINDOWSIZE", `--tftp-max-windowsize: ${c.tftp.maxWindowsize} is outside 1..65535 (RFC 7440)`);
  }
  if (!Number.isInteger(c.bsdp.priority) || c.bsdp.priority < 0 || c.bsdp.priority > 65535) {
    throw new ConfigError("E_BSDP_PRIORITY", `--bsdp-priority: ${c.bsdp.priority} is outside 0..65535`);
  }
  c.bsdp.bootFile = c.bsdp.bootFile.replace(/^\/+/, "");
  if (!c.bsdp.bootFile || c.bsdp.bootFile.length > 127 || /[\0\\]|(^|\/)\.\.(\/|$)/.test(c.bsdp.bootFile)) {
    throw new ConfigError("E_MAC_BOOTFILE", `--mac-bootfile ${JSON.stringify(c.bsdp.bootFile)}: give a TFTP path of this server (at most 127 bytes, no "..")`);
  }
  if (!Number.isInteger(c.cacheMem) || c.cacheMem < 0) throw new ConfigError("E_CACHE", `--cache-mem: ${c.cacheMem} is not a size`);
  return c;
}

/** "http://10.0.0.1" or "http://10.0.0.1:8080": what goes in front of every URL we hand out. */
export function httpBase(ip: string, port: number): string {
  return port === 80 ? `http://${ip}` : `http://${ip}:${port}`;
}
