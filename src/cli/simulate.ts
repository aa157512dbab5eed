import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import { listIPv4 } from "../net/interfaces.ts";
import { SIM_ARCHES, type SimArch } from "../sim/dhcp.ts";
import { simulate, type Expectation, type SimStep } from "../sim/simulate.ts";
import { inSubnet, parseIPv4, subnetOf } from "../wire/ipv4.ts";
import { parseMac, type Mac } from "../wire/mac.ts";
import { parseDuration } from "./args.ts";
import { guard } from "./common.ts";

export default defineCommand({
  meta: {
    name: "simulate",
    description:
      "Boot one simulated machine on a link against a server (netboot or any PXE setup) and say whether it would reach the installer: " +
      "DHCP (or BSDP for a Mac), TFTP of the boot file, iPXE's script, the ESXi loader's own walk (per-MAC boot.cfg, prefix=, HEAD then GET of every module, " +
      "Content-Length checked on every answer), the BIOS disc image, the installer's DHCP and kickstart. Needs root (port 68); run it on another machine on the link, or in a network namespace",
  },
  args: {
    server: { type: "string", required: true, description: "The server under test: its answers are followed (another server's boot answer is a failure)", valueHint: "IP" },
    iface: { type: "string", description: "The link to boot on (default: the interface on --server's subnet)", valueHint: "NAME" },
    mac: { type: "string", description: "The machine's MAC (default: the interface's own)", valueHint: "MAC" },
    arch: { type: "string", default: "uefi", description: `The machine: ${SIM_ARCHES.join(", ")} (uefi-http: UEFI HTTP boot; mac: an Intel Mac speaking BSDP)`, valueHint: "ARCH" },
    expect: { type: "string", default: "install", description: "What the server should do with it: install (reach the installer), local (send it to its disk), refused (no boot answer)", valueHint: "WHAT" },
    "report-done": { type: "boolean", description: "Call the kickstart's done_url at the end, as its %post would (rehearses a lab's --until-done)" },
    "dhcp-wait": { type: "string", default: "10s", description: "How long each DHCP exchange waits for answers", valueHint: "DURATION" },
    json: { type: "boolean", description: "Print the steps and the verdict as JSON (one object) instead of lines" },
  },
  async run({ args }) {
    await guard(async () => {
      const arch = args.arch as SimArch;
      if (!SIM_ARCHES.includes(arch)) throw new ConfigError("E_ARG", `--arch ${args.arch}: one of ${SIM_ARCHES.join(", ")}`);
      const expect = args.expect as Expectation;
      if (!["install", "local", "refused"].includes(expect)) throw new ConfigError("E_ARG", `--expect ${args.expect}: install, local or refused`);
      parseIPv4(args.server, "--server");
      const iface = args.iface ?? ifaceFor(args.server);
      const mac: Mac = args.mac ? parseMac(args.mac) : macOf(iface);
      const json = args.json === true;
      if (!json) process.stdout.write(`netboot simulate: ${arch} machine ${mac} on ${iface}, server ${args.server}\n`);
      const result = await simulate({
        server: args.server,
        iface,
        mac,
        arch,
        expect,
        reportDone: args["report-done"] === true,
        dhcpWaitMs: parseDuration(args["dhcp-wait"], "--dhcp-wait"),
        onStep: json ? undefined : (s) => process.stdout.write(stepLine(s) + "\n"),
      });
      if (json) process.stdout.write(JSON.stringify(result, null, 1) + "\n");
      else process.stdout.write(`${result.ok ? "" : "FAIL: "}${result.verdict} (${result.seconds.toFixed(1)} s)\n`);
      process.exitCode = result.ok ? 0 : 1;
    });
  },
});

export function stepLine(s: SimStep): string {
  const size = s.bytes ? ` ${s.bytes} B` : "";
  const line = `${s.at.toFixed(3).padStart(8)} s  ${s.kind.padEnd(4)} ${s.request} ${s.detail}${size}  ${s.ms.toFixed(0)} ms`;
  return s.ok ? line : `${line}\n${" ".repeat(12)}✗ ${s.problem ?? "failed"}`;
}

function ifaceFor(server: string): string {
  const ip = parseIPv4(server);
  const hit = listIPv4().find((a) => !a.address.startsWith("127.") && inSubnet(ip, subnetOf(parseIPv4(a.address), a.prefix)));
  if (!hit) throw new ConfigError("E_IFACE", `no interface on ${server}'s subnet: pass --iface NAME`);
  return hit.iface;
}

function macOf(iface: string): Mac {
  const a = listIPv4().find((x) => x.iface === iface && x.mac);
  if (a?.mac) return parseMac(a.mac);
  // An interface without an IPv4 address is not in os.networkInterfaces(); Linux names its MAC in sysfs.
  try {
    return parseMac(readFileSync(`/sys/class/net/${iface}/address`, "utf8").trim());
  } catch {
    throw new ConfigError("E_ARG", `${iface}: no such interface, or no MAC this process can read: pass --mac`);
  }
}
