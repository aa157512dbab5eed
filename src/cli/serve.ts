import { defineCommand } from "citty";
import { startApp } from "../app.ts";
import { serveArgs, serveConfigFromArgs } from "./args.ts";
import { guard, loggerFor } from "./common.ts";

export default defineCommand({
  meta: {
    name: "serve",
    description:
      "Network-boot an ESXi installer from its ISO, read in place: DHCP/proxyDHCP, BSDP, TFTP and HTTP, boot.cfg rewritten per client and route. " +
      "UEFI PXE gets iPXE (or, with --secure-boot or when iPXE never starts, VMware's signed loader by TFTP); UEFI HTTP boot the loader by URL; " +
      "BIOS boots the ISO itself as a CD through iPXE's sanboot (needs the image as an ISO with its El Torito boot record)",
  },
  args: serveArgs,
  async run({ args }) {
    await guard(async () => {
      const log = loggerFor(args);
      const app = await startApp(serveConfigFromArgs(args), log);
      const image = app.images[0]!;
      log.info(`ready: UEFI loader ${app.httpBase}/${image.name}/mboot.efi, boot.cfg ${app.httpBase}/${image.name}/boot.cfg (Ctrl-C stops)`);
      await waitForSignal();
      log.info("stopping");
      await app.close();
    });
  },
});

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve();
    };
    process.on("SIGINT", done);
    process.on("SIGTERM", done);
  });
}
