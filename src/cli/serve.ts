import { defineCommand } from "citty";
import { boundsText } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { untilDone } from "../hosts/until-done.ts";
import { progressView, signalled, startServing } from "./serving.ts";
import { givenFlags, parseDuration, serveArgs, serveConfigFromArgs, serveOptionNames } from "./args.ts";
import { guard, loggerFor } from "./common.ts";

export default defineCommand({
  meta: {
    name: "serve",
    description:
      "Network-boot ESXi installers from their ISOs, read in place: DHCP/proxyDHCP, BSDP, TFTP and HTTP, boot.cfg rewritten per client and route. " +
      "UEFI PXE gets iPXE (or, with --secure-boot or when iPXE never starts, VMware's signed loader by TFTP); UEFI HTTP boot the loader by URL; " +
      "BIOS boots the ISO itself as a CD through iPXE's sanboot (needs the image as an ISO with its El Torito boot record). " +
      "With --config lab.yaml: hosts by MAC (the rest get no boot answer), kickstart templates, install-done callbacks, boot-once; --store postgres://… shares the hosts between instances. " +
      boundsText(),
  },
  args: serveArgs,
  async run({ args, rawArgs }) {
    await guard(async () => {
      const json = args.json === true;
      // With --json, stdout is the events' alone: the log goes to stderr.
      const log = loggerFor(args, { toStderr: json });
      const lab = args.config ? loadLabFile(args.config, serveOptionNames) : undefined;
      const config = serveConfigFromArgs(args as never, undefined, lab, givenFlags(rawArgs));
      const timeoutMs = args.timeout ? parseDuration(args.timeout, "--timeout") : undefined;
      if (timeoutMs !== undefined && !args["until-done"]) throw new ConfigError("E_ARG", "--timeout goes with --until-done");
      const app = await startServing({ config, lab, log, json, user: args.user });
      const bus = app.bus;
      const stopped = signalled();
      const image = app.images[0]!;
      log.info(`ready: status page ${app.httpBase}/, UEFI loader ${app.httpBase}/${image.name}/mboot.efi, boot.cfg ${app.httpBase}/${image.name}/boot.cfg (Ctrl-C stops)`);
      const view = json ? undefined : progressView(app, log, args.live !== false);
      let code = 0;
      try {
        if (args["until-done"]) {
          const r = await untilDone({ store: app.store, bus, timeoutMs, stopped });
          for (const h of r.hosts) (r.code === 0 || h.done ? log.info : log.warn)(h.line);
          (r.code === 0 ? log.info : log.error)(r.summary);
          code = r.code;
        } else await stopped;
      } finally {
        view?.stop();
      }
      log.info("stopping");
      await app.close();
      if (code) process.exitCode = code;
    });
  },
});
