/**
 * The lab file (`netboot serve --config lab.yaml`): which images are served, which machines may boot, with
 * what and how often. Parsed with the `yaml` package (its LineCounter gives every node's line and column)
 * and validated strictly: an unknown key, a bad or duplicate MAC, a duplicate IP or hostname, an image that
 * is not defined, a template variable that no host defines, each is one line `lab.yaml:LINE:COL: key: what
 * is wrong`, and nothing starts.
 *
 *   server:   { iface: eth1, dhcp: server, allow_unlisted: interactive }   any serve option by its long name
 *   images:   { esxi8: ./esxi-8.iso, esxi7: http://files.lab/esxi-7.iso }
 *   defaults: { image: esxi8, mode: once, kickstart: ./esxi.ks, vars: { rootpw: { env: ROOTPW } } }
 *   hosts:    [ { mac: 52:54:00:00:00:01, hostname: esx01, ip: 10.77.0.11, vars: { vlan: 12 } }, … ]
 *
 * A host netboot drives (netboot reinstall, netboot power) says how to reach its BMC and how it gets to
 * its installer:
 *   bmc: { redfish: https://10.0.0.5, user: admin, password: { env: BMC_PW }, ca: ./bmc-ca.pem }
 *   bmc: { ipmi: 10.0.0.6, user: admin, password: { file: ./ipmi.pw } }      (port:, cipher: as needed)
 *   bmc: { wol: true }                                                         power on only
 *   via: pxe | http | virtual-media | iso-url      verify: https | firstboot | none
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from "yaml";
import { BUILTIN_VARIABLES, templateVariables, DEFAULT_KICKSTART } from "../boot/kickstart.ts";
import { isValidImageName } from "../boot/image.ts";
import { ConfigError } from "../errors.ts";
import { tryParseIPv4 } from "../wire/ipv4.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";

export type HostMode = "once" | "install" | "local";
export const HOST_MODES: readonly HostMode[] = ["once", "install", "local"];

export type KickstartSpec = { kind: "default" } | { kind: "file"; path: string };

/** A secret read when it is used, never from the lab file's own text: the environment or a file. */
export type SecretSpec = { env: string } | { file: string };

/** A variable's value: given, or a secret read at start (never shown). */
export type VarSpec = { value: string } | SecretSpec;

/** How netboot reaches a machine's BMC (bmc:). */
export type BmcSpec =
  | { kind: "redfish"; url: string; user: string; password: SecretSpec; ca: string | undefined; insecure: boolean; system: string | undefined }
  | { kind: "ipmi"; host: string; port: number | undefined; user: string; password: SecretSpec; cipher: number | undefined }
  | { kind: "wol" };

/** How a driven machine gets to its installer (via:). */
export type Via = "pxe" | "http" | "virtual-media" | "iso-url";
export const VIAS: readonly Via[] = ["pxe", "http", "virtual-media", "iso-url"];
/** Which ways each kind of BMC can take; the first is its default. */
export const VIAS_OF: Readonly<Record<BmcSpec["kind"], readonly Via[]>> = { redfish: ["virtual-media", "iso-url", "http", "pxe"], ipmi: ["pxe", "http"], wol: ["pxe", "http"] };

/** What "done" means (verify:): the installed ESXi answers on HTTPS at the image's build, its %firstboot calls, or the installer's callback alone. */
export type Verify = "https" | "firstboot" | "none";
export const VERIFIES: readonly Verify[] = ["https", "firstboot", "none"];

export interface HostSpec {
  mac: Mac;
  hostname: string | undefined;
  ip: string | undefined;
  image: string | undefined;
  mode: HostMode | undefined;
  kickstart: KickstartSpec | undefined;
  vars: Record<string, VarSpec>;
  bmc: BmcSpec | undefined;
  via: Via | undefined;
  verify: Verify | undefined;
  /** "lab.yaml:12:5": where the host is, for messages. */
  at: string;
}

export interface LabFile {
  path: string;
  /** serve options by their long names, as the command line would give them. */
  server: Record<string, string | boolean>;
  /** What an unlisted machine gets: nothing (default), or the interactive installer without a kickstart. */
  allowUnlisted: "none" | "interactive";
  images: Array<{ name: string; source: string; at: string }>;
  defaults: { image: string | undefined; mode: HostMode | undefined; kickstart: KickstartSpec | undefined; vars: Record<string, VarSpec>; via: Via | undefined; verify: Verify | undefined };
  hosts: HostSpec[];
}

/** Problems, each one line with its place. */
export class LabError extends ConfigError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super("E_LAB", problems.join("\n"));
    this.problems = problems;
  }
}

/**
 * Reads and checks a lab file. `serveOptions` are the long option names `server:` may use; `readTemplate`
 * reads a kickstart file (so the check of template variables can name the host and variable).
 */
export function loadLabFile(path: string, serveOptions: ReadonlySet<string>, readTemplate: (path: string) => string = (p) => readFileSync(p, "utf8")): LabFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("E_LAB", `${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  return parseLabFile(text, path, serveOptions, readTemplate);
}

export function parseLabFile(text: string, path: string, serveOptions: ReadonlySet<string>, readTemplate: (path: string) => string = (p) => readFileSync(p, "utf8")): LabFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const name = path.split("/").pop() ?? path;
  const where = (node: { range?: [number, number, number] | null } | null | undefined) => {
    const p = lc.linePos(node?.range?.[0] ?? 0);
    return `${name}:${p.line}:${p.col}`;
  };
  const problems: string[] = [];
  const problem = (node: { range?: [number, number, number] | null } | null | undefined, key: string, what: string) => problems.push(`${where(node)}: ${key}: ${what}`);
  for (const e of doc.errors) {
    const p = lc.linePos(e.pos[0]);
    problems.push(`${name}:${p.line}:${p.col}: ${e.code === "DUPLICATE_KEY" ? "a key given twice" : e.message.split("\n")[0]}`);
  }
  if (problems.length) throw new LabError(problems);
  const base = dirname(resolve(path));
  const rel = (p: string) => (isAbsolute(p) || /^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? p : resolve(base, p));

  const root = doc.contents;
  const lab: LabFile = { path, server: {}, allowUnlisted: "none", images: [], defaults: { image: undefined, mode: undefined, kickstart: undefined, vars: {}, via: undefined, verify: undefined }, hosts: [] };
  if (root === null || root === undefined) throw new LabError([`${name}:1:1: the file is empty`]);
  if (!isMap(root)) throw new LabError([`${where(root)}: the file must be a mapping with server, images, defaults and hosts`]);

  const scalar = (n: unknown): string | undefined => (isScalar(n) && (typeof n.value === "string" || typeof n.value === "number" || typeof n.value === "boolean") ? String(n.value) : undefined);
  const pairs = (m: YAMLMap) => m.items as Array<Pair<Node, Node>>;
  const keyOf = (p: Pair<Node, Node>) => scalar(p.key) ?? "";

  const varsOf = (node: Node | null, prefix: string): Record<string, VarSpec> => {
    const out: Record<string, VarSpec> = {};
    if (node === null) return out;
    if (!isMap(node)) {
      problem(node, prefix, "must be a mapping of variable names to values");
      return out;
    }
    for (const p of pairs(node)) {
      const k = keyOf(p);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) problem(p.key, `${prefix}.${k}`, "a variable name is letters, digits and _");
      else if ((BUILTIN_VARIABLES as readonly string[]).includes(k)) problem(p.key, `${prefix}.${k}`, `${k} is a built-in variable netboot sets itself`);
      const v = p.value;
      const s = scalar(v);
      if (s !== undefined) out[k] = { value: s };
      else if (isSecretNode(v)) {
        const secret = secretOf(v, `${prefix}.${k}`);
        if (secret) out[k] = secret;
      } else problem(v ?? p.key, `${prefix}.${k}`, "a value is text, a number, { env: NAME } or { file: PATH }");
    }
    return out;
  };
  const modeOf = (node: Node | null, key: string): HostMode | undefined => {
    const s = scalar(node);
    if (s === undefined || !(HOST_MODES as readonly string[]).includes(s)) {
      problem(node, key, `${JSON.stringify(s ?? null)} is not a mode: use ${HOST_MODES.join(", ")}`);
      return undefined;
    }
    return s as HostMode;
  };
  const kickstartOf = (node: Node | null, key: string): KickstartSpec | undefined => {
    const s = scalar(node);
    if (!s) {
      problem(node, key, "a path to a kickstart template, or default");
      return undefined;
    }
    return s === "default" ? { kind: "default" } : { kind: "file", path: rel(s) };
  };
  const oneOf = <T extends string>(node: Node | null, key: string, allowed: readonly T[]): T | undefined => {
    const s = scalar(node);
    if (s === undefined || !(allowed as readonly string[]).includes(s)) {
      problem(node, key, `${JSON.stringify(s ?? null)}: use ${allowed.join(", ")}`);
      return undefined;
    }
    return s as T;
  };
  /** `{ env: NAME }` or `{ file: PATH }`: a secret read when it is used (vars:, bmc.password). */
  const isSecretNode = (node: Node | null | undefined): node is YAMLMap => isMap(node) && node.items.length === 1 && ["env", "file"].includes(keyOf(node.items[0] as Pair<Node, Node>));
  const secretOf = (node: Node | null | undefined, key: string): SecretSpec | undefined => {
    if (isSecretNode(node)) {
      const kind = keyOf(node.items[0] as Pair<Node, Node>);
      const arg = scalar((node.items[0] as Pair<Node, Node>).value);
      if (!arg) problem(node, `${key}.${kind}`, `needs a ${kind === "env" ? "variable name" : "path"}`);
      else return kind === "env" ? { env: arg } : { file: rel(arg) };
      return undefined;
    }
    problem(node, key, "a password is { env: NAME } or { file: PATH }, never written in the lab file");
    return undefined;
  };
  const bmcOf = (node: Node | null, key: string): BmcSpec | undefined => {
    if (!isMap(node)) {
      problem(node, key, "a mapping: { redfish: https://ADDR, user, password }, { ipmi: ADDR, user, password } or { wol: true }");
      return undefined;
    }
    const get = (k: string) => pairs(node).find((p) => keyOf(p) === k);
    const kinds = ["redfish", "ipmi", "wol"].filter((k) => get(k));
    if (kinds.length !== 1) {
      problem(node, key, kinds.length ? `one of redfish:, ipmi: or wol:, not ${kinds.join(" and ")}` : "needs redfish: URL, ipmi: ADDRESS or wol: true");
      return undefined;
    }
    const kind = kinds[0] as BmcSpec["kind"];
    const known = kind === "redfish" ? ["redfish", "user", "password", "ca", "insecure", "system"] : kind === "ipmi" ? ["ipmi", "user", "password", "port", "cipher"] : ["wol"];
    for (const p of pairs(node)) if (!known.includes(keyOf(p))) unknown(p, `${key}.`, known);
    if (kind === "wol") {
      const v = get("wol")!.value;
      if (!(isScalar(v) && v.value === true)) problem(v, `${key}.wol`, "wol: true (power on by magic packet; no BMC)");
      return { kind: "wol" };
    }
    const user = scalar(get("user")?.value);
    if (!user) problem(get("user")?.value ?? node, `${key}.user`, "needs the BMC's user name");
    const pw = get("password");
    const password = pw ? secretOf(pw.value, `${key}.password`) : (problem(node, `${key}.password`, "needs { env: NAME } or { file: PATH }"), undefined);
    if (kind === "redfish") {
      const url = scalar(get("redfish")!.value);
      let ok = false;
      try {
        const u = new URL(url ?? "");
        ok = (u.protocol === "https:" || u.protocol === "http:") && !!u.hostname && !u.username && !u.password && (u.pathname === "/" || u.pathname === "");
      } catch {
        ok = false;
      }
      if (!ok) problem(get("redfish")!.value, `${key}.redfish`, `${JSON.stringify(url ?? null)}: https://ADDRESS[:PORT] (no user, password or path: they have their own keys)`);
      const ca = scalar(get("ca")?.value);
      const insecureNode = get("insecure")?.value;
      const insecure = isScalar(insecureNode) && insecureNode.value === true;
      if (insecureNode && !(isScalar(insecureNode) && typeof insecureNode.value === "boolean")) problem(insecureNode, `${key}.insecure`, "true or false");
      if (ca && insecure) problem(get("ca")!.value, `${key}.ca`, "ca: and insecure: true together: the certificate is either checked or not");
      if (ok && url!.startsWith("http:") && !insecure) problem(get("redfish")!.value, `${key}.redfish`, "http:// sends the password in the clear: use https://, or say insecure: true");
      if (!ok || !user || !password) return undefined;
      return { kind, url: url!, user, password, ca: ca ? rel(ca) : undefined, insecure, system: scalar(get("system")?.value) };
    }
    const host = scalar(get("ipmi")!.value);
    if (!host || /[\s/]/.test(host)) problem(get("ipmi")!.value, `${key}.ipmi`, `${JSON.stringify(host ?? null)}: the BMC's address or name`);
    const portText = scalar(get("port")?.value);
    const port = portText === undefined ? undefined : Number(portText);
    if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) problem(get("port")!.value, `${key}.port`, `${portText}: a UDP port`);
    const cipherText = scalar(get("cipher")?.value);
    const cipher = cipherText === undefined ? undefined : Number(cipherText);
    if (cipher !== undefined && ![0, 1, 2, 3, 17].includes(cipher)) problem(get("cipher")!.value, `${key}.cipher`, `${cipherText}: a cipher suite netboot speaks: 17, 3 (or 2, 1, 0: weaker; 0 lets any password in)`);
    if (!host || !user || !password) return undefined;
    return { kind, host, port, user, password, cipher };
  };
  const unknown = (p: Pair<Node, Node>, section: string, known: readonly string[]) => problem(p.key, `${section}${keyOf(p)}`, `unknown key (known: ${known.join(", ")})`);

  for (const top of pairs(root)) {
    const k = keyOf(top);
    const v = top.value;
    if (k === "server") {
      if (!isMap(v)) {
        problem(v ?? top.key, "server", "must be a mapping of serve options");
        continue;
      }
      for (const p of pairs(v)) {
        const opt = keyOf(p);
        if (opt === "allow_unlisted") {
          const s = scalar(p.value);
          if (s === "interactive" || s === "none") lab.allowUnlisted = s;
          else problem(p.value, "server.allow_unlisted", `${JSON.stringify(s ?? null)}: use interactive (the installer without a kickstart) or none`);
        } else if (!serveOptions.has(opt)) unknown(p, "server.", ["allow_unlisted", ...[...serveOptions].filter((o) => !["config", "verbose", "quiet", "json"].includes(o))]);
        else if (isScalar(p.value) && typeof p.value.value === "boolean") lab.server[opt] = p.value.value;
        else {
          const s = scalar(p.value);
          if (s === undefined) problem(p.value, `server.${opt}`, "a value is text, a number or true/false");
          else lab.server[opt] = s;
        }
      }
    } else if (k === "images") {
      if (!isMap(v)) {
        problem(v ?? top.key, "images", "must be a mapping of image names to sources");
        continue;
      }
      for (const p of pairs(v)) {
        const n = keyOf(p);
        const src = scalar(p.value);
        if (!isValidImageName(n)) problem(p.key, `images.${n}`, "an image name is letters, digits, '.', '_' and '-'");
        else if (!src) problem(p.value ?? p.key, `images.${n}`, "needs a source: an ISO file, a directory, an http(s) URL or a zip");
        else lab.images.push({ name: n, source: rel(src), at: where(p.key) });
      }
    } else if (k === "defaults") {
      if (!isMap(v)) {
        problem(v ?? top.key, "defaults", "must be a mapping");
        continue;
      }
      for (const p of pairs(v)) {
        const dk = keyOf(p);
        if (dk === "image") lab.defaults.image = scalar(p.value);
        else if (dk === "mode") lab.defaults.mode = modeOf(p.value, "defaults.mode");
        else if (dk === "kickstart") lab.defaults.kickstart = kickstartOf(p.value, "defaults.kickstart");
        else if (dk === "vars") lab.defaults.vars = varsOf(p.value, "defaults.vars");
        else if (dk === "via") lab.defaults.via = oneOf(p.value, "defaults.via", VIAS);
        else if (dk === "verify") lab.defaults.verify = oneOf(p.value, "defaults.verify", VERIFIES);
        else unknown(p, "defaults.", ["image", "mode", "kickstart", "vars", "via", "verify"]);
      }
      const image = lab.defaults.image;
      if (image !== undefined && !hasImage(root, image)) problem(pairs(v).find((p) => keyOf(p) === "image")?.value, "defaults.image", `no image named ${image} under images:`);
    } else if (k === "hosts") {
      if (!isSeq(v)) {
        problem(v ?? top.key, "hosts", "must be a list of hosts");
        continue;
      }
      for (const [i, item] of (v.items as Node[]).entries()) {
        if (!isMap(item)) {
          problem(item, `hosts[${i}]`, "a host is a mapping with at least mac:");
          continue;
        }
        const host: HostSpec = { mac: "" as Mac, hostname: undefined, ip: undefined, image: undefined, mode: undefined, kickstart: undefined, vars: {}, bmc: undefined, via: undefined, verify: undefined, at: where(item) };
        for (const p of pairs(item)) {
          const hk = keyOf(p);
          const s = scalar(p.value);
          if (hk === "mac") {
            const mac = s ? tryParseMac(s) : undefined;
            if (!mac) problem(p.value ?? p.key, `hosts[${i}].mac`, `${JSON.stringify(s ?? null)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
            else host.mac = mac;
          } else if (hk === "hostname") {
            if (!s || !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(s)) problem(p.value ?? p.key, `hosts[${i}].hostname`, `${JSON.stringify(s ?? null)} is not a host name`);
            else host.hostname = s;
          } else if (hk === "ip") {
            if (!s || tryParseIPv4(s) === undefined) problem(p.value ?? p.key, `hosts[${i}].ip`, `${JSON.stringify(s ?? null)} is not an IPv4 address`);
            else host.ip = s;
          } else if (hk === "image") {
            if (!s || !hasImage(root, s)) problem(p.value ?? p.key, `hosts[${i}].image`, `no image named ${s} under images:`);
            else host.image = s;
          } else if (hk === "mode") host.mode = modeOf(p.value, `hosts[${i}].mode`);
          else if (hk === "kickstart") host.kickstart = kickstartOf(p.value, `hosts[${i}].kickstart`);
          else if (hk === "vars") host.vars = varsOf(p.value, `hosts[${i}].vars`);
          else if (hk === "bmc") host.bmc = bmcOf(p.value, `hosts[${i}].bmc`);
          else if (hk === "via") host.via = oneOf(p.value, `hosts[${i}].via`, VIAS);
          else if (hk === "verify") host.verify = oneOf(p.value, `hosts[${i}].verify`, VERIFIES);
          else unknown(p, `hosts[${i}].`, ["mac", "hostname", "ip", "image", "mode", "kickstart", "vars", "bmc", "via", "verify"]);
        }
        const via = host.via;
        if (via && host.bmc && !VIAS_OF[host.bmc.kind].includes(via)) {
          problem(pairs(item).find((p) => keyOf(p) === "via")?.value, `hosts[${i}].via`, `${via} needs a Redfish BMC (${host.bmc.kind === "ipmi" ? "IPMI" : "Wake-on-LAN"} can take ${VIAS_OF[host.bmc.kind].join(" or ")})`);
        }
        if (!host.mac) {
          if (!pairs(item).some((p) => keyOf(p) === "mac")) problem(item, `hosts[${i}]`, "needs a mac:");
          continue;
        }
        lab.hosts.push(host);
      }
    } else unknown(top, "", ["server", "images", "defaults", "hosts"]);
  }

  // Duplicates: a MAC, an IP or a hostname listed twice.
  for (const field of ["mac", "ip", "hostname"] as const) {
    const seen = new Map<string, string>();
    for (const h of lab.hosts) {
      const val = h[field];
      if (val === undefined) continue;
      const key = val.toLowerCase();
      const first = seen.get(key);
      if (first) problems.push(`${h.at}: ${field}: ${val} is already host ${first}`);
      else seen.set(key, h.at);
    }
  }
  // defaults.via must suit every driven host that does not say its own.
  for (const h of lab.hosts) {
    if (h.bmc && !h.via && lab.defaults.via && !VIAS_OF[h.bmc.kind].includes(lab.defaults.via)) {
      problems.push(`${h.at}: via: defaults.via ${lab.defaults.via} does not suit this host's ${h.bmc.kind === "ipmi" ? "IPMI" : "Wake-on-LAN"} BMC: give it via: ${VIAS_OF[h.bmc.kind].join(" or ")}`);
    }
  }
  // Template variables: every one a host's kickstart uses must be defined for that host.
  const templates = new Map<string, string[] | Error>();
  const varsOfTemplate = (ks: KickstartSpec): string[] | Error => {
    const key = ks.kind === "default" ? "" : ks.path;
    let hit = templates.get(key);
    if (!hit) {
      try {
        hit = templateVariables(ks.kind === "default" ? DEFAULT_KICKSTART : readTemplate(ks.path));
      } catch (err) {
        hit = err as Error;
      }
      templates.set(key, hit);
    }
    return hit;
  };
  const reported = new Set<string>();
  for (const h of lab.hosts) {
    const ks = h.kickstart ?? lab.defaults.kickstart;
    if (!ks) continue;
    const used = varsOfTemplate(ks);
    if (used instanceof Error) {
      const what = `kickstart ${ks.kind === "default" ? "default" : ks.path}: ${(used as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : used.message}`;
      if (!reported.has(what)) problems.push(`${h.at}: ${what}`);
      reported.add(what);
      continue;
    }
    const defined = new Set<string>([...BUILTIN_VARIABLES, ...Object.keys(lab.defaults.vars), ...Object.keys(h.vars)]);
    for (const v of used) if (!defined.has(v)) problems.push(`${h.at}: hosts: ${h.hostname ?? h.mac}: the kickstart uses {{${v}}}, which neither this host nor defaults define (vars:)`);
  }
  if (lab.images.length === 0 && (lab.defaults.image !== undefined || lab.hosts.some((h) => h.image))) problems.push(`${name}:1:1: images: hosts name images, but none is defined`);
  if (problems.length) throw new LabError(problems);
  return lab;
}

function hasImage(root: YAMLMap, name: string): boolean {
  const images = root.get("images");
  return isMap(images) && images.has(name);
}
