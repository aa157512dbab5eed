/** Argument definitions shared by the commands, and the pure translation from parsed args to config. */
import type { ArgsDef } from "citty";
import type { DhcpMode, PoolSpec, ReservationSpec, ServeConfig } from "../config.ts";
import { makeConfig, validateServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { defaultAddress, interfaceAddress, type InterfaceAddress } from "../net/interfaces.ts";
import { parseMac } from "../wire/mac.ts";
import { logArgs } from "./common.ts";

export const sourceArg = {
  source: { type: "positional", required: true, description: "ESXi installer: ISO file, directory (mounted or extracted), http(s) URL of an ISO, or zip", valueHint: "SOURCE" },
  "cache-dir": { type: "string", description: "Disk cache for URL sources (blocks kept across runs) and where compressed zip entries are unpacked (default for zips: /var/cache/netboot as root, else ~/.cache/netboot)", valueHint: "DIR" },
} as const satisfies ArgsDef;

export const serveArgs = {
  ...sourceArg,
  iface: { type: "string", description: "The link to serve: its address is the server's, DHCP answers only there", valueHint: "NAME" },
  ip: { type: "string", description: "Address clients use to reach this server (default: --iface's, else the first non-loopback IPv4)", valueHint: "ADDR" },
  bind: { type: "string", description: "Address HTTP and TFTP listen on (default: the --ip address; 0.0.0.0 for all)", valueHint: "ADDR" },
  "http-port": { type: "string", default: "80", description: "HTTP port", valueHint: "N" },
  name: { type: "string", description: "Image name in URLs (default: from the ISO file name)", valueHint: "NAME" },
  ks: { type: "string", description: "Kickstart file: served at /NAME/01-<mac>/ks.cfg and put into kernelopt as ks=…", valueHint: "FILE" },
  "keep-cdromboot": { type: "boolean", description: "Keep cdromBoot in kernelopt (dropped by default for network installs)" },
  kernelopt: { type: "string", description: "Extra kernel options appended to kernelopt (e.g. serial console)", valueHint: "OPTS" },
  dhcp: { type: "string", default: "auto", description: "auto (proxy if another DHCP server answers, else server), server, proxy, off", valueHint: "MODE" },
  pool: { type: "string", description: "Addresses to lease: START-END[/PREFIX], comma-separated (default: the --iface subnet)", valueHint: "RANGE" },
  router: { type: "string", description: "Default gateway handed out (option 3)", valueHint: "ADDR" },
  dns: { type: "string", description: "DNS servers handed out (option 6), comma-separated", valueHint: "ADDRS" },
  domain: { type: "string", description: "Domain name handed out (option 15)", valueHint: "NAME" },
  "lease-time": { type: "string", default: "3600", description: "Lease time in seconds", valueHint: "S" },
  reserve: { type: "string", description: "Static leases: MAC=IP[=HOSTNAME], comma-separated", valueHint: "LIST" },
  force: { type: "boolean", description: "Run --dhcp server even though another DHCP server answers on the link" },
  bsdp: { type: "boolean", default: true, description: "Answer Apple BSDP so Intel Macs boot (also with --dhcp off, on --iface)", negativeDescription: "Do not answer Apple BSDP (Macs)" },
  "bsdp-priority": { type: "string", default: "32768", description: "BSDP server priority (0-65535; Macs pick the highest)", valueHint: "N" },
  "mac-bootfile": { type: "string", default: "ipxe/snponly.efi", description: "What a Mac boots after choosing the image (TFTP path)", valueHint: "PATH" },
  "state-dir": { type: "string", description: "Where leases and Mac selections are kept (default: /var/lib/netboot as root, else ~/.local/state/netboot)", valueHint: "DIR" },
  "dhcp-port": { type: "string", default: "67", description: "DHCP server port", valueHint: "N" },
  ipxe: { type: "boolean", default: true, description: "Chain-load iPXE for PXE clients", negativeDescription: "UEFI PXE clients get the ESXi loader by TFTP directly (no iPXE)" },
  "secure-boot": { type: "boolean", description: "UEFI Secure Boot machines: every UEFI PXE client gets the ESXi loader (signed by VMware) by TFTP instead of iPXE (without it, a host whose iPXE never starts gets it from its next boot on)" },
  "ipxe-dir": { type: "string", description: "Directory with undionly.kpxe, snponly.efi, ipxe.efi (default: built in, or /usr/lib/ipxe)", valueHint: "DIR" },
  tftp: { type: "boolean", default: true, description: "Serve TFTP (the same files as HTTP)", negativeDescription: "Do not serve TFTP" },
  "tftp-port": { type: "string", default: "69", description: "TFTP port", valueHint: "N" },
  "tftp-max-blksize": { type: "string", default: "65464", description: "Largest TFTP blksize granted (RFC 2348; at most 9212 on macOS, whose UDP datagrams stop at 9216 bytes)", valueHint: "N" },
  "tftp-max-windowsize": { type: "string", default: "64", description: "Largest TFTP windowsize granted (RFC 7440)", valueHint: "N" },
  "cache-mem": { type: "string", default: "512", description: "MiB of memory for hot files (whole files up to a quarter of it; 0: off)", valueHint: "MIB" },
  ...logArgs,
} as const satisfies ArgsDef;

export type ServeArgsParsed = { source: string } & Partial<Record<Exclude<keyof typeof serveArgs, "source" | "verbose" | "quiet">, string | boolean | undefined>>;

export function parseIntArg(v: string | undefined, flag: string, fallback: number): number {
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new ConfigError("E_ARG", `${flag}: ${JSON.stringify(v)} is not a number`);
  return Number(v);
}

export interface ArgsEnvironment {
  defaultAddress: () => InterfaceAddress | undefined;
  interfaceAddress: (name: string) => InterfaceAddress;
}

const realEnvironment: ArgsEnvironment = { defaultAddress, interfaceAddress };

/** Parsed `serve` args → validated config. Pure apart from asking which addresses this machine has. */
export function serveConfigFromArgs(raw: ServeArgsParsed, env: ArgsEnvironment = realEnvironment): ServeConfig {
  const s = (k: keyof ServeArgsParsed) => (typeof raw[k] === "string" ? (raw[k] as string) : undefined);
  const b = (k: keyof ServeArgsParsed) => (typeof raw[k] === "boolean" ? (raw[k] as boolean) : undefined);
  const iface = s("iface") ? env.interfaceAddress(s("iface")!) : undefined;
  const ip = s("ip") ?? iface?.address ?? env.defaultAddress()?.address;
  if (!ip) throw new ConfigError("E_NO_ADDRESS", "this machine has no non-loopback IPv4 address; pass --ip or --iface");
  const mode = (s("dhcp") ?? "auto") as DhcpMode;
  return validateServeConfig(
    makeConfig(raw.source, ip, {
      name: s("name"),
      bind: s("bind") ?? ip,
      iface: iface?.iface,
      prefix: iface?.prefix,
      http: { port: parseIntArg(s("http-port"), "--http-port", 80) },
      cacheMem: parseIntArg(s("cache-mem"), "--cache-mem", 512) * 1024 * 1024,
      tftp: {
        enabled: b("tftp") ?? true,
        port: parseIntArg(s("tftp-port"), "--tftp-port", 69),
        maxBlksize: parseIntArg(s("tftp-max-blksize"), "--tftp-max-blksize", 65464),
        maxWindowsize: parseIntArg(s("tftp-max-windowsize"), "--tftp-max-windowsize", 64),
      },
      dhcp: {
        mode,
        port: parseIntArg(s("dhcp-port"), "--dhcp-port", 67),
        pools: parsePools(s("pool")),
        router: s("router"),
        dns: list(s("dns")),
        domain: s("domain"),
        leaseSeconds: parseIntArg(s("lease-time"), "--lease-time", 3600),
        reservations: parseReservations(s("reserve")),
        force: b("force") ?? false,
      },
      bsdp: {
        enabled: b("bsdp") ?? true,
        priority: parseIntArg(s("bsdp-priority"), "--bsdp-priority", 0x8000),
        bootFile: s("mac-bootfile") ?? "ipxe/snponly.efi",
      },
      stateDir: s("state-dir"),
      cacheDir: s("cache-dir"),
      ipxe: { dir: s("ipxe-dir"), disabled: b("ipxe") === false },
      boot: { ks: s("ks"), keepCdromBoot: b("keep-cdromboot") ?? false, extraKernelopt: s("kernelopt"), secureBoot: b("secure-boot") ?? false },
    }),
  );
}

/** "10.0.0.100-10.0.0.200,10.1.0.10-10.1.0.99/24" */
export function parsePools(v: string | undefined): PoolSpec[] {
  return list(v).map((p) => {
    const m = /^([\d.]+)\s*-\s*([\d.]+)(?:\/(\d{1,2}))?$/.exec(p);
    if (!m) throw new ConfigError("E_POOL", `--pool ${JSON.stringify(p)}: expected START-END or START-END/PREFIX`);
    return { start: m[1]!, end: m[2]!, prefix: m[3] ? Number(m[3]) : undefined };
  });
}

/** "aa:bb:cc:dd:ee:ff=10.0.0.5=esx01,52:54:00:12:34:56=10.0.0.6" */
export function parseReservations(v: string | undefined): ReservationSpec[] {
  return list(v).map((r) => {
    const [mac, ip, hostname] = r.split("=").map((x) => x.trim());
    if (!mac || !ip) throw new ConfigError("E_RESERVE", `--reserve ${JSON.stringify(r)}: expected MAC=IP[=HOSTNAME]`);
    return { mac: parseMac(mac), ip, hostname: hostname || undefined };
  });
}

function list(v: string | undefined): string[] {
  return (v ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}
