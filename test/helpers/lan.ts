/**
 * Test LANs in network namespaces the test creates and removes: a "switch" namespace with a bridge, and one
 * veth per node into it. Addresses 10.<net>.0.<n>/24 exist only inside. A node may sit on several LANs
 * (give it the same namespace twice with another interface name).
 */
import { spawnSync } from "node:child_process";
import { requireRoot } from "./netns.ts";

export interface LanNode {
  name: string;
  ns: string;
  ifname: string;
  ip: string;
}

export interface Lan {
  readonly net: number;
  /** The switch namespace (where tap devices for QEMU sit on the bridge). */
  readonly switchNs: string;
  readonly nodes: Record<string, LanNode>;
  exec(node: string, argv: string[]): { code: number; out: string; err: string };
  destroy(): void;
}

const created = new Set<string>();
process.on("exit", () => {
  for (const ns of created) spawnSync("ip", ["netns", "del", ns]);
});

function sh(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

export function ensureNs(ns: string): void {
  const list = sh(["ip", "netns", "list"]);
  if (!list.split("\n").some((l) => l.split(" ")[0] === ns)) {
    sh(["ip", "netns", "add", ns]);
    created.add(ns);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    spawnSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
  }
}

export function deleteNs(ns: string): void {
  spawnSync("ip", ["netns", "del", ns]);
  created.delete(ns);
}

let counter = 0;

/** A LAN with the given nodes: name → optional existing namespace and interface name (default lan0). */
export function createLan(net: number, nodes: Array<{ name: string; ns?: string; ifname?: string; ip?: string | null; mac?: string }>, taps: string[] = []): Lan {
  requireRoot();
  const tag = `${process.pid % 1000}${counter++}`;
  const sw = `nbsw${tag}`;
  const mine: string[] = [sw];
  const out: Record<string, LanNode> = {};
  const destroy = () => {
    for (const ns of mine) deleteNs(ns);
  };
  try {
    ensureNs(sw);
    sh(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
    sh(["ip", "-n", sw, "link", "set", "br0", "up"]);
    nodes.forEach((n, i) => {
      const ns = n.ns ?? `nb${n.name}${tag}`;
      if (!n.ns) mine.push(ns);
      ensureNs(ns);
      const ifname = n.ifname ?? "lan0";
      const port = `p${i}`;
      sh(["ip", "link", "add", `t${tag}x${i}`, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw]);
      sh(["ip", "-n", ns, "link", "set", `t${tag}x${i}`, "name", ifname]);
      if (n.mac) sh(["ip", "-n", ns, "link", "set", ifname, "address", n.mac]);
      const ip = n.ip === null ? "" : (n.ip ?? `10.${net}.0.${i + 1}`);
      if (ip) sh(["ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", ifname]);
      sh(["ip", "-n", ns, "link", "set", ifname, "up"]);
      sh(["ip", "-n", sw, "link", "set", port, "master", "br0"]);
      sh(["ip", "-n", sw, "link", "set", port, "up"]);
      out[n.name] = { name: n.name, ns, ifname, ip };
    });
    // QEMU attaches to a tap in its own namespace (TUNSETIFF), so the taps live in the switch namespace.
    for (const tap of taps) {
      sh(["ip", "-n", sw, "tuntap", "add", "dev", tap, "mode", "tap"]);
      sh(["ip", "-n", sw, "link", "set", tap, "master", "br0"]);
      sh(["ip", "-n", sw, "link", "set", tap, "up"]);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    net,
    switchNs: sw,
    nodes: out,
    exec(node, argv) {
      const r = spawnSync("ip", ["netns", "exec", out[node]!.ns, ...argv], { encoding: "utf8", maxBuffer: 64 << 20 });
      return { code: r.status ?? -1, out: r.stdout ?? "", err: r.stderr ?? "" };
    },
    destroy,
  };
}
