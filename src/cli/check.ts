import { defineCommand } from "citty";
import { createBootFiles } from "../boot/files.ts";
import { loadImage, type BootImage } from "../boot/image.ts";
import { DEFAULT_KICKSTART, renderTemplate } from "../boot/kickstart.ts";
import { bookFromLab } from "../hosts/book.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { kickstartVariables, redacted } from "../hosts/variables.ts";
import { openTree } from "../files/open.ts";
import type { FileTree } from "../files/tree.ts";
import { DEFAULTS, httpBase } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { formatIPv4, parseIPv4, subnetOf } from "../wire/ipv4.ts";
import { serveOptionNames } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: { name: "check", description: "Check a lab file without serving: every host's boot.cfg and kickstart rendered (secrets shown as ********), the problems listed; exit 0 when clean" },
  args: {
    config: { type: "string", description: "The lab file", valueHint: "lab.yaml" },
    "print-default-ks": { type: "boolean", description: "Print the built-in kickstart template (kickstart: default) and exit" },
    quiet: { type: "boolean", alias: "q", description: "Only the problems, not the rendered files" },
  },
  async run({ args }) {
    await guard(async () => {
      const out = (s: string) => process.stdout.write(s.endsWith("\n") ? s : s + "\n");
      if (args["print-default-ks"]) {
        out(DEFAULT_KICKSTART);
        return;
      }
      if (!args.config) throw new ConfigError("E_ARG", "check needs --config lab.yaml (or --print-default-ks)");
      const lab = loadLabFile(args.config, serveOptionNames);
      const problems: string[] = [];
      const trees: FileTree[] = [];
      const images: BootImage[] = [];
      try {
        for (const i of lab.images) {
          try {
            const tree = await openTree(i.source, { log: stderrLogger() });
            trees.push(tree);
            const image = await loadImage(tree, i.name);
            if (!image.esxi) problems.push(`${i.at}: images.${i.name}: ${i.source} has no BOOT.CFG with a kernel= line (not an ESXi installer?)`);
            images.push(image);
          } catch (err) {
            problems.push(`${i.at}: images.${i.name}: ${(err as Error).message}`);
          }
        }
        if (problems.length === 0 && images.length === 0) problems.push(`${lab.path}: no images:`);
        if (problems.length) {
          for (const p of problems) process.stderr.write(p + "\n");
          process.exitCode = 2;
          return;
        }
        const book = bookFromLab(lab, images.map((i) => i.name));
        const ip = typeof lab.server.ip === "string" ? lab.server.ip : "SERVER";
        const base = httpBase(ip, Number(typeof lab.server["http-port"] === "string" ? lab.server["http-port"] : DEFAULTS.httpPort));
        const netmask = ip !== "SERVER" ? formatIPv4(subnetOf(parseIPv4(ip), 24).mask) : undefined;
        const site = { base, netmask, gateway: typeof lab.server.router === "string" ? lab.server.router : undefined, dns: typeof lab.server.dns === "string" ? lab.server.dns.split(",") : [] };
        const files = createBootFiles({ images, httpBase: base, kickstart: async () => new Uint8Array(0), hasKickstart: (mac) => !!(mac && book.lookup(mac)?.kickstart && book.lookup(mac)?.mode !== "local") });
        for (const h of book.hosts) {
          const image = images.find((i) => i.name === h.image)!;
          const cfg = files.bootCfgFor(image, "efi", h.mac, "http");
          let ks: string | undefined;
          if (h.kickstart) {
            try {
              ks = renderTemplate(h.kickstart.text, redacted(kickstartVariables(h, h.mac, image.name, site, undefined, "TOKEN"), h));
            } catch (err) {
              problems.push(`${h.at}: ${h.hostname ?? h.mac}: kickstart ${h.kickstart.name}: ${(err as Error).message}`);
            }
          }
          if (args.quiet) continue;
          out(`# ${h.mac} ${h.hostname ?? ""} (${h.at}): image ${h.image}, mode ${h.mode}, kickstart ${h.kickstart?.name ?? "none (interactive)"}`);
          out(`## boot.cfg`);
          out(cfg ?? "(the image has no boot.cfg)");
          if (ks !== undefined) {
            out(`## ks.cfg`);
            out(ks);
          }
        }
        for (const p of problems) process.stderr.write(p + "\n");
        if (problems.length) process.exitCode = 2;
        else if (!args.quiet) out(`${lab.path}: ${book.hosts.length} host(s), ${images.length} image(s): no problems`);
      } finally {
        for (const t of trees) await t.close();
      }
    });
  },
});
