/**
 * Kickstart templates: `{{name}}` is replaced by the variable's value, and that is all. Strict: a name no
 * host defines is an error at start (matchbox rendered `<no value>` silently, poseidon/matchbox#210), and
 * anything that looks like a placeholder but is not one is an error too. Pure.
 *
 * Built-in variables (per host): hostname, ip, netmask, gateway, dns, mac, image, server (the HTTP base),
 * done_url, failed_url, and network (a whole `network` line: static when the host has an IP, else DHCP).
 */
import { ConfigError } from "../errors.ts";

/** A kickstart for any lab: the ESXi 8 installer's own commands, the done callback in %post. */
export const DEFAULT_KICKSTART = `# netboot's default kickstart (netboot check --print-default-ks); it wipes the first disk.
vmaccepteula
install --firstdisk --overwritevmfs
rootpw {{rootpw}}
{{network}}
reboot

%post --interpreter=busybox
# Tell netboot the install finished: an IP literal, DNS may not be set up yet; a failed call must not fail the install.
wget -q -O /dev/null "{{done_url}}" || true
`;

export const BUILTIN_VARIABLES = ["hostname", "ip", "netmask", "gateway", "dns", "mac", "image", "server", "done_url", "failed_url", "firstboot_url", "network"] as const;

/** A kickstart template that does not render: bad input (exit 2). */
export class TemplateError extends ConfigError {
  /** Variables used and not defined. */
  readonly missing: string[];
  constructor(message: string, missing: string[]) {
    super("E_TEMPLATE", message);
    this.missing = missing;
  }
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** The names a template uses, in order of first use. Throws on a malformed placeholder. */
export function templateVariables(text: string): string[] {
  const stray = text.replace(PLACEHOLDER, "").match(/\{\{|\}\}/);
  if (stray) {
    const at = text.replace(PLACEHOLDER, (m) => " ".repeat(m.length)).indexOf(stray[0]);
    const line = text.slice(0, at).split("\n").length;
    throw new TemplateError(`line ${line}: "${stray[0]}" that is not a {{name}} placeholder`, []);
  }
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}

/** Fills every placeholder; throws naming every variable that has no value. */
export function renderTemplate(text: string, vars: Readonly<Record<string, string>>): string {
  const missing = templateVariables(text).filter((n) => !(n in vars));
  if (missing.length) throw new TemplateError(`undefined variable${missing.length > 1 ? "s" : ""} ${missing.map((m) => `{{${m}}}`).join(", ")}`, missing);
  return text.replace(PLACEHOLDER, (_m, name: string) => vars[name]!);
}

export interface NetworkFacts {
  mac: string;
  hostname: string | undefined;
  ip: string | undefined;
  netmask: string | undefined;
  gateway: string | undefined;
  dns: readonly string[];
}

/** The `network` line: static with what is known when the host has an IP, DHCP on its boot NIC otherwise. */
export function networkLine(n: NetworkFacts): string {
  if (!n.ip) return `network --bootproto=dhcp --device=${n.mac}`;
  const parts = [`network --bootproto=static --device=${n.mac} --ip=${n.ip}`];
  if (n.netmask) parts.push(`--netmask=${n.netmask}`);
  if (n.gateway) parts.push(`--gateway=${n.gateway}`);
  if (n.dns.length) parts.push(`--nameserver=${n.dns.join(",")}`);
  if (n.hostname) parts.push(`--hostname=${n.hostname}`);
  return parts.join(" ");
}
