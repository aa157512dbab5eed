import { defineCommand } from "citty";
import { startApp, type AppHandle } from "../app.ts";
import { boundsText } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { EventBus } from "../events.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { untilDone } from "../hosts/until-done.ts";
import type { Logger } from "../log.ts";
import type { BootImage } from "../boot/image.ts";
import { unreadable } from "../files/open.ts";
import { checkDirsAs, checkReachAs, describeIdentity, dropTo, handOver, isRoot, resolveIdentity, type Identity } from "../os/privilege.ts";
import { LiveView } from "../ui/terminal.ts";
import { ansiStyle, phaseLine, plainStyle, tableLines } from "../ui/table.ts";
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
      const bus = new EventBus(log);
      if (json) bus.subscribe((e) => process.stdout.write(JSON.stringify(e) + "\n"));
      // Who to become, decided before anything is opened: a --user that does not exist stops here.
      const become = isRoot() ? resolveIdentity(args.user) : undefined;
      if (args.user && !isRoot()) log.warn(`--user ${args.user}: not running as root, nothing to drop`);
      const app = await startApp(config, log, {
        lab,
        bus,
        // Every socket is bound; nothing has been answered or written yet.
        beforeServe: ({ images }) => dropPrivileges({ stateDir: config.stateDir, cacheDir: config.cacheDir, images }, become, args.user, log),
      });
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

/**
 * Every socket is bound and every source open: give the state and cache directories to the account and
 * become it; then check, as that account, every path the servers go on using (the state and cache
 * directories, each image), and stop with one line if one will not do.
 */
async function dropPrivileges(paths: { stateDir: string; cacheDir: string | undefined; images: readonly BootImage[] }, who: Identity | undefined, asked: string | undefined, log: Logger): Promise<void> {
  if (!isRoot()) return;
  if (!who) {
    log.warn(asked ? `--user ${asked}: keeping root, as asked` : "running as root");
    return;
  }
  const dirs = [{ dir: paths.stateDir, flag: "--state-dir" }, ...(paths.cacheDir ? [{ dir: paths.cacheDir, flag: "--cache-dir" }] : [])];
  checkReachAs(dirs, who);
  handOver([paths.stateDir, paths.cacheDir], who);
  dropTo(who);
  checkDirsAs(dirs, who);
  for (const image of paths.images) {
    const why = await unreadable(image.tree);
    if (why) throw new ConfigError("E_PRIV", `${image.tree.description} is not readable as ${who.name} (${why}): make it readable to that user, or give --user root`);
  }
  log.info(`running as ${describeIdentity(who)} (root dropped; ${paths.stateDir}${paths.cacheDir ? ` and ${paths.cacheDir}` : ""} handed over)`);
}

/**
 * Where the machines are: a live table under the log when stdout is a terminal (not under CI, not with
 * TERM=dumb or --no-live), else one plain line per phase change.
 */
function progressView(app: AppHandle, log: Logger, wanted: boolean): { stop(): void } | undefined {
  const tty = wanted && process.stdout.isTTY === true && !process.env.CI && process.env.TERM !== "dumb";
  if (!tty) {
    const unsubscribe = app.bus.subscribe((e) => {
      if (e.type === "host.phase" && e.mac && app.views.get(e.mac)) log.info(phaseLine(app.views.row(e.mac), e.previous));
    });
    return { stop: unsubscribe };
  }
  const style = process.env.NO_COLOR ? plainStyle : ansiStyle;
  const view = new LiveView({
    out: process.stdout,
    also: process.stderr.isTTY ? [process.stderr] : [],
    frame: (columns, rows) => tableLines({ hosts: app.views.rows(), status: app.status(), linkHint: app.hints.linkHint() }, columns, rows, Date.now(), style),
  });
  const unsubscribe = app.bus.subscribe(() => view.invalidate());
  view.start();
  return {
    stop() {
      unsubscribe();
      view.stop();
    },
  };
}

/** Resolves at the first SIGINT or SIGTERM. */
function signalled(): Promise<void> {
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
