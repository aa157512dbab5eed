/**
 * Who holds a port, without root where it can: Linux lists every socket in /proc/net/{udp,udp6,tcp,tcp6}
 * (local address and port in hex, the creator's uid, the inode); the inode is matched to a process through
 * /proc/<pid>/fd (readable for one's own processes, all of them as root), and failing that, processes of
 * the socket's uid are matched by name (comm and cmdline are world-readable). Then the holder is named in
 * the words of the fix: libvirt's dnsmasq, NetworkManager's shared connection, a socket-activated unit.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcSocket {
  proto: "udp" | "udp6" | "tcp" | "tcp6";
  address: string;
  port: number;
  /** tcp: 0A is LISTEN. */
  state: number;
  uid: number;
  inode: number;
}

/** One /proc/net/{udp,tcp}[6] table: the header line, then one socket per line. */
export function parseProcNet(text: string, proto: ProcSocket["proto"]): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addr, port] = f[1]!.split(":");
    if (!addr || !port) continue;
    out.push({ proto, address: proto.endsWith("6") ? hexToIPv6(addr) : hexToIPv4(addr), port: parseInt(port, 16), state: parseInt(f[3]!, 16), uid: Number(f[7]), inode: Number(f[9]) });
  }
  return out;
}

/** /proc/net stores an IPv4 address as the 32-bit word in host order: little-endian on x86 and arm64. */
export function hexToIPv4(hex: string): string {
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
}

export function hexToIPv6(hex: string): string {
  const words: string[] = [];
  for (let w = 0; w < 4; w++) {
    const chunk = hex.slice(w * 8, w * 8 + 8);
    // Each 32-bit word in host (little-endian) order.
    const bytes = chunk.match(/../g)!.reverse().join("");
    words.push(bytes.slice(0, 4), bytes.slice(4, 8));
  }
  const s = words.map((x) => parseInt(x, 16).toString(16)).join(":");
  if (s === "0:0:0:0:0:0:0:0") return "::";
  if (s.startsWith("0:0:0:0:0:ffff:")) {
    const v4 = words.slice(6).join("");
    return `::ffff:${[0, 2, 4, 6].map((i) => parseInt(v4.slice(i, i + 2), 16)).join(".")}`;
  }
  return s;
}

export interface Holder {
  pid: number | undefined;
  uid: number;
  comm: string | undefined;
  cmdline: string | undefined;
  /** How we know: "socket inode", "uid and name" (a guess among the uid's processes). */
  how: "inode" | "uid" | "unknown";
}

export interface PortUse {
  socket: ProcSocket;
  holder: Holder;
}

/** Sockets bound to `port` (UDP) or listening on it (TCP), with who holds them. */
export function portUsers(port: number, transport: "udp" | "tcp", proc = "/proc"): PortUse[] {
  const sockets: ProcSocket[] = [];
  for (const proto of transport === "udp" ? (["udp", "udp6"] as const) : (["tcp", "tcp6"] as const)) {
    try {
      sockets.push(...parseProcNet(readFileSync(`${proc}/net/${proto}`, "utf8"), proto).filter((s) => s.port === port && (transport === "udp" || s.state === 0x0a)));
    } catch {
      // no IPv6, or not Linux
    }
  }
  if (sockets.length === 0) return [];
  const inodes = socketInodes(proc);
  return sockets.map((socket) => ({ socket, holder: holderOf(socket, inodes, proc) }));
}

/** Known holders of the ports netboot needs, and how to free the port. */
export function describeHolder(h: Holder, port: number, transport: "udp" | "tcp", units: ReadonlyArray<{ listen: string; unit: string; activates: string }> = []): { name: string; fix: string } {
  const comm = h.comm ?? "";
  const cmd = h.cmdline ?? "";
  const pid = h.pid !== undefined ? `PID ${h.pid}` : `uid ${h.uid}`;
  if (comm === "dnsmasq") {
    if (cmd.includes("/var/lib/libvirt/dnsmasq/")) {
      const net = /\/var\/lib\/libvirt\/dnsmasq\/([^/\s]+)\.conf/.exec(cmd)?.[1] ?? "default";
      return { name: `libvirt's dnsmasq for network "${net}" (${pid})`, fix: `it serves libvirt's own bridge; if that is not the link you serve, it can stay, else: sudo virsh net-destroy ${net}` };
    }
    if (cmd.includes("NetworkManager")) return { name: `NetworkManager's dnsmasq for a shared connection (${pid})`, fix: "turn off connection sharing on that interface (nmcli connection modify <name> ipv4.method auto), or serve another link" };
    return { name: `dnsmasq (${pid})`, fix: `sudo systemctl stop dnsmasq (or kill ${h.pid ?? "it"}), or let dnsmasq do DHCP and run netboot --dhcp proxy${port === 67 ? "" : ""}` };
  }
  if (comm === "systemd-network") return { name: `systemd-networkd's DHCP server (${pid})`, fix: "remove DHCPServer=yes from the .network file of that link, then networkctl reload" };
  if (comm === "in.tftpd" || comm === "tftpd") return { name: `tftpd-hpa (${pid})`, fix: "sudo systemctl stop tftpd-hpa (and disable it), or netboot --tftp-port N" };
  if (comm === "atftpd") return { name: `atftpd (${pid})`, fix: "sudo systemctl stop atftpd, or netboot --tftp-port N" };
  if (comm === "dhcpd" || comm.startsWith("kea-dhcp")) return { name: `${comm} (${pid}), a DHCP server`, fix: `sudo systemctl stop ${comm === "dhcpd" ? "isc-dhcp-server" : comm}, or let it lease and run netboot --dhcp proxy` };
  if (comm === "systemd" && h.pid === 1) {
    const unit = units.find((u) => new RegExp(`:${port}$`).test(u.listen));
    return unit
      ? { name: `systemd socket unit ${unit.unit} (activates ${unit.activates || "a service"})`, fix: `sudo systemctl stop ${unit.unit} ${unit.activates}`.trim() }
      : { name: "systemd (PID 1): a socket-activated unit", fix: "systemctl list-sockets names it: sudo systemctl stop <unit>.socket" };
  }
  if (transport === "tcp" && port === 80 && comm) return { name: `${comm} (${pid})`, fix: `stop it, or serve HTTP elsewhere: netboot --http-port 8080` };
  if (comm === "netboot" || /netboot|main\.ts/.test(cmd)) return { name: `another netboot (${pid})`, fix: `stop it first (kill ${h.pid ?? ""})`.trim() };
  return { name: comm ? `${comm} (${pid})` : `a process of uid ${h.uid} (run doctor as root to name it)`, fix: h.pid ? `stop it (kill ${h.pid})` : "sudo netboot doctor names the process" };
}

/** systemctl list-sockets: the units listening, for socket activation by PID 1. */
export function parseListSockets(text: string): Array<{ listen: string; unit: string; activates: string }> {
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[1]!.endsWith(".socket"))
    .map((f) => ({ listen: f[0]!, unit: f[1]!, activates: f[2] ?? "" }));
}

// --- internal ---

/** inode → pid, for every process whose fds we may read. */
function socketInodes(proc: string): Map<number, number> {
  const map = new Map<number, number>();
  for (const pid of pids(proc)) {
    let fds: string[];
    try {
      fds = readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue; // another user's process, without root
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${proc}/${pid}/fd/${fd}`));
        if (m) map.set(Number(m[1]), pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  return map;
}

/** Who holds which ports, for the guess without root: a name is a suspect only for its own kind of port. */
const KNOWN: Record<string, (proto: string, port: number) => boolean> = {
  dnsmasq: (p) => p.startsWith("udp"),
  "systemd-network": (p, n) => p.startsWith("udp") && n === 67,
  "in.tftpd": (p, n) => p.startsWith("udp") && n === 69,
  tftpd: (p, n) => p.startsWith("udp") && n === 69,
  atftpd: (p, n) => p.startsWith("udp") && n === 69,
  dhcpd: (p, n) => p.startsWith("udp") && (n === 67 || n === 4011),
  "kea-dhcp4": (p, n) => p.startsWith("udp") && n === 67,
  nginx: (p) => p.startsWith("tcp"),
  apache2: (p) => p.startsWith("tcp"),
  httpd: (p) => p.startsWith("tcp"),
  caddy: (p) => p.startsWith("tcp"),
  lighttpd: (p) => p.startsWith("tcp"),
  "docker-proxy": () => true,
  netboot: () => true,
};

function holderOf(s: ProcSocket, inodes: Map<number, number>, proc: string): Holder {
  const pid = inodes.get(s.inode);
  if (pid !== undefined) return { pid, uid: s.uid, comm: readComm(proc, pid), cmdline: readCmdline(proc, pid), how: "inode" };
  // Without root: the uid's processes with a name that holds such ports.
  for (const p of pids(proc)) {
    const comm = readComm(proc, p);
    if (!comm || !KNOWN[comm]?.(s.proto, s.port)) continue;
    if (uidOf(proc, p) !== s.uid) continue;
    return { pid: p, uid: s.uid, comm, cmdline: readCmdline(proc, p), how: "uid" };
  }
  return { pid: undefined, uid: s.uid, comm: undefined, cmdline: undefined, how: "unknown" };
}

function pids(proc: string): number[] {
  try {
    return readdirSync(proc)
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}

function readComm(proc: string, pid: number): string | undefined {
  try {
    return readFileSync(`${proc}/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

function readCmdline(proc: string, pid: number): string | undefined {
  try {
    return readFileSync(`${proc}/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return undefined;
  }
}

function uidOf(proc: string, pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`${proc}/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
