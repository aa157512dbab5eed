/**
 * The host book: which machines netboot knows and what each gets (image, mode, kickstart and its
 * variables), built from a lab file or from the command line. `lookup(mac)` is what every protocol asks,
 * through the registry's snapshot and the one boot policy. With a list, a machine that is not on it gets
 * no boot answer (deny by default); without one, every machine boots, interactively unless --allow-any
 * hands everyone the kickstart.
 */
import { readFileSync } from "node:fs";
import { DEFAULT_KICKSTART } from "../boot/kickstart.ts";
import type { ServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseMac, type Mac } from "../wire/mac.ts";
import { VIAS_OF, type BmcSpec, type HostMode, type KickstartSpec, type LabFile, type SecretSpec, type VarSpec, type Verify, type Via } from "./lab.ts";

export interface KickstartSource {
  /** "default", or the template's path. */
  name: string;
  text: string;
}

export interface HostEntry {
  mac: Mac;
  hostname: string | undefined;
  ip: string | undefined;
  image: string;
  mode: HostMode;
  kickstart: KickstartSource | undefined;
  /** The host's variables (defaults' first, then its own), secrets resolved. */
  vars: Readonly<Record<string, string>>;
  /** Names whose values are secrets (from { env } or { file }): never shown, logged or sent in an event. */
  secrets: ReadonlySet<string>;
  /** How netboot drives it (lab file bmc:), how it reaches its installer, and what "done" waits for. */
  bmc: BmcSpec | undefined;
  via: Via | undefined;
  verify: Verify;
  /** Where the host is listed ("lab.yaml:12:5", "--allow"). */
  at: string;
}

export interface HostBook {
  /** A list decides who boots: unlisted machines are denied (or get the interactive installer). */
  readonly listed: boolean;
  readonly unlisted: "deny" | "interactive" | "kickstart";
  readonly hosts: readonly HostEntry[];
  /** What an unlisted machine gets when it boots at all (image, and with --allow-any the kickstart). */
  readonly fallback: { image: string; kickstart: KickstartSource | undefined };
  lookup(mac: Mac): HostEntry | undefined;
}

/** Some host (or every unlisted one, --allow-any with --ks) gets a kickstart: the boot namespace serves ks.cfg. */
export function wantsKickstarts(book: HostBook): boolean {
  return book.hosts.some((h) => h.kickstart) || book.fallback.kickstart !== undefined;
}

/** `secrets: false` (`netboot hosts`): who the hosts are, without reading their secrets (left empty). */
/**
 * `verifyDefault`: what "done" means for a host whose lab entry (and defaults) say nothing: serve keeps the
 * installer's callback ("none"); reinstall waits for the installed ESXi ("https").
 */
export function bookFromLab(lab: LabFile, imageNames: readonly string[], env: NodeJS.ProcessEnv = process.env, opts: { secrets?: boolean; templates?: boolean; verifyDefault?: Verify | ((mac: Mac) => Verify) } = {}): HostBook {
  const defaultImage = lab.defaults.image ?? imageNames[0]!;
  const templates = new Map<string, KickstartSource>();
  const template = (ks: KickstartSpec | undefined): KickstartSource | undefined => {
    if (!ks) return undefined;
    const key = ks.kind === "default" ? "default" : ks.path;
    let t = templates.get(key);
    if (!t) {
      t = { name: key, text: ks.kind === "default" ? DEFAULT_KICKSTART : opts.templates === false ? "" : readText(ks.path, "kickstart") };
      templates.set(key, t);
    }
    return t;
  };
  const hosts = lab.hosts.map((h): HostEntry => {
    const { vars, secrets } = resolveVars({ ...lab.defaults.vars, ...h.vars }, `${h.at}: ${h.hostname ?? h.mac}`, env, opts.secrets !== false);
    return {
      mac: h.mac,
      hostname: h.hostname,
      ip: h.ip,
      image: h.image ?? defaultImage,
      mode: h.mode ?? lab.defaults.mode ?? "once",
      kickstart: template(h.kickstart ?? lab.defaults.kickstart),
      vars,
      secrets,
      bmc: h.bmc,
      via: h.via ?? lab.defaults.via ?? (h.bmc ? VIAS_OF[h.bmc.kind][0] : undefined),
      verify: h.verify ?? lab.defaults.verify ?? (typeof opts.verifyDefault === "function" ? opts.verifyDefault(h.mac) : opts.verifyDefault) ?? "none",
      at: h.at,
    };
  });
  return makeBook(true, lab.allowUnlisted === "interactive" ? "interactive" : "deny", hosts, { image: defaultImage, kickstart: undefined });
}

/**
 * Without a lab file: --allow MAC,… lists the machines (mode once, the --ks kickstart); --allow-any lets
 * every machine have the kickstart, as before there were lists. --ks alone is refused by the caller.
 */
export function bookFromFlags(opts: { allow: readonly Mac[]; allowAny: boolean; ks: string | undefined; image: string }): HostBook {
  const kickstart = opts.ks ? { name: opts.ks, text: readText(opts.ks, "--ks") } : undefined;
  const hosts = opts.allow.map((mac): HostEntry => ({ mac, hostname: undefined, ip: undefined, image: opts.image, mode: "once", kickstart, vars: {}, secrets: new Set(), bmc: undefined, via: undefined, verify: "none", at: "--allow" }));
  if (opts.allowAny) return makeBook(false, "kickstart", hosts, { image: opts.image, kickstart });
  return makeBook(hosts.length > 0, hosts.length > 0 ? "deny" : "interactive", hosts, { image: opts.image, kickstart: undefined });
}

/**
 * The book a server runs with: the lab file's, or the command line's (--allow, --allow-any, --ks). A
 * kickstart wipes disks, so --ks needs the machines listed or --allow-any; with a lab file the kickstarts
 * come from it.
 */
export function bookFor(config: ServeConfig, lab: LabFile | undefined, imageNames: readonly string[], verifyDefault: Verify | ((mac: Mac) => Verify) = "none"): HostBook {
  if (lab) {
    if (config.boot.ks) throw new ConfigError("E_KS", "--ks and a lab file: give the kickstart in the lab file (defaults: kickstart:, or per host)");
    return bookFromLab(lab, imageNames, process.env, { verifyDefault });
  }
  const allow = config.hosts.allow.map((m) => parseMac(m));
  if (config.boot.ks && allow.length === 0 && !config.hosts.allowAny) {
    throw new ConfigError("E_KS_UNLISTED", "a kickstart wipes disks: list the machines with --allow MAC,… or pass --allow-any (every machine that network-boots here gets it)");
  }
  return bookFromFlags({ allow, allowAny: config.hosts.allowAny, ks: config.boot.ks, image: imageNames[0]! });
}

/** What the book means for this run, in the log: how many hosts in which mode, what unlisted machines get. */
export function describeBook(book: HostBook, log: Logger): void {
  if (book.hosts.length) {
    const modes = new Map<string, number>();
    for (const h of book.hosts) modes.set(h.mode, (modes.get(h.mode) ?? 0) + 1);
    log.info(`hosts: ${book.hosts.length} listed (${[...modes].map(([m, n]) => `${n} ${m}`).join(", ")}); unlisted machines: ${book.unlisted === "deny" ? "no boot answer" : book.unlisted === "interactive" ? "the interactive installer, no kickstart" : "the kickstart"}`);
    const install = book.hosts.filter((h) => h.mode === "install");
    if (install.length) log.warn(`mode install: ${install.map((h) => h.hostname ?? h.mac).join(", ")} reinstall on every network boot`);
  }
  if (book.unlisted === "kickstart") log.warn("--allow-any: every machine that network-boots from this server gets the kickstart and is wiped");
}

// --- internal ---

function makeBook(listed: boolean, unlisted: HostBook["unlisted"], hosts: HostEntry[], fallback: HostBook["fallback"]): HostBook {
  const byMac = new Map(hosts.map((h) => [h.mac, h]));
  return { listed, unlisted, hosts, fallback, lookup: (mac) => byMac.get(mac) };
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("E_KS", `${what} ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

/** A BMC password (or another secret), read when it is used: one line naming the host when it cannot be. */
export function readSecret(spec: SecretSpec, who: string, env: NodeJS.ProcessEnv = process.env): string {
  if ("env" in spec) {
    const v = env[spec.env];
    if (v === undefined) throw new ConfigError("E_LAB_SECRET", `${who}: the environment variable ${spec.env} is not set`);
    return v;
  }
  return readText(spec.file, who).replace(/\r?\n$/, "");
}

function resolveVars(specs: Record<string, VarSpec>, who: string, env: NodeJS.ProcessEnv, read = true): { vars: Record<string, string>; secrets: Set<string> } {
  const vars: Record<string, string> = {};
  const secrets = new Set<string>();
  for (const [name, spec] of Object.entries(specs)) {
    if ("value" in spec) vars[name] = spec.value;
    else if (!read) {
      vars[name] = "";
      secrets.add(name);
    } else {
      vars[name] = readSecret(spec, `${who}: vars.${name}`, env);
      secrets.add(name);
    }
  }
  return { vars, secrets };
}
