import { defineCommand } from "citty";
import { parseBootCfg, rewriteBootCfg, serializeBootCfg } from "../boot/esxi/bootcfg.ts";
import { rewriteFor, type BootCfgRoute } from "../boot/files.ts";
import { imageNameFromSource, loadImage } from "../boot/image.ts";
import { ConfigError, SourceError } from "../errors.ts";
import { openTree } from "../files/open.ts";
import { macDirName, parseMac } from "../wire/mac.ts";
import { parseIntArg, sourceArg } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: { name: "bootcfg", description: "Print the boot.cfg a client gets: prefix added, leading / stripped, kickstart in kernelopt (over HTTP, over TFTP, or on the BIOS disc image)" },
  args: {
    ...sourceArg,
    server: { type: "string", required: true, description: "Base URL of the netboot HTTP server", valueHint: "http://IP[:PORT]" },
    mac: { type: "string", description: "Client MAC (replaces {mac} in --ks with 01-aa-bb-cc-dd-ee-ff)", valueHint: "MAC" },
    ks: { type: "string", description: "Kickstart URL to put into kernelopt as ks=…", valueHint: "URL" },
    name: { type: "string", description: "Image name in URLs (default: from the ISO file name)" },
    bios: { type: "boolean", description: "Use /BOOT.CFG (mboot.c32) instead of /EFI/BOOT/BOOT.CFG (mboot.efi)" },
    route: { type: "string", default: "http", description: "How the loader reads it: http (prefix=URL), tftp (prefix=NAME, tftpblksize=), disc (BIOS sanboot: paths kept, BOOTIF added; implies --bios)", valueHint: "ROUTE" },
    "tftp-blksize": { type: "string", default: "16384", description: "tftpblksize= for --route tftp (0: none)", valueHint: "N" },
    "keep-cdromboot": { type: "boolean", description: "Keep cdromBoot in kernelopt" },
    kernelopt: { type: "string", description: "Extra kernel options appended to kernelopt" },
  },
  async run({ args }) {
    await guard(async () => {
      if (!/^https?:\/\/[^/]+$/i.test(args.server.replace(/\/+$/, ""))) {
        throw new ConfigError("E_ARG", `--server ${JSON.stringify(args.server)}: expected http://IP[:PORT]`);
      }
      const mac = args.mac ? parseMac(args.mac) : undefined;
      const route = args.route as BootCfgRoute;
      if (!["http", "tftp", "disc"].includes(route)) throw new ConfigError("E_ARG", `--route ${JSON.stringify(args.route)}: use http, tftp or disc`);
      const blksize = parseIntArg(args["tftp-blksize"], "--tftp-blksize", 16384);
      if (args.ks?.includes("{mac}") && !mac) throw new ConfigError("E_ARG", "--ks uses {mac}: pass --mac too");
      const tree = await openTree(args.source, { cacheDir: args["cache-dir"], log: stderrLogger() });
      try {
        const image = await loadImage(tree, args.name ?? imageNameFromSource(args.source));
        const esxi = image.esxi;
        if (!esxi) throw new SourceError("E_NOT_ESXI", `${args.source}: no BOOT.CFG or EFI/BOOT/BOOT.CFG with a kernel= line`);
        const cfg = args.bios || route === "disc" ? (esxi.biosCfg ?? esxi.efiCfg) : (esxi.efiCfg ?? esxi.biosCfg);
        const out = rewriteBootCfg(
          cfg ?? parseBootCfg(""),
          rewriteFor(route, {
            imageUrl: `${args.server.replace(/\/+$/, "")}/${image.name}/`,
            imageName: image.name,
            ks: args.ks?.replaceAll("{mac}", mac ? macDirName(mac) : ""),
            mac,
            keepCdromBoot: args["keep-cdromboot"] ?? false,
            extraKernelopt: args.kernelopt,
            tftpBlksize: blksize || undefined,
          }),
        );
        process.stdout.write(serializeBootCfg(out));
      } finally {
        await tree.close();
      }
    });
  },
});
