/**
 * Firewalls between netboot and the machines it boots, each with the exact command that opens UDP 67,
 * 69, 4011 and TCP 80: ufw, firewalld, nftables (and iptables where nft is absent), the macOS application
 * firewall. What needs root to read says so instead of guessing.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { DEFAULTS } from "../config.ts";

export interface Finding {
  level: "ok" | "info" | "warn" | "fail";
  text: string;
  fix?: string | undefined;
}

export type Run = (argv: string[]) => { code: number; out: string } | undefined;

/** Runs a command if it exists (undefined when it does not), never longer than 5 s. */
export const runCommand: Run = (argv) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 5000 });
  if (r.error) return undefined;
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
};

const UDP_PORTS = "67,69,4011";

export function firewallFindings(opts: { root: boolean; platform: string; run?: Run; readFile?: (p: string) => string | undefined; httpPort?: number }): Finding[] {
  const run = opts.run ?? runCommand;
  const read = opts.readFile ?? ((p: string) => (existsSync(p) ? readFileSync(p, "utf8") : undefined));
  const http = opts.httpPort ?? DEFAULTS.httpPort;
  const out: Finding[] = [];
  if (opts.platform === "darwin") return macFirewall(run, out);

  // ufw
  const ufwConf = read("/etc/ufw/ufw.conf");
  if (ufwConf && /^ENABLED=yes/m.test(ufwConf)) {
    const status = opts.root ? run(["ufw", "status"]) : undefined;
    const open = status ? [67, 69, 4011].every((p) => new RegExp(`\\b${p}\\b[^\\n]*ALLOW`).test(status.out) || /\b67,69,4011\/udp\b[^\n]*ALLOW/.test(status.out)) && new RegExp(`\\b${http}(/tcp)?\\b[^\\n]*ALLOW`).test(status.out) : false;
    if (open) out.push({ level: "ok", text: "ufw is active and allows UDP 67, 69, 4011 and HTTP" });
    else out.push({ level: "warn", text: `ufw is active${status ? " and does not allow every port netboot uses" : " (run doctor as root to read its rules)"}`, fix: `sudo ufw allow ${UDP_PORTS}/udp && sudo ufw allow ${http}/tcp` });
  }
  // firewalld
  const fwd = run(["systemctl", "is-active", "firewalld"]);
  if (fwd?.out.trim() === "active") {
    const services = opts.root ? run(["firewall-cmd", "--list-services"]) : undefined;
    const have = new Set(services?.out.trim().split(/\s+/) ?? []);
    const missing = ["dhcp", "proxy-dhcp", "tftp", "http"].filter((s) => !have.has(s));
    if (services && missing.length === 0) out.push({ level: "ok", text: "firewalld is active and allows dhcp, proxy-dhcp, tftp and http" });
    else out.push({ level: "warn", text: `firewalld is active${services ? `; its zone lacks ${missing.join(", ")}` : " (run doctor as root to read its zone)"}`, fix: "sudo firewall-cmd --add-service={dhcp,proxy-dhcp,tftp,http} && sudo firewall-cmd --runtime-to-permanent" });
  }
  // nftables (iptables on Debian 12 is nft underneath)
  if (opts.root) {
    const nft = run(["nft", "-j", "list", "ruleset"]);
    if (nft && nft.code === 0) out.push(...nftFindings(nft.out, http));
    else if (!nft) {
      const ipt = run(["iptables", "-S", "INPUT"]);
      if (ipt && /^-P INPUT (DROP|REJECT)/m.test(ipt.out) && !new RegExp(`--dports? ${UDP_PORTS}`).test(ipt.out)) {
        out.push({ level: "warn", text: "iptables drops incoming packets by default (INPUT policy DROP)", fix: `sudo iptables -I INPUT -p udp -m multiport --dports ${UDP_PORTS} -j ACCEPT && sudo iptables -I INPUT -p tcp --dport ${http} -j ACCEPT` });
      }
    }
  } else if (run(["systemctl", "is-active", "nftables"])?.out.trim() === "active") {
    out.push({ level: "info", text: "nftables is active: its rules need root to read (sudo netboot doctor)" });
  }
  if (out.length === 0) out.push({ level: "ok", text: opts.root ? "no firewall rules in the way (ufw, firewalld, nftables)" : "no active ufw or firewalld (nftables rules need root to read)" });
  return out;
}

/** `nft -j list ruleset`: input-hook chains that drop by default, or end in a drop or reject. */
export function nftFindings(json: string, http: number = DEFAULTS.httpPort): Finding[] {
  let data: { nftables?: Array<Record<string, Record<string, unknown>>> };
  try {
    data = JSON.parse(json);
  } catch {
    return [{ level: "info", text: "nft's ruleset could not be read as JSON" }];
  }
  const items = data.nftables ?? [];
  const out: Finding[] = [];
  for (const it of items) {
    const c = it.chain as { family?: string; table?: string; name?: string; hook?: string; policy?: string } | undefined;
    if (!c || c.hook !== "input") continue;
    const rules = items.filter((x) => {
      const r = x.rule as { table?: string; chain?: string; family?: string } | undefined;
      return r && r.table === c.table && r.chain === c.name && r.family === c.family;
    });
    const exprs = rules.map((x) => ((x.rule as { expr?: unknown[] }).expr ?? []) as Array<Record<string, unknown>>);
    const drops = c.policy === "drop" || exprs.some((e) => e.some((x) => "drop" in x || "reject" in x));
    if (!drops) continue;
    // A port is open when a rule that accepts names it as a destination port (a number, a set, a range).
    const accepted = new Set<number>();
    const ranges: Array<[number, number]> = [];
    for (const e of exprs) {
      if (!e.some((x) => "accept" in x)) continue;
      for (const x of e) {
        const m = x.match as { left?: { payload?: { field?: string } }; right?: unknown; op?: string } | undefined;
        if (!m || m.left?.payload?.field !== "dport" || (m.op !== undefined && m.op !== "==" && m.op !== "in")) continue;
        const add = (v: unknown) => {
          if (typeof v === "number") accepted.add(v);
          else if (v && typeof v === "object" && "range" in v && Array.isArray((v as { range: unknown[] }).range)) ranges.push((v as { range: [number, number] }).range);
          else if (v && typeof v === "object" && "set" in v && Array.isArray((v as { set: unknown[] }).set)) for (const i of (v as { set: unknown[] }).set) add(i);
        };
        add(m.right);
      }
    }
    const opens = (p: number) => accepted.has(p) || ranges.some(([a, b]) => p >= a && p <= b);
    const missing = [67, 69, 4011, http].filter((p) => !opens(p));
    if (missing.length === 0) {
      out.push({ level: "ok", text: `nftables ${c.family} ${c.table} ${c.name} drops by default but accepts 67, 69, 4011 and ${http}` });
      continue;
    }
    const where = `${c.family} ${c.table} ${c.name}`;
    out.push({
      level: "warn",
      text: `nftables chain ${where} (hook input${c.policy === "drop" ? ", policy drop" : ""}) may drop netboot's ports ${missing.join(", ")}`,
      fix: `sudo nft insert rule ${where} udp dport { 67, 69, 4011 } accept && sudo nft insert rule ${where} tcp dport ${http} accept`,
    });
  }
  return out;
}

function macFirewall(run: Run, out: Finding[]): Finding[] {
  const fw = "/usr/libexec/ApplicationFirewall/socketfilterfw";
  const state = run([fw, "--getglobalstate"]);
  if (!state) return [{ level: "info", text: "the macOS application firewall could not be asked" }];
  if (/disabled|State = 0/i.test(state.out)) return [{ level: "ok", text: "the macOS application firewall is off" }];
  const all = run([fw, "--getblockall"]);
  if (all && /ENABLED|block all.*on/i.test(all.out)) {
    out.push({ level: "fail", text: "the macOS application firewall blocks all incoming connections", fix: `sudo ${fw} --setblockall off` });
  } else {
    out.push({ level: "warn", text: "the macOS application firewall is on: macOS asks (or blocks) when netboot first listens", fix: `sudo ${fw} --add "$(command -v netboot)" && sudo ${fw} --unblockapp "$(command -v netboot)"` });
  }
  return out;
}
