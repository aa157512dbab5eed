/**
 * Network namespaces made by a test, and removed by it: two namespaces joined by a veth pair, addresses from
 * 10.199.0.0/24 that exist only inside them. Nothing touches the host's interfaces.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export interface NetPair {
  server: string;
  client: string;
  serverIf: string;
  clientIf: string;
  serverIp: string;
  clientIp: string;
  /** Runs a command inside a namespace (synchronously). */
  exec(ns: string, argv: string[]): { code: number; out: string; err: string };
  destroy(): void;
}

const sh = (argv: string[]) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr || r.error?.message}`);
  return r.stdout;
};

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("this test creates network namespaces and needs root (CI runs as root)");
}

let counter = 0;

function waitForCarrier(ns: string, dev: string): void {
  const until = Date.now() + 5000;
  for (;;) {
    const r = spawnSync("ip", ["-n", ns, "-o", "link", "show", "dev", dev], { encoding: "utf8" });
    if (!/NO-CARRIER/.test(r.stdout ?? "") && /LOWER_UP/.test(r.stdout ?? "")) return;
    if (Date.now() > until) throw new Error(`${dev} in ${ns} has no carrier after 5 s: ${r.stdout}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

export interface NetPairOptions {
  /** Put a lossy wire (test/helpers/lossy-wire.ts) between the two ends instead of a direct veth pair. */
  lossy?: { loss: number; reorder: number; seed: number };
}

export function createNetPair(subnet = 199, opts: NetPairOptions = {}): NetPair {
  requireRoot();
  const tag = `${process.pid % 10000}${counter++}`;
  const server = `nbts${tag}`;
  const client = `nbtc${tag}`;
  const serverIf = `nbs${tag}`;
  const clientIf = `nbc${tag}`;
  const serverIp = `10.${subnet}.0.1`;
  const clientIp = `10.${subnet}.0.2`;
  const wire = `nbtw${tag}`;
  let wirePid: number | undefined;
  const destroy = () => {
    if (wirePid) {
      // The wire loops in synchronous system calls and never runs a signal handler: SIGKILL it.
      try {
        process.kill(wirePid, "SIGKILL");
      } catch {}
      wirePid = undefined;
    }
    for (const ns of [server, client, wire]) spawnSync("ip", ["netns", "del", ns]);
  };
  try {
    sh(["ip", "netns", "add", server]);
    sh(["ip", "netns", "add", client]);
    if (opts.lossy) {
      // server [serverIf] --veth-- [ws] wire [wc] --veth-- [clientIf] client; the wire forwards with losses.
      sh(["ip", "netns", "add", wire]);
      sh(["ip", "link", "add", serverIf, "netns", server, "type", "veth", "peer", "name", "ws", "netns", wire]);
      sh(["ip", "link", "add", clientIf, "netns", client, "type", "veth", "peer", "name", "wc", "netns", wire]);
      for (const dev of ["lo", "ws", "wc"]) sh(["ip", "-n", wire, "link", "set", dev, "up"]);
      // Frames copied by the wire must carry complete checksums: veth leaves UDP checksums to "hardware"
      // (CHECKSUM_PARTIAL), which a raw socket would forward unfinished and the receiver would drop.
      sh(["ip", "netns", "exec", server, "ethtool", "-K", serverIf, "tx", "off"]);
      sh(["ip", "netns", "exec", client, "ethtool", "-K", clientIf, "tx", "off"]);
      spawnSync("ip", ["netns", "exec", wire, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
      const { loss, reorder, seed } = opts.lossy;
      const child = Bun.spawn(["ip", "netns", "exec", wire, process.execPath, join(import.meta.dir, "lossy-wire.ts"), "ws", "wc", String(loss), String(reorder), String(seed)], {
        stdout: "ignore",
        stderr: "ignore",
      });
      wirePid = child.pid;
    } else {
      sh(["ip", "link", "add", serverIf, "netns", server, "type", "veth", "peer", "name", clientIf, "netns", client]);
    }
    sh(["ip", "-n", server, "addr", "add", `${serverIp}/24`, "dev", serverIf]);
    sh(["ip", "-n", client, "addr", "add", `${clientIp}/24`, "dev", clientIf]);
    for (const [ns, dev] of [[server, serverIf], [client, clientIf]] as const) {
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
      sh(["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    // A veth end has no carrier until its peer is up (and through the wire, until both sides are): wait for
    // it, because a link without carrier is missing from getifaddrs() and netboot would not find its --ip.
    for (const [ns, dev] of [[server, serverIf], [client, clientIf]] as const) waitForCarrier(ns, dev);
  } catch (err) {
    destroy();
    throw err;
  }
  process.on("exit", destroy);
  return {
    server,
    client,
    serverIf,
    clientIf,
    serverIp,
    clientIp,
    exec(ns, argv) {
      const r = spawnSync("ip", ["netns", "exec", ns, ...argv], { encoding: "utf8", maxBuffer: 64 << 20 });
      return { code: r.status ?? -1, out: r.stdout ?? "", err: r.stderr ?? "" };
    },
    destroy,
  };
}
