import { defineCommand } from "citty";
import { startApp } from "../app.ts";
import { serveArgs, serveConfigFromArgs } from "./args.ts";
import { guard, loggerFor } from "./common.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve an ESXi installer ISO over HTTP, read in place, with boot.cfg rewritten per client" },
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
