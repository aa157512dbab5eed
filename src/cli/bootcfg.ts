import { defineCommand } from "citty";
import { parseBootCfg, rewriteBootCfg, serializeBootCfg } from "../boot/esxi/bootcfg.ts";
import { imageNameFromSource, loadImage } from "../boot/image.ts";
import { ConfigError, SourceError } from "../errors.ts";
import { openTree } from "../files/open.ts";
import { macDirName, parseMac } from "../wire/mac.ts";
import { sourceArg } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: { name: "bootcfg", description: "Print the boot.cfg a client gets: prefix added, leading / stripped, kickstart in kernelopt" },
  args: {
    ...sourceArg,
    server: { type: "string", required: true, description: "Base URL of the netboot HTTP server", valueHint: "http://IP[:PORT]" },
    mac: { type: "string", description: "Client MAC (replaces {mac} in --ks with 01-aa-bb-cc-dd-ee-ff)", valueHint: "MAC" },
    ks: { type: "string", description: "Kickstart URL to put into kernelopt as ks=…", valueHint: "URL" },
    name: { type: "string", description: "Image name in URLs (default: from the ISO file name)" },
    bios: { type: "boolean", description: "Use /BOOT.CFG (mboot.c32) instead of /EFI/BOOT/BOOT.CFG (mboot.efi)" },
    "keep-cdromboot": { type: "boolean", description: "Keep cdromBoot in kernelopt" },
    kernelopt: { type: "string", description: "Extra kernel options appended to kernelopt" },
  },
  async run({ args }) {
    await guard(async () => {
      if (!/^https?:\/\/[^/]+$/i.test(args.server.replace(/\/+$/, ""))) {
        throw new ConfigError("E_ARG", `--server ${JSON.stringify(args.server)}: expected http://IP[:PORT]`);
      }
      const mac = args.mac ? parseMac(args.mac) : undefined;
      if (args.ks?.includes("{mac}") && !mac) throw new ConfigError("E_ARG", "--ks uses {mac}: pass --mac too");
      const tree = await openTree(args.source, { cacheDir: args["cache-dir"], log: stderrLogger() });
      try {
        const image = await loadImage(tree, args.name ?? imageNameFromSource(args.source));
        const esxi = image.esxi;
        if (!esxi) throw new SourceError("E_NOT_ESXI", `${args.source}: no BOOT.CFG or EFI/BOOT/BOOT.CFG with a kernel= line`);
        const cfg = args.bios ? (esxi.biosCfg ?? esxi.efiCfg) : (esxi.efiCfg ?? esxi.biosCfg);
        const out = rewriteBootCfg(cfg ?? parseBootCfg(""), {
          prefix: `${args.server.replace(/\/+$/, "")}/${image.name}/`,
          ks: args.ks?.replaceAll("{mac}", mac ? macDirName(mac) : ""),
          keepCdromBoot: args["keep-cdromboot"] ?? false,
          extraKernelopt: args.kernelopt,
        });
        process.stdout.write(serializeBootCfg(out));
      } finally {
        await tree.close();
      }
    });
  },
});
