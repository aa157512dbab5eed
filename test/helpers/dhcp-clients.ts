/** Real DHCP peers for namespace tests: busybox udhcpc as the client, dnsmasq as a site's DHCP server. */
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lan } from "./lan.ts";
import { tempDir } from "./tools.ts";

/** udhcpc in a namespace; returns the variables its script saw on "bound" (empty when no lease). */
export async function udhcpc(lan: Lan, node: string, extra: string[] = []): Promise<Record<string, string>> {
  const dir = tempDir("udhcpc-");
  const out = join(dir, "lease.env");
  const script = join(dir, "script.sh");
  writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] || exit 0\nenv > "${out}"\n`);
  chmodSync(script, 0o755);
  const n = lan.nodes[node]!;
  const p = Bun.spawn(["ip", "netns", "exec", n.ns, "busybox", "udhcpc", "-i", n.ifname, "-n", "-q", "-f", "-t", "4", "-T", "1", "-A", "1", "-s", script, ...extra], { stdout: "pipe", stderr: "pipe" });
  await p.exited;
  if (!existsSync(out)) return {};
  return Object.fromEntries(
    readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

export interface Daemon {
  stop(): Promise<unknown>;
}

/** dnsmasq as the site's DHCP server on `node`'s lan0, leasing 10.<net>.0.<first>-<last>. */
export async function startDnsmasq(lan: Lan, node: string, first: number, last: number): Promise<Daemon> {
  const net = lan.net;
  const p = Bun.spawn(
    ["ip", "netns", "exec", lan.nodes[node]!.ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces", `--dhcp-range=10.${net}.0.${first},10.${net}.0.${last},255.255.255.0,10m`, `--dhcp-leasefile=${join(tempDir(), "leases")}`, "--user=root", "--group=root"],
    { stdout: "ignore", stderr: "ignore" },
  );
  await Bun.sleep(500);
  return {
    async stop() {
      if (p.exitCode === null) p.kill("SIGTERM");
      return p.exited;
    },
  };
}
