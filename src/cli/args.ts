/** Argument definitions shared by the commands, and the pure translation from parsed args to config. */
import type { ArgsDef, CommandDef } from "citty";
import type { DhcpMode, PoolSpec, ReservationSpec, ServeConfig } from "../config.ts";
import type { LabFile } from "../hosts/lab.ts";
import { DEFAULTS, LIMITS, makeConfig, validateServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { defaultAddress, interfaceAddress, type InterfaceAddress } from "../net/interfaces.ts";
import { parseMac } from "../wire/mac.ts";
import { logArgs } from "./common.ts";

export const sourceArg = {
  source: { type: "positional", required: true, description: "ESXi installer: ISO file, directory (mounted or extracted), http(s) URL of an ISO, or zip", valueHint: "SOURCE" },
  "cache-dir": { type: "string", description: `Disk cache for URL sources (blocks kept across runs) and where compressed zip entries are unpacked (default for zips: ${DEFAULTS.cacheDirRoot} as root, else ~/.cache/netboot)`, valueHint: "DIR" },
} as const satisfies ArgsDef;

export const serveArgs = {
  source: { type: "positional", required: false, description: "ESXi installer(s): ISO file, directory (mounted or extracted), http(s) URL of an ISO, or zip; several are served side by side (optional with --config)", valueHint: "SOURCE…" },
  "cache-dir": sourceArg["cache-dir"],
  config: { type: "string", description: "Lab file (YAML): images, hosts by MAC, modes, kickstart templates, server options; command-line flags override its server: section", valueHint: "lab.yaml" },
  allow: { type: "string", description: "Without a lab file: only these machines boot (MAC,…); the rest get no boot answer", valueHint: "MACS" },
  "allow-any": { type: "boolean", description: "Let every machine that network-boots here have the --ks kickstart (it wipes disks)" },
  json: { type: "boolean", description: "One JSON event per line on stdout (the log goes to stderr)" },
  live: { type: "boolean", default: true, description: "On a terminal, a live table of the machines under the log (one plain line per phase change otherwise)", negativeDescription: "No live table: one plain line per phase change, as when the output is not a terminal" },
  user: { type: "string", description: "As root: once every socket is bound, run as this user (NAME, UID or USER:GROUP); default the one who ran sudo, else nobody; root keeps root", valueHint: "USER" },
  "until-done": { type: "boolean", description: "Exit 0 when every listed host in mode once or install has reported done; 1 when one fails or at --timeout" },
  timeout: { type: "string", description: "With --until-done: give up after this long (90s, 45m, 2h)", valueHint: "DURATION" },
  iface: { type: "string", description: "The link to serve: its address is the server's, DHCP answers only there", valueHint: "NAME" },
  ip: { type: "string", description: "Address clients use to reach this server (default: --iface's, else the first non-loopback IPv4)", valueHint: "ADDR" },
  bind: { type: "string", description: "Address HTTP and TFTP listen on (default: the --ip address; 0.0.0.0 for all)", valueHint: "ADDR" },
  "http-port": { type: "string", default: String(DEFAULTS.httpPort), description: "HTTP port", valueHint: "N" },
  name: { type: "string", description: "Image name in URLs (default: from the ISO file name)", valueHint: "NAME" },
  ks: { type: "string", description: "Kickstart file: served at /NAME/01-<mac>/ks.cfg and put into kernelopt as ks=…", valueHint: "FILE" },
  "keep-cdromboot": { type: "boolean", description: "Keep cdromBoot in kernelopt (dropped by default for network installs)" },
  kernelopt: { type: "string", description: "Extra kernel options appended to kernelopt (e.g. serial console)", valueHint: "OPTS" },
  dhcp: { type: "string", default: DEFAULTS.dhcpMode, description: "auto (proxy if another DHCP server answers, else server), server, proxy, off", valueHint: "MODE" },
  pool: { type: "string", description: "Addresses to lease: START-END[/PREFIX], comma-separated (default: the --iface subnet)", valueHint: "RANGE" },
  router: { type: "string", description: "Default gateway handed out (option 3)", valueHint: "ADDR" },
  dns: { type: "string", description: "DNS servers handed out (option 6), comma-separated", valueHint: "ADDRS" },
  domain: { type: "string", description: "Domain name handed out (option 15)", valueHint: "NAME" },
  "lease-time": { type: "string", default: String(DEFAULTS.leaseSeconds), description: "Lease time in seconds", valueHint: "S" },
  reserve: { type: "string", description: "Static leases: MAC=IP[=HOSTNAME], comma-separated", valueHint: "LIST" },
  force: { type: "boolean", description: "Run --dhcp server even though another DHCP server answers on the link" },
  bsdp: { type: "boolean", default: true, description: "Answer Apple BSDP so Intel Macs boot (also with --dhcp off, on --iface)", negativeDescription: "Do not answer Apple BSDP (Macs)" },
  "bsdp-priority": { type: "string", default: String(DEFAULTS.bsdpPriority), description: "BSDP server priority (0-65535; Macs pick the highest)", valueHint: "N" },
  "mac-bootfile": { type: "string", default: DEFAULTS.macBootFile, description: "What a Mac boots after choosing the image (TFTP path)", valueHint: "PATH" },
  "state-dir": { type: "string", description: `Where leases are kept, and the hosts' state without --store (default: ${DEFAULTS.stateDirRoot} as root, else ~/.local/state/netboot)`, valueHint: "DIR" },
  store: { type: "string", description: "The host store several netboot instances share: postgres://USER@HOST[:PORT]/DB (the password from PGPASSWORD or the URL); default: files in --state-dir", valueHint: "URL" },
  "dhcp-port": { type: "string", default: String(DEFAULTS.dhcpPort), description: "DHCP server port", valueHint: "N" },
  ipxe: { type: "boolean", default: true, description: "Chain-load iPXE for PXE clients", negativeDescription: "UEFI PXE clients get the ESXi loader by TFTP directly (no iPXE)" },
  "secure-boot": { type: "boolean", description: "UEFI Secure Boot machines: every UEFI PXE client gets the ESXi loader (signed by VMware) by TFTP instead of iPXE (without it, a host whose iPXE never starts gets it from its next boot on)" },
  "ipxe-dir": { type: "string", description: "Directory with undionly.kpxe, snponly.efi, ipxe.efi (default: built in, or /usr/lib/ipxe)", valueHint: "DIR" },
  tftp: { type: "boolean", default: true, description: "Serve TFTP (the same files as HTTP)", negativeDescription: "Do not serve TFTP" },
  "tftp-port": { type: "string", default: String(DEFAULTS.tftpPort), description: "TFTP port", valueHint: "N" },
  "tftp-max-blksize": { type: "string", default: String(DEFAULTS.tftpMaxBlksize), description: `Largest TFTP blksize granted (RFC 2348; at most ${LIMITS.tftp.darwinMaxDatagram - 4} on macOS, whose UDP datagrams stop at ${LIMITS.tftp.darwinMaxDatagram} bytes)`, valueHint: "N" },
  "tftp-max-windowsize": { type: "string", default: String(DEFAULTS.tftpMaxWindowsize), description: "Largest TFTP windowsize granted (RFC 7440)", valueHint: "N" },
  "cache-mem": { type: "string", default: String(DEFAULTS.cacheMemMiB), description: "MiB of memory for hot files (whole files up to a quarter of it; 0: off)", valueHint: "MIB" },
  ...logArgs,
} as const satisfies ArgsDef;

export type ServeArgsParsed = { source?: string; _?: string[] } & Partial<Record<Exclude<keyof typeof serveArgs, "source" | "verbose" | "quiet">, string | boolean | undefined>>;

/** The options a lab file's server: section may set (the long names of serve's flags). */
export const serveOptionNames: ReadonlySet<string> = new Set(Object.keys(serveArgs).filter((k) => !["source", "config", "verbose", "quiet", "until-done", "timeout", "json", "live", "user"].includes(k)));

export function parseIntArg(v: string | undefined, flag: string, fallback: number): number {
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new ConfigError("E_ARG", `${flag}: ${JSON.stringify(v)} is not a whole number of 0 or more`);
  return Number(v);
}

export interface ArgsEnvironment {
  defaultAddress: () => InterfaceAddress | undefined;
  interfaceAddress: (name: string) => InterfaceAddress;
}

const realEnvironment: ArgsEnvironment = { defaultAddress, interfaceAddress };

/**
 * Parsed `serve` args (and the lab file's server: section, under them) → validated config. Pure apart from
 * asking which addresses this machine has. `given` lists the flags written on the command line: only
 * those override the lab file (the rest are citty's defaults).
 */
export function serveConfigFromArgs(raw: ServeArgsParsed, env: ArgsEnvironment = realEnvironment, lab?: LabFile, given?: ReadonlySet<string>): ServeConfig {
  const fromLab = (k: string) => lab && !(given?.has(k) ?? raw[k as keyof ServeArgsParsed] !== undefined) && k in lab.server;
  const name = (k: string) => (fromLab(k) ? `${lab!.path.split("/").pop()} server.${k}` : `--${k}`);
  const value = (k: string): string | boolean | undefined => (fromLab(k) ? lab!.server[k] : raw[k as keyof ServeArgsParsed] as string | boolean | undefined);
  const s = (k: string) => {
    const v = value(k);
    return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
  };
  const b = (k: string) => {
    const v = value(k);
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "false") return v === "true";
    if (v !== undefined) throw new ConfigError("E_ARG", `${name(k)}: ${JSON.stringify(v)} is not true or false`);
    return undefined;
  };
  const int = (k: string, fallback: number) => parseIntArg(s(k), name(k), fallback);
  const ifaceName = s("iface");
  const iface = ifaceName ? env.interfaceAddress(ifaceName) : undefined;
  const ip = s("ip") ?? iface?.address ?? env.defaultAddress()?.address;
  if (!ip) throw new ConfigError("E_NO_ADDRESS", "this machine has no non-loopback IPv4 address; pass --ip or --iface");
  const mode = (s("dhcp") ?? DEFAULTS.dhcpMode) as DhcpMode;
  const positional = [...(raw._ ?? (raw.source ? [raw.source] : []))];
  const images = [...(lab?.images.map((i) => ({ source: i.source, name: i.name })) ?? []), ...positional.map((p, i) => ({ source: p, name: i === 0 && !lab ? s("name") : undefined }))];
  if (images.length === 0) throw new ConfigError("E_SOURCE", lab ? `${lab.path}: no images: and no SOURCE on the command line` : "no image source given (an ESXi ISO file, a directory, an http(s) URL or a zip; or --config lab.yaml)");
  if (images.length > 1 && s("name") && !lab) throw new ConfigError("E_NAME", "--name names one image; with several, the names come from the file names (or a lab file's images:)");
  const config = makeConfig(images[0]!.source, ip, {
    bind: s("bind") ?? ip,
    iface: iface?.iface,
    prefix: iface?.prefix,
    http: { port: int("http-port", DEFAULTS.httpPort) },
    cacheMem: int("cache-mem", DEFAULTS.cacheMemMiB) * 1024 * 1024,
    tftp: {
      enabled: b("tftp") ?? true,
      port: int("tftp-port", DEFAULTS.tftpPort),
      maxBlksize: int("tftp-max-blksize", DEFAULTS.tftpMaxBlksize),
      maxWindowsize: int("tftp-max-windowsize", DEFAULTS.tftpMaxWindowsize),
    },
    dhcp: {
      mode,
      port: int("dhcp-port", DEFAULTS.dhcpPort),
      pools: parsePools(s("pool")),
      router: s("router"),
      dns: list(s("dns")),
      domain: s("domain"),
      leaseSeconds: int("lease-time", DEFAULTS.leaseSeconds),
      reservations: parseReservations(s("reserve")),
      force: b("force") ?? false,
    },
    bsdp: {
      enabled: b("bsdp") ?? true,
      priority: int("bsdp-priority", DEFAULTS.bsdpPriority),
      bootFile: s("mac-bootfile") ?? DEFAULTS.macBootFile,
    },
    stateDir: s("state-dir"),
    store: s("store"),
    cacheDir: s("cache-dir"),
    ipxe: { dir: s("ipxe-dir"), disabled: b("ipxe") === false },
    boot: { ks: s("ks"), keepCdromBoot: b("keep-cdromboot") ?? false, extraKernelopt: s("kernelopt"), secureBoot: b("secure-boot") ?? false },
    hosts: { allow: list(s("allow")).map((m) => parseMac(m)), allowAny: b("allow-any") ?? false },
  });
  config.images = images;
  return validateServeConfig(config);
}

/** The flags written on a command line (long names; --no-x counts for x). */
export function givenFlags(rawArgs: readonly string[]): Set<string> {
  const out = new Set<string>();
  const aliases: Record<string, string> = { v: "verbose", q: "quiet" };
  for (const a of rawArgs) {
    const m = /^--(?:no-)?([a-z][a-z0-9-]*)(=|$)/.exec(a) ?? /^-([a-z])$/.exec(a);
    if (m) out.add(aliases[m[1]!] ?? m[1]!);
  }
  return out;
}

/** "90s", "45m", "2h", "1h30m", or plain seconds → milliseconds. */
export function parseDuration(v: string, flag: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(v.trim());
  if (!v.trim() || !m || (!m[1] && !m[2] && !m[3])) throw new ConfigError("E_ARG", `${flag}: ${JSON.stringify(v)} is not a duration (90s, 45m, 2h)`);
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
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

/**
 * What a netboot user must hear about before anything starts, in one line (undefined when the command
 * line is fine; --help and --version are left to citty): a command that does not exist; an option the
 * command does not define (citty ignores those, so `--dchp off` would start a DHCP server on the link) or
 * writes in a way citty drops (`--no-x=1`, options before the command); an option where a value belongs;
 * a missing argument (citty says that after a page of usage). Values are read as citty reads them.
 */
export async function usageProblem(cmd: CommandDef<ArgsDef>, rawArgs: readonly string[], path = "netboot"): Promise<string | undefined> {
  if (rawArgs.some((a) => a === "--help" || a === "-h")) return undefined;
  const subs = (await resolve(cmd.subCommands)) as Record<string, Resolvable<CommandDef<ArgsDef>>> | undefined;
  const def = ((await resolve(cmd.args)) ?? {}) as ArgsDef;
  if (subs && Object.keys(subs).length > 0) {
    const at = rawArgs.findIndex((a) => !a.startsWith("-"));
    if (at < 0) return undefined; // no command: citty shows the usage
    const name = rawArgs[at]!;
    const sub = subs[name];
    if (!sub) return `${path}: unknown command ${JSON.stringify(name)} (commands: ${Object.keys(subs).join(", ")}; ${path} --help)`;
    // Options before the command name are the root's, and it has none: citty would drop them.
    const early = rawArgs.slice(0, at).find((a) => a.startsWith("-"));
    if (early && Object.keys(def).length === 0) return `${path}: ${early} goes after the command (${path} ${name} ${early} …)`;
    const flag = unknownOption(def, rawArgs.slice(0, at), path);
    return flag ?? usageProblem((await resolve(sub))!, rawArgs.slice(at + 1), `${path} ${name}`);
  }
  return unknownOption(def, rawArgs, path);
}

type Resolvable<T> = T | Promise<T> | (() => T | Promise<T>);

async function resolve<T>(v: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof v === "function" ? (v as () => T | Promise<T>)() : v;
}

function unknownOption(def: ArgsDef, rawArgs: readonly string[], path: string): string | undefined {
  // Every spelling citty takes (the name, its camelCase, its aliases) → the option's name and kind.
  const kinds = new Map<string, "boolean" | "string">([["help", "boolean"], ["h", "boolean"]]);
  const canonical = new Map<string, string>();
  const longNames: string[] = [];
  for (const [name, d] of Object.entries(def)) {
    if (d.type === "positional") continue;
    longNames.push(name);
    const alias = "alias" in d ? d.alias : undefined;
    for (const n of [name, name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), ...(Array.isArray(alias) ? alias : alias ? [alias] : [])]) {
      kinds.set(n, d.type === "boolean" ? "boolean" : "string");
      canonical.set(n, name);
    }
  }
  const seen = new Set<string>();
  let positionals = 0;
  /** What a word on the command line is, as an option of this command (undefined: not one). */
  const optionOf = (word: string): { name: string; kind: "boolean" | "string" } | undefined => {
    if (word.startsWith("--")) {
      const name = word.slice(2).split("=")[0]!;
      const kind = kinds.get(name) ?? (name.startsWith("no-") && kinds.get(name.slice(3)) === "boolean" ? "boolean" : undefined);
      return kind ? { name, kind } : undefined;
    }
    return /^-[a-zA-Z]$/.test(word) && kinds.has(word[1]!) ? { name: word[1]!, kind: kinds.get(word[1]!)! } : undefined;
  };
  /** citty takes the next word as a string option's value whatever it is; an option there is a mistake. */
  const takeValue = (i: number, written: string): string | undefined => {
    const next = rawArgs[i + 1];
    if (next === undefined) return `${path}: ${written} needs a value; ${path} --help`;
    if (optionOf(next)) return `${path}: ${written} needs a value, and the next word is the option ${next} (a value that starts with - is written ${written}=${next}); ${path} --help`;
    return undefined;
  };
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") {
      positionals += rawArgs.length - i - 1;
      break;
    }
    if (!a.startsWith("-") || a === "-" || /^-\d/.test(a)) {
      positionals++;
      continue;
    }
    if (a.startsWith("--")) {
      const body = a.slice(2);
      const eq = body.indexOf("=");
      const name = eq < 0 ? body : body.slice(0, eq);
      const option = optionOf(a);
      if (!option) {
        const negated = name.startsWith("no-");
        const bare = negated ? name.slice(3) : name;
        if (negated && kinds.get(bare) === "string") return `${path}: --${name} is not an option: --${bare} takes a value; ${path} --help`;
        const near = closest(bare, longNames);
        return `${path}: unknown option --${name}${near ? ` (did you mean --${negated ? "no-" : ""}${near}?)` : ""}; ${path} --help lists them`;
      }
      // citty keeps "--no-x=1" as an option named "x=1" and ignores it.
      if (eq >= 0 && name.startsWith("no-") && !kinds.has(name)) return `${path}: --${name} takes no value (write --${name}, or --${name.slice(3)}=false); ${path} --help`;
      seen.add(canonical.get(name) ?? canonical.get(name.slice(3)) ?? name);
      if (option.kind === "string" && eq < 0) {
        const problem = takeValue(i, `--${name}`);
        if (problem) return problem;
        i++;
      }
      continue;
    }
    for (const c of a.slice(1)) {
      if (!kinds.has(c)) return `${path}: unknown option -${c}; ${path} --help lists them`;
      seen.add(canonical.get(c) ?? c);
    }
    if (a.length === 2 && kinds.get(a[1]!) === "string") {
      const problem = takeValue(i, a);
      if (problem) return problem;
      i++;
    }
  }
  // What citty would refuse after printing its whole usage: said in one line instead.
  const wanted = Object.entries(def).filter(([, d]) => d.type === "positional" && d.required !== false && d.default === undefined);
  if (positionals < wanted.length) {
    const [name, d] = wanted[positionals]!;
    return `${path}: ${"valueHint" in d && d.valueHint ? d.valueHint : name.toUpperCase()} is missing${d.description ? ` (${d.description})` : ""}; ${path} --help`;
  }
  for (const [name, d] of Object.entries(def)) {
    if (d.type !== "positional" && "required" in d && d.required && !seen.has(name)) return `${path}: --${name} is required${d.description ? ` (${d.description})` : ""}; ${path} --help`;
  }
  return undefined;
}

/** The known name nearest to a mistyped one (at most 2 edits, or a prefix of it), if any. */
function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const n of names) {
    const d = n.startsWith(name) ? 1 : editDistance(name, n);
    if (d < bestDistance) [best, bestDistance] = [n, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
