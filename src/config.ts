/**
 * What `netboot serve` runs with, and every default and bound, written once here: DEFAULTS (what a flag or
 * a lab file's server: key changes), LIMITS (caps, waits and memory bounds of the servers), RANGES (what
 * the protocols allow a setting to be). `cli/args.ts` and `--help` read them; each unit imports its own
 * section. A leaf: it imports nothing above errors and wire, so every unit may import it.
 */
import { ConfigError } from "./errors.ts";
import { formatIPv4, parseIPv4 } from "./wire/ipv4.ts";

export type DhcpMode = "auto" | "server" | "proxy" | "off";

const KiB = 1024;
const MiB = 1024 * 1024;

/** The boot namespace's iPXE binaries (boot/files.ts serves them, the policy hands them out). */
export const IPXE_PATH = { bios: "ipxe/undionly.kpxe", efi: "ipxe/snponly.efi" } as const;

/** What the protocols allow a setting to be. */
export const RANGES = {
  /** RFC 2348: "valid values range between 8 and 65464 octets, inclusive". */
  tftpBlksize: { min: 8, max: 65464 },
  /** RFC 7440. */
  tftpWindowsize: { min: 1, max: 65535 },
  port: { min: 0, max: 65535 },
  bsdpPriority: { min: 0, max: 65535 },
  /** A pool's prefix length. */
  poolPrefix: { min: 8, max: 30 },
  leaseSeconds: { min: 60 },
  /** The BOOTP header's `file` field holds 128 bytes with its NUL. */
  bootFileBytes: 127,
} as const;

/** Every default a user can change, by the flag that changes it. */
export const DEFAULTS = {
  httpPort: 80,
  tftpPort: 69,
  dhcpPort: 67,
  pxePort: 4011,
  dhcpMode: "auto" as DhcpMode,
  leaseSeconds: 3600,
  /** --cache-mem, in MiB. */
  cacheMemMiB: 512,
  tftpMaxBlksize: RANGES.tftpBlksize.max,
  tftpMaxWindowsize: 64,
  /** bsdp.h BSDP_PRIORITY_BASE; the seed recipe sends 0x8000 too. */
  bsdpPriority: 0x8000,
  macBootFile: IPXE_PATH.efi,
  /**
   * How long --dhcp auto/server listen for other servers' offers: dnsmasq pings a new address for 3 s
   * before its first OFFER (ISC dhcpd 1 s), so this must be longer.
   */
  probeMs: 6000,
  /** A link's prefix length where the interface does not say (the served subnet, the Wake-on-LAN broadcast). */
  prefix: 24,
  /** --state-dir and --cache-dir as root; other users get XDG's directories (defaultStateDir, defaultCacheDir). */
  stateDirRoot: "/var/lib/netboot",
  cacheDirRoot: "/var/cache/netboot",
} as const;

/** Caps, waits and memory bounds of the servers. */
export const LIMITS = {
  http: {
    /** Answers being sent at once (a module download holds one until its last byte); past it, 503. */
    maxActive: 1024,
    /** Requests on one keep-alive connection; the last one's answer says `Connection: close`. */
    requestsPerConnection: 1000,
    /** Connections whose request count is kept (the oldest are forgotten first). */
    connectionsCounted: 8192,
    /** node:http: time to receive a request's headers (Bun: its own, about 10 s). */
    headerTimeoutMs: 10_000,
    /** Request headers at most (Bun's uWebSockets: the same, else 431). */
    headerBytes: 16 * KiB,
    /** node:http: an idle keep-alive connection is closed after this (Bun: the idle timeout below). */
    keepAliveMs: 30_000,
    /** Seconds without a byte moving either way before a connection is closed (idle or stalled). */
    idleSeconds: 120,
    /** node:http: connections at once; more are closed at accept (Bun has no such switch). */
    maxConnections: 4096,
    /** The largest request body read (an installer's log sent to failed_url). */
    maxBody: 4 * MiB,
    /** Retry-After of a 503 when every answer slot is taken, and when the image source is unreachable. */
    busyRetryAfterSeconds: 5,
    unavailableRetryAfterSeconds: 30,
    /** Bytes handed to a socket at once from memory (node:http: one piece per drain). */
    streamChunk: 1 * MiB,
    /** A remote file's window answered from one read when it is at most this. */
    memoryBody: 64 * MiB,
    /** A local file is kept in the hot-file cache when it is at most this (larger ones go out by sendfile). */
    localCacheMax: 4 * MiB,
  },
  tftp: {
    /**
     * Transfers at once, and per client address. Past maxPerClient a request is refused "server busy";
     * past maxTransfers it waits for a slot (a rack powered on at once is not refused), up to maxQueued
     * requests, each at most queuedMs (its client has sent it again by then, or given up).
     */
    maxTransfers: 512,
    maxPerClient: 16,
    maxQueued: 4096,
    queuedMs: 10_000,
    /** Netascii needs the converted size up front (tsize): the whole file is converted in memory. */
    maxNetascii: 16 * MiB,
    /** Blocks in flight granted by default (RFC 7440). */
    maxWindowsize: DEFAULTS.tftpMaxWindowsize,
    /**
     * tftpblksize= in a boot.cfg read over TFTP (mboot asks for 1468 otherwise, esx-boot tftpfile.c):
     * larger blocks halve the loader's transfer time (measured under QEMU: 34 MB in 2.5 s at 16384, 4.9 s
     * at 1468, 2.5 s at 65464); capped by --tftp-max-blksize.
     */
    bootCfgBlksize: 16384,
    /** Intel Mac firmware's TFTP client fails with blocks larger than an Ethernet frame's payload allows. */
    macFirmwareBlksize: 1460,
    /** macOS caps a UDP datagram at 9,216 bytes by default (xnu bsd/netinet/udp_usrreq.c, udp_sendspace). */
    darwinMaxDatagram: 9216,
    /** How often a running transfer's progress goes on the bus. */
    progressMs: 1000,
    /**
     * Retransmission: back-off doubles to 8 s (atftp 0.8 with windowsize re-acknowledges only after 5 s of
     * silence); ten timeouts in a row end a transfer, three when the client never answered at all. The
     * first wait for ACK 0 after an OACK is two of the client's own timers and a margin: oackMs (atftp's
     * timer is 5 s), or twice its negotiated timeout plus oackSlackMs. A client whose ACK 0 was lost sends
     * it again itself (twice, before a second OACK goes out); one that never got the OACK sends its RRQ
     * again. atftp aborts on a second OACK (tftp_file.c, "unexpected OACK").
     */
    timing: { initialMs: 500, minMs: 10, maxMs: 8000, retries: 10, firstRetries: 3, oackMs: 11000, oackSlackMs: 1000 },
  },
  dhcp: {
    /** Answers per MAC: a burst, then so many a second; the buckets are bounded. */
    rate: { burst: 20, perSecond: 5, maxClients: 8192 },
    /** How long an offer is held for a lab's host, and for any other MAC (short: a flood cannot hold the pool). */
    offerSeconds: 60,
    unlistedOfferSeconds: 10,
    /** An address a client DECLINEd (in use on the link) is not offered again for this long. */
    declineSeconds: 600,
    /** Lease journal lines before it is folded into a new snapshot. */
    journalCompactAfter: 20_000,
  },
  hosts: {
    /** Unlisted machines followed in memory at most; the ones seen longest ago go first. */
    maxUnlisted: 1024,
    /** Unlisted MACs the host store keeps a fact for (a Mac's selection, a Secure Boot mark) at most. */
    maxStoredUnlisted: 4096,
    /** Events kept per machine (the status page, /api/hosts/<mac>). */
    recentEvents: 10,
    /** The rate of a machine's download is measured over this window. */
    rateWindowMs: 5000,
    /** How long after snponly.efi went out a firmware DHCP request still means "iPXE never started". */
    ipxeStartWindowMs: 120_000,
    /** The installer's log kept from failed_url, at most. */
    maxFailureLog: 1 * MiB,
    /** Host journal lines (file store) before it is folded into a new snapshot. */
    journalCompactAfter: 10_000,
    /** A host store that does not answer within this at start stops the start. */
    connectMs: 5000,
    /** Addresses whose MAC was learned from DHCP, remembered at most (ARP knows the rest). */
    maxNeighbors: 8192,
    /** How often the hint watcher looks at every machine. */
    hintEveryMs: 2000,
    /** A write that failed is tried again after this, doubling up to the next. */
    retryFirstMs: 250,
    retryMaxMs: 30_000,
    /** At stop, writes still queued get this long to land. */
    closeWaitMs: 5000,
    /** `netboot hosts` waits this long for a running server to read what it wrote (file store). */
    wakeWaitMs: 2000,
    /** PostgreSQL: connections at most, and seconds an idle one is kept. */
    pgConnections: 8,
    pgIdleSeconds: 60,
    /** PostgreSQL: the writes of this many milliseconds go in one statement (the DHCP answers first). */
    pgBatchMs: 20,
  },
  /**
   * What a healthy link's firmware and loaders take between steps, with room (the QEMU lab's timings):
   * past these a machine's state gets a hint (hosts/explain.ts).
   */
  waits: {
    request: 10_000,
    bootFile: 20_000,
    script: 25_000,
    loader: 20_000,
    bootcfg: 20_000,
    module: 30_000,
    stall: 60_000,
    kickstart: 180_000,
    quiet: 60_000,
    /** From the installer's done to the installed system answering: a reboot, ESXi's first boot (about 2-5 min on servers). */
    verify: 600_000,
  },
  api: {
    /** An idle event stream gets a comment this often (proxies and Bun's idle timer keep it open). */
    heartbeatMs: 15_000,
  },
  url: {
    /** Range requests of a URL source: block size, blocks in memory, read-ahead, requests at once, retries. */
    blockSize: 1 * MiB,
    memoryBytes: 64 * MiB,
    readAhead: 4,
    maxConcurrent: 8,
    retries: 5,
    backoffMs: 100,
    timeoutMs: 30_000,
  },
  /** Talking to machines' BMCs (src/bmc/) and driving them (netboot reinstall, netboot power). */
  bmc: {
    /** IPMI over LAN (UDP 623): an answer is waited for this long, and a request is sent so many times. */
    ipmiPort: 623,
    ipmiWaitMs: 1000,
    ipmiTries: 4,
    /** Redfish: one HTTP request may take this long; a failed one is tried again so many times, backing off from the next. */
    redfishTimeoutMs: 30_000,
    redfishTries: 3,
    backoffMs: 1000,
    /** Wake-on-LAN: the magic packet goes to UDP 9 of the link's broadcast, so many times, this far apart. */
    wolPort: 9,
    wolRepeats: 3,
    wolGapMs: 100,
  },
  /** netboot reinstall: driving machines to their installer and back. */
  drive: {
    /**
     * A machine powered on that shows no sign of life within this is cycled again (--sign-of-life). A
     * server's POST (memory training, option ROMs) takes 1-4 min before its NIC's first DHCP; 5 min covers
     * it without leaving a dead machine unnoticed for long.
     */
    signOfLifeMs: 300_000,
    /** Defaults of --stagger, --batch, --retries, --timeout. */
    staggerMs: 30_000,
    batch: 8,
    retries: 1,
    timeoutMs: 3_600_000,
    /** The installed ESXi's HTTPS port, how often it is asked for its build, and how long one ask waits. */
    httpsPort: 443,
    probeEveryMs: 10_000,
    probeTimeoutMs: 5000,
    /** How often a driven host's state is looked at while the drive waits. */
    pollMs: 250,
  },
  /** DHCP and TFTP requests held while the servers are bound but not serving yet (root being dropped, the state opening). */
  heldBeforeReady: 1024,
  /**
   * The receive buffer asked for on the DHCP, proxyDHCP and TFTP listening sockets (the kernel doubles it):
   * a burst of 1,000 machines' DISCOVERs is about 2.3 MB of socket buffers on a veth, more on NICs whose
   * receive buffers are whole pages. Linux's default (212,992 bytes) held about 90: the rest were dropped.
   */
  listenReceiveBuffer: 4 * MiB,
  /** State files: a lock is waited for this long; a lock file whose writer's PID is unknown is stale after the next. */
  lock: { waitMs: 5000, staleMs: 60_000 },
  /** A directory source's listing is read again after this (a mounted ISO does not change; an edited tree may). */
  dirListingTtlMs: 2000,
} as const;

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

/** Where DHCP replies go instead of the broadcast address (tests and benchmarks on loopback). */
export interface TransmitOptions {
  /** Client port (68); tests move it. */
  clientPort?: number;
  /** Limited broadcast address (255.255.255.255); tests point it at loopback. */
  broadcastAddress?: string;
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
    /** How long --dhcp auto/server listen for other servers' offers (DEFAULTS.probeMs). */
    probeMs: number;
    transmit?: TransmitOptions | undefined;
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
  /** Leases, and the host store's files when --store is not given. */
  stateDir: string;
  /** --store postgres://…: the host store several instances share; the file store in stateDir when absent. */
  store: string | undefined;
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
    /** Caps (LIMITS.http); tests lower them to cross them. */
    limits?: Partial<HttpLimits> | undefined;
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

export type HttpLimits = Record<"maxActive" | "requestsPerConnection" | "headerTimeoutMs" | "keepAliveMs" | "idleSeconds" | "maxConnections", number>;

/** Every setting's default. */
export function defaultConfig(source: string, ip: string): ServeConfig {
  return {
    images: [{ source, name: undefined }],
    hosts: { allow: [], allowAny: false },
    ip,
    bind: ip,
    iface: undefined,
    prefix: undefined,
    http: { port: DEFAULTS.httpPort },
    cacheMem: DEFAULTS.cacheMemMiB * MiB,
    tftp: { enabled: true, port: DEFAULTS.tftpPort, maxBlksize: DEFAULTS.tftpMaxBlksize, maxWindowsize: DEFAULTS.tftpMaxWindowsize },
    dhcp: { mode: DEFAULTS.dhcpMode, port: DEFAULTS.dhcpPort, pxePort: DEFAULTS.pxePort, pools: [], router: undefined, dns: [], domain: undefined, leaseSeconds: DEFAULTS.leaseSeconds, reservations: [], force: false, probeMs: DEFAULTS.probeMs },
    bsdp: { enabled: true, priority: DEFAULTS.bsdpPriority, bootFile: DEFAULTS.macBootFile },
    stateDir: defaultStateDir(),
    store: undefined,
    cacheDir: undefined,
    ipxe: { dir: undefined, disabled: false },
    boot: { ks: undefined, keepCdromBoot: false, extraKernelopt: undefined, secureBoot: false },
  };
}

/** DEFAULTS.stateDirRoot as root, else $XDG_STATE_HOME/netboot or ~/.local/state/netboot. */
export function defaultStateDir(): string {
  if (process.getuid?.() === 0) return DEFAULTS.stateDirRoot;
  const xdg = process.env.XDG_STATE_HOME;
  return xdg ? `${xdg}/netboot` : `${process.env.HOME ?? "."}/.local/state/netboot`;
}

/** DEFAULTS.cacheDirRoot as root, else $XDG_CACHE_HOME/netboot or ~/.cache/netboot. */
export function defaultCacheDir(): string {
  if (process.getuid?.() === 0) return DEFAULTS.cacheDirRoot;
  const xdg = process.env.XDG_CACHE_HOME;
  return xdg ? `${xdg}/netboot` : `${process.env.HOME ?? "."}/.cache/netboot`;
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
  if (!Number.isInteger(n) || n < RANGES.port.min || n > RANGES.port.max) throw new ConfigError("E_PORT", `${what}: ${n} is not a port number (${RANGES.port.min}-${RANGES.port.max})`);
  return n;
}

/** Checks what the CLI and the lab file gave, in the words of the flag that gave it. */
export function validateServeConfig(c: ServeConfig): ServeConfig {
  if (c.images.length === 0 || c.images.some((i) => !i.source)) throw new ConfigError("E_SOURCE", "no image source given (an ESXi ISO file, or images: in a lab file)");
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
    const { min, max } = RANGES.poolPrefix;
    if (p.prefix !== undefined && (p.prefix < min || p.prefix > max)) throw new ConfigError("E_POOL", `--pool …/${p.prefix}: prefix must be ${min}..${max}`);
  }
  if (c.dhcp.router) parseIPv4(c.dhcp.router, "--router");
  for (const d of c.dhcp.dns) parseIPv4(d, "--dns");
  for (const r of c.dhcp.reservations) parseIPv4(r.ip, `--reserve address for ${r.mac}`);
  if (!Number.isInteger(c.dhcp.leaseSeconds) || c.dhcp.leaseSeconds < RANGES.leaseSeconds.min) throw new ConfigError("E_LEASE", `--lease-time: at least ${RANGES.leaseSeconds.min} seconds`);
  const blk = RANGES.tftpBlksize;
  if (!Number.isInteger(c.tftp.maxBlksize) || c.tftp.maxBlksize < blk.min || c.tftp.maxBlksize > blk.max) {
    throw new ConfigError("E_BLKSIZE", `--tftp-max-blksize: ${c.tftp.maxBlksize} is outside ${blk.min}..${blk.max} (RFC 2348)`);
  }
  const win = RANGES.tftpWindowsize;
  if (!Number.isInteger(c.tftp.maxWindowsize) || c.tftp.maxWindowsize < win.min || c.tftp.maxWindowsize > win.max) {
    throw new ConfigError("E_WINDOWSIZE", `--tftp-max-windowsize: ${c.tftp.maxWindowsize} is outside ${win.min}..${win.max} (RFC 7440)`);
  }
  const pri = RANGES.bsdpPriority;
  if (!Number.isInteger(c.bsdp.priority) || c.bsdp.priority < pri.min || c.bsdp.priority > pri.max) {
    throw new ConfigError("E_BSDP_PRIORITY", `--bsdp-priority: ${c.bsdp.priority} is outside ${pri.min}..${pri.max}`);
  }
  c.bsdp.bootFile = c.bsdp.bootFile.replace(/^\/+/, "");
  if (!c.bsdp.bootFile || c.bsdp.bootFile.length > RANGES.bootFileBytes || /[\0\\]|(^|\/)\.\.(\/|$)/.test(c.bsdp.bootFile)) {
    throw new ConfigError("E_MAC_BOOTFILE", `--mac-bootfile ${JSON.stringify(c.bsdp.bootFile)}: give a TFTP path of this server (at most ${RANGES.bootFileBytes} bytes, no "..")`);
  }
  if (!Number.isInteger(c.cacheMem) || c.cacheMem < 0) throw new ConfigError("E_CACHE", `--cache-mem: ${c.cacheMem} is not a size`);
  if (c.store !== undefined) checkStoreUrl(c.store);
  return c;
}

/** --store takes a PostgreSQL URL (without it: the file store in --state-dir). */
export function checkStoreUrl(url: string): void {
  if (!/^postgres(ql)?:\/\//i.test(url)) throw new ConfigError("E_STORE", `--store ${JSON.stringify(redactUrl(url))}: give a PostgreSQL URL (postgres://USER@HOST[:PORT]/DB), or leave it out for the file store in --state-dir`);
}

/** "http://10.0.0.1" or "http://10.0.0.1:8080": what goes in front of every URL we hand out. */
export function httpBase(ip: string, port: number): string {
  return port === DEFAULTS.httpPort ? `http://${ip}` : `http://${ip}:${port}`;
}

/** Query parameters of a URL that carry a password (libpq's password and sslpassword, and the usual pass). */
const SECRET_PARAMS = ["password", "sslpassword", "pass", "passwd"];

/**
 * A URL as it may be shown. "password" (a store's URL): the password replaced by ****, in the user part (up
 * to the last @ before the query, so a password with an unescaped @ or / goes whole) and in the query
 * (?password=). "credentials" (an image source's URL, which may be signed in its query): the user part and
 * the whole query go.
 */
export function redactUrl(url: string, what: "password" | "credentials" = "password"): string {
  const userPart = url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@?#]*):[^?#]*@/i, "$1:****@");
  let u: URL;
  try {
    u = new URL(userPart);
  } catch {
    return what === "credentials" ? userPart.replace(/\?.*$/, "?…") : userPart.replace(/([?&](?:ssl)?pass(?:word|wd)?=)[^&#]*/gi, "$1****");
  }
  if (what === "credentials") {
    if (u.username || u.password) {
      u.username = "***";
      u.password = "";
    }
    const query = u.search ? "?…" : "";
    u.search = "";
    u.hash = "";
    return u.toString() + query;
  }
  let changed = false;
  for (const k of [...u.searchParams.keys()]) {
    if (SECRET_PARAMS.includes(k.toLowerCase())) {
      u.searchParams.set(k, "****");
      changed = true;
    }
  }
  return changed ? u.toString() : userPart;
}

/** The one line of `serve --help` that states the servers' bounds (read from LIMITS). */
export function boundsText(): string {
  const { http, tftp, dhcp } = LIMITS;
  return (
    `Bounds: DHCP/BSDP answers ${dhcp.rate.burst} at once then ${dhcp.rate.perSecond}/s per MAC, offers to unlisted MACs held ${dhcp.unlistedOfferSeconds} s (listed ${dhcp.offerSeconds} s), ACKs sent after the lease is fsynced; ` +
    `TFTP ${tftp.maxTransfers} transfers, ${tftp.maxPerClient} per address (error "server busy"); ` +
    `HTTP ${http.maxActive} answers at once (503 + Retry-After), ${http.requestsPerConnection} requests per connection, headers ${http.headerBytes / KiB} KiB within ${http.headerTimeoutMs / 1000} s, ${http.idleSeconds} s idle`
  );
}
