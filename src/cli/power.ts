import { defineCommand } from "citty";
import { BOOT_TARGETS, describeKept, type BootTarget } from "../bmc/driver.ts";
import { BmcError, ConfigError } from "../errors.ts";
import { bookFromLab, readSecret } from "../hosts/book.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { driverFor, hostName, type Link } from "../drive/drivers.ts";
import { interfaceAddress } from "../net/interfaces.ts";
import { tryParseMac } from "../wire/mac.ts";
import { serveOptionNames } from "./args.ts";
import { guard } from "./common.ts";

const ACTIONS = ["on", "off", "cycle", "status", "bootdev"] as const;

export default defineCommand({
  meta: { name: "power", description: "Drive one host's BMC by hand, as netboot reinstall does: power on|off|cycle, status (power and next boot), bootdev pxe|http|cd|disk (next boot only, read back)" },
  args: {
    host: { type: "positional", description: "A MAC or a hostname of the lab file", required: true },
    action: { type: "positional", description: ACTIONS.join("|"), required: true },
    target: { type: "positional", description: `bootdev: ${BOOT_TARGETS.join("|")}`, required: false },
    config: { type: "string", description: "The lab file: the host's bmc: (how to reach it, the password's env or file)", valueHint: "lab.yaml" },
    uri: { type: "string", description: "bootdev http: the URL the firmware boots (Redfish HttpBootUri)", valueHint: "URL" },
    iface: { type: "string", description: "Wake-on-LAN: the link the magic packet leaves by (default: the lab file's server: iface)", valueHint: "NAME" },
  },
  async run({ args }) {
    await guard(async () => {
      if (!args.config) throw new ConfigError("E_ARG", "power needs --config lab.yaml (the host's bmc: is there)");
      const action = args.action as (typeof ACTIONS)[number];
      if (!ACTIONS.includes(action)) throw new ConfigError("E_ARG", `${JSON.stringify(args.action)}: use ${ACTIONS.join(", ")}`);
      const target = args.target as BootTarget | undefined;
      if (action === "bootdev" && (!target || !BOOT_TARGETS.includes(target))) throw new ConfigError("E_ARG", `bootdev needs a target: ${BOOT_TARGETS.join(", ")}`);
      const lab = loadLabFile(args.config, serveOptionNames);
      const book = bookFromLab(lab, lab.images.map((i) => i.name), process.env, { templates: false });
      const mac = tryParseMac(args.host);
      const host = book.hosts.find((h) => (mac ? h.mac === mac : h.hostname === args.host));
      if (!host) throw new ConfigError("E_ARG", `${JSON.stringify(args.host)} is not a host of ${lab.path} (a MAC or a hostname)`);
      const iface = args.iface ?? (typeof lab.server.iface === "string" ? lab.server.iface : undefined);
      let link: Link | undefined;
      if (host.bmc?.kind === "wol") link = iface ? interfaceAddress(iface) : undefined;
      const driver = driverFor(host, link);
      if (host.bmc?.kind === "redfish" && host.bmc.insecure) process.stderr.write(`${hostName(host)}: bmc insecure: true: the BMC's certificate is not checked (anyone on the path can pose as it and read its password)\n`);
      // What a BMC answers is printed; take out the password in case one echoes it.
      const secret = host.bmc && host.bmc.kind !== "wol" ? readSecret(host.bmc.password, `${host.at}: bmc.password`) : undefined;
      const scrub = (t: string) => (secret ? t.split(secret).join("********") : t);
      const out = (line: string) => process.stdout.write(`${scrub(line)}\n`);
      try {
        if (action === "status") {
          const state = await driver.powerState();
          // A BMC may refuse to say what the next boot is (ipmi_sim with a startcmd answers 0xcc): said, not fatal.
          const boot = await driver.readBoot().then(
            (b) => b.raw,
            (err: Error) => `not readable (${err instanceof BmcError ? err.answer : err.message})`,
          );
          out(`${hostName(host)}: power ${state}; next boot: ${boot} (${driver.name})`);
        } else if (action === "bootdev") {
          const kept = await driver.setBootOnce(target!, { uri: args.uri });
          const partial = describeKept({ target: target!, uri: args.uri }, kept);
          out(`${hostName(host)}: next boot ${target}: ${partial ?? `kept ${kept.raw}`} (${driver.name})`);
        } else {
          await driver.power(action);
          out(`${hostName(host)}: power ${action} sent (${driver.name})`);
        }
      } catch (err) {
        if (err instanceof BmcError) throw new BmcError(err.code, scrub(err.message), scrub(err.answer));
        throw err;
      } finally {
        await driver.close();
      }
    });
  },
});
