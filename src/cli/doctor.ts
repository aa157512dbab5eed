import { defineCommand } from "citty";
import { basename } from "node:path";
import { DEFAULTS } from "../config.ts";
import { runDoctor, type Finding } from "../doctor/doctor.ts";
import { parseDuration } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: {
    name: "doctor",
    description:
      "Check this machine before serving, each finding one line with its fix: rights to bind 67/69/80/4011, which process holds one (dnsmasq, libvirt, NetworkManager, systemd-networkd, tftpd, socket units; bootpd on macOS), " +
      "the interface, other DHCP servers on the link (with --iface, as root), firewalls (ufw, firewalld, nftables, the macOS firewall), the iPXE binaries. Exit 1 when something blocks serving",
  },
  args: {
    iface: { type: "string", description: "The link you will serve: its address and carrier, and (as root) the DHCP servers already on it", valueHint: "NAME" },
    "http-port": { type: "string", default: String(DEFAULTS.httpPort), description: "The HTTP port you will serve on", valueHint: "N" },
    "probe-wait": { type: "string", default: `${DEFAULTS.probeMs / 1000}s`, description: "How long to listen for other DHCP servers (as serve --dhcp auto does; dnsmasq pings an address for ~3 s before it offers it)", valueHint: "DURATION" },
    json: { type: "boolean", description: "The findings as JSON" },
  },
  async run({ args }) {
    await guard(async () => {
      const httpPort = Number(args["http-port"]);
      if (!Number.isInteger(httpPort) || httpPort < 1 || httpPort > 65535) throw new (await import("../errors.ts")).ConfigError("E_ARG", `--http-port ${args["http-port"]}: a port number`);
      const compiled = /netboot/.test(basename(process.execPath));
      const findings = await runDoctor({ iface: args.iface, httpPort, probeMs: parseDuration(args["probe-wait"], "--probe-wait"), log: stderrLogger(), program: compiled ? process.execPath : undefined });
      if (args.json) process.stdout.write(JSON.stringify({ findings }, null, 1) + "\n");
      else for (const f of findings) process.stdout.write(line(f));
      const blocking = findings.filter((f) => f.level === "fail").length;
      if (!args.json) process.stdout.write(blocking ? `${blocking} problem${blocking === 1 ? " blocks" : "s block"} serving\n` : "nothing blocks serving\n");
      process.exitCode = blocking ? 1 : 0;
    });
  },
});

function line(f: Finding): string {
  const tag = { ok: "ok  ", info: "info", warn: "warn", fail: "FAIL" }[f.level];
  return `${tag}  ${f.text}\n${f.fix ? `      fix: ${f.fix}\n` : ""}`;
}
