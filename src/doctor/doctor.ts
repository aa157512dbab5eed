/**
 * `netboot doctor`: what stands between this machine and serving, each finding one line with its fix.
 * Without root where it can be: the rights to bind 67/69/80/4011, which process holds one of them, the
 * interface, other DHCP servers on the link (the probe `--dhcp auto` uses; it needs port 68, so root),
 * firewalls, the iPXE binaries. A "fail" blocks serving (exit 1); "warn" may.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { networkInterfaces } from "node:os";
import { DEFAULTS } from "../config.ts";
import { probeDhcpServers } from "../dhcp/probe.ts";
import { loadIpxeBinaries } from "../files/ipxe.ts";
import type { Logger } from "../log.ts";
import { listIPv4 } from "../net/interfaces.ts";
import { openUdp } from "../net/udp.ts";
import { firewallFindings, runCommand, type Finding, type Run } from "./firewall.ts";
import { describeHolder, parseListSockets, portUsers } from "./ports.ts";

export type { Finding } from "./firewall.ts";

export interface DoctorOptions {
  iface?: string | undefined;
  httpPort?: number;
  /** How long to listen for other DHCP servers. */
  probeMs?: number;
  log: Logger;
  /** The program to name in setcap fixes. */
  program?: string;
  run?: Run;
}

const PORTS: ReadonlyArray<{ transport: "udp" | "tcp"; port: number; what: string }> = [
  { transport: "udp", port: DEFAULTS.dhcpPort, what: "DHCP" },
  { transport: "udp", port: DEFAULTS.tftpPort, what: "TFTP" },
  { transport: "udp", port: DEFAULTS.pxePort, what: "proxyDHCP boot server" },
];

export async function runDoctor(opts: DoctorOptions): Promise<Finding[]> {
  const run = opts.run ?? runCommand;
  const root = process.getuid?.() === 0;
  const platform = process.platform;
  const http = opts.httpPort ?? DEFAULTS.httpPort;
  const out: Finding[] = [];
  out.push(...privileges(root, platform, opts.program));
  for (const p of [...PORTS, { transport: "tcp" as const, port: http, what: "HTTP" }]) out.push(await portFinding(p, root, platform, run));
  const link = interfaceFindings(opts.iface, platform);
  out.push(...link.findings);
  if (link.ok && opts.iface) out.push(await dhcpFinding(opts.iface, root, opts));
  out.push(...firewallFindings({ root, platform, run, httpPort: http }));
  const ipxe = await loadIpxeBinaries();
  if (ipxe.missing.length === 0) out.push({ level: "ok", text: `iPXE: ${[...ipxe.files.keys()].join(", ")} (${ipxe.source})` });
  else out.push({ level: "warn", text: `iPXE binaries missing: ${ipxe.missing.join(", ")}${ipxe.missing.includes("undionly.kpxe") ? " (BIOS clients cannot boot)" : ""}`, fix: "sudo apt-get install ipxe (the release binaries have them built in), or --ipxe-dir DIR" });
  return out;
}

function privileges(root: boolean, platform: string, program: string | undefined): Finding[] {
  if (root) return [{ level: "ok", text: "running as root: ports 67, 69, 80 and 4011 can be bound (serve drops root once they are)" }];
  const uid = process.getuid?.() ?? -1;
  if (platform === "linux") {
    const start = readNumber("/proc/sys/net/ipv4/ip_unprivileged_port_start") ?? 1024;
    if (start <= 67) return [{ level: "ok", text: `ports from ${start} up are unprivileged here (net.ipv4.ip_unprivileged_port_start): uid ${uid} can bind them` }];
    if (hasCapability(10)) return [{ level: "ok", text: "this process has CAP_NET_BIND_SERVICE: it can bind ports below 1024" }];
    const exe = program ?? "$(command -v netboot)";
    return [{ level: "warn", text: `uid ${uid} cannot bind ports below ${start} (67, 69, 80): serve needs root or CAP_NET_BIND_SERVICE`, fix: `sudo netboot serve … (root is dropped after binding), or once: sudo setcap cap_net_bind_service,cap_net_raw=+ep ${exe}` }];
  }
  if (platform === "darwin") return [{ level: "warn", text: "not root: macOS lets a user bind low ports only on the wildcard address, and DHCP needs the link's", fix: "sudo netboot serve …" }];
  return [{ level: "info", text: `not root (uid ${uid})` }];
}

async function portFinding(p: { transport: "udp" | "tcp"; port: number; what: string }, root: boolean, platform: string, run: Run): Promise<Finding> {
  const label = `${p.transport.toUpperCase()} ${p.port} (${p.what})`;
  const users = platform === "linux" ? portUsers(p.port, p.transport) : [];
  const units = users.some((u) => u.holder.pid === 1) ? parseListSockets(run(["systemctl", "list-sockets", "--all", "--no-legend", "--no-pager"])?.out ?? "") : [];
  const named = users.map((u) => ({ ...describeHolder(u.holder, p.port, p.transport, units), bound: `${u.socket.address}:${p.port}` }));
  const canProbe = root || platform !== "linux" || p.port >= (readNumber("/proc/sys/net/ipv4/ip_unprivileged_port_start") ?? 1024);
  const bind = canProbe ? await tryBind(p.transport, p.port) : undefined;
  if (bind === "in use" || (bind === undefined && named.length)) {
    if (platform === "darwin") return macHolder(p, label, run);
    const who = named.map((n) => `${n.name} on ${n.bound}`).join("; ") || "another process";
    return { level: "fail", text: `${label} is held by ${who}`, fix: named[0]?.fix ?? (root ? "stop it" : "sudo netboot doctor names it") };
  }
  if (bind === "ok" && named.length) return { level: "warn", text: `${label} can be bound, but ${named.map((n) => `${n.name} on ${n.bound}`).join("; ")} listens on it too (tied to another interface?)`, fix: named[0]!.fix };
  if (bind === "ok") return { level: "ok", text: `${label} is free` };
  if (bind === "denied") return { level: "info", text: `${label}: not bound as a test (needs root); no process holds it` };
  return { level: "ok", text: `${label}: no process holds it` };
}

function macHolder(p: { transport: "udp" | "tcp"; port: number; what: string }, label: string, run: Run): Finding {
  if (p.port === 67) {
    const bootpd = run(["launchctl", "print", "system/com.apple.bootpd"]);
    if (bootpd?.code === 0) return { level: "fail", text: `${label} is held by launchd for bootpd (Internet Sharing, or a vmnet user: Docker Desktop, Lima, multipass on bridge100)`, fix: "turn off Internet Sharing in System Settings > General > Sharing, and quit the VM tools using vmnet" };
  }
  if (p.port === 69) {
    const tftpd = run(["launchctl", "print", "system/com.apple.tftpd"]);
    if (tftpd?.code === 0) return { level: "fail", text: `${label} is held by launchd for tftpd (/private/tftpboot)`, fix: "sudo launchctl unload -w /System/Library/LaunchDaemons/tftp.plist" };
  }
  return { level: "fail", text: `${label} is in use`, fix: `sudo lsof -nP -i ${p.transport.toUpperCase()}:${p.port} names the process` };
}

/** Binds the port as serve would (all addresses), then lets it go. */
async function tryBind(transport: "udp" | "tcp", port: number): Promise<"ok" | "in use" | "denied" | undefined> {
  const classify = (err: unknown) => {
    const s = `${(err as { code?: string }).code ?? ""} ${(err as Error).message ?? ""}`;
    return /IN_USE|EADDRINUSE|in use/i.test(s) ? ("in use" as const) : /DENIED|EACCES|EPERM|permission/i.test(s) ? ("denied" as const) : undefined;
  };
  if (transport === "udp") {
    try {
      const s = await openUdp({ address: "0.0.0.0", port, service: "probe", onMessage: () => {} });
      s.close();
      return "ok";
    } catch (err) {
      return classify(err);
    }
  }
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (err) => resolve(classify(err)));
    srv.listen(port, "0.0.0.0", () => srv.close(() => resolve("ok")));
  });
}

function interfaceFindings(iface: string | undefined, platform: string): { ok: boolean; findings: Finding[] } {
  const v4 = listIPv4().filter((a) => !a.address.startsWith("127."));
  if (!iface) {
    const list = v4.map((a) => `${a.iface} ${a.address}/${a.prefix}`).join(", ");
    return { ok: false, findings: [{ level: v4.length ? "info" : "warn", text: v4.length ? `interfaces with IPv4: ${list}; pass --iface NAME to check that link's DHCP servers` : "no interface has an IPv4 address besides loopback", fix: v4.length ? undefined : "give the link to serve an address (ip addr add 10.0.0.1/24 dev eth1)" }] };
  }
  if (!Object.keys(networkInterfaces()).includes(iface) && !(platform === "linux" && readText(`/sys/class/net/${iface}/operstate`) !== undefined)) {
    return { ok: false, findings: [{ level: "fail", text: `no interface named ${iface}`, fix: `interfaces: ${Object.keys(networkInterfaces()).join(", ")}` }] };
  }
  const addr = v4.find((a) => a.iface === iface);
  const findings: Finding[] = [];
  if (!addr) findings.push({ level: "fail", text: `${iface} has no IPv4 address: netboot serves from the link's own address`, fix: `sudo ip addr add 10.0.0.1/24 dev ${iface} (an address of the link's subnet), or pass --ip` });
  else findings.push({ level: "ok", text: `${iface}: ${addr.address}/${addr.prefix}${addr.mac ? `, MAC ${addr.mac}` : ""}` });
  if (platform === "linux") {
    const carrier = readText(`/sys/class/net/${iface}/carrier`);
    if (carrier === "0") findings.push({ level: "fail", text: `${iface} has no carrier: the cable is unplugged, or the switch port or the other end is down`, fix: "plug the cable in (ethtool " + iface + " shows Link detected)" });
    else if (readText(`/sys/class/net/${iface}/operstate`) === "down") findings.push({ level: "fail", text: `${iface} is down`, fix: `sudo ip link set ${iface} up` });
  }
  return { ok: findings.every((f) => f.level !== "fail"), findings };
}

async function dhcpFinding(iface: string, root: boolean, opts: DoctorOptions): Promise<Finding> {
  if (!root) return { level: "info", text: `other DHCP servers on ${iface}: not looked for (sending from port 68 needs root: sudo netboot doctor --iface ${iface})` };
  const addr = listIPv4().find((a) => a.iface === iface)!;
  if (!addr.mac) return { level: "info", text: `other DHCP servers on ${iface}: not looked for (no MAC to ask with)` };
  // Before serving, any answer is another server's, this machine's own (a dnsmasq here) included.
  const probe = await probeDhcpServers({ iface, mac: addr.mac, ownIp: 0, log: opts.log, timeoutMs: opts.probeMs ?? DEFAULTS.probeMs });
  if (probe.uncertain) return { level: "warn", text: `other DHCP servers on ${iface}: ${probe.uncertain}`, fix: "--dhcp auto then runs as proxyDHCP; pass --dhcp server --force only on a link without one" };
  if (probe.servers.length) return { level: "info", text: `DHCP server(s) ${probe.servers.join(", ")} answer on ${iface}: --dhcp auto runs netboot as proxyDHCP beside them (addresses come from them)` };
  return { level: "ok", text: `no other DHCP server answered on ${iface} in ${((opts.probeMs ?? DEFAULTS.probeMs) / 1000).toFixed(0)} s: --dhcp auto makes netboot this link's DHCP server` };
}

/** Bit `cap` of this process's effective capabilities (Linux). */
function hasCapability(cap: number): boolean {
  const m = /^CapEff:\s+([0-9a-f]+)/m.exec(readText("/proc/self/status") ?? "");
  return m ? (BigInt(`0x${m[1]}`) & (1n << BigInt(cap))) !== 0n : false;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const t = readText(path);
  return t !== undefined && /^\d+$/.test(t) ? Number(t) : undefined;
}
