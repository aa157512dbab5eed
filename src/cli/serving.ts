/** What serve and reinstall share: the start (root dropped after the bind), the progress view, the stop signal. */
import { startApp, type AppHandle } from "../app.ts";
import type { BootImage } from "../boot/image.ts";
import { EventBus } from "../events.ts";
import type { LabFile, Verify } from "../hosts/lab.ts";
import type { Logger } from "../log.ts";
import { unreadable } from "../files/open.ts";
import { ConfigError } from "../errors.ts";
import { checkDirsAs, checkReachAs, describeIdentity, dropTo, handOver, isRoot, resolveIdentity, type Identity } from "../os/privilege.ts";
import { LiveView } from "../ui/terminal.ts";
import { ansiStyle, phaseLine, plainStyle, tableLines } from "../ui/table.ts";
import type { ServeConfig } from "../config.ts";
import type { Mac } from "../wire/mac.ts";

/** Starts the servers as serve does: the events on stdout with --json, root dropped once every socket is bound. */
export async function startServing(o: { config: ServeConfig; lab: LabFile | undefined; log: Logger; json: boolean; user: string | undefined; verifyDefault?: Verify | ((mac: Mac) => Verify) }): Promise<AppHandle> {
  const bus = new EventBus(o.log);
  if (o.json) bus.subscribe((e) => process.stdout.write(JSON.stringify(e) + "\n"));
  // Who to become, decided before anything is opened: a --user that does not exist stops here.
  const become = isRoot() ? resolveIdentity(o.user) : undefined;
  if (o.user && !isRoot()) o.log.warn(`--user ${o.user}: not running as root, nothing to drop`);
  return startApp(o.config, o.log, {
    lab: o.lab,
    bus,
    verifyDefault: o.verifyDefault,
    // Every socket is bound; nothing has been answered or written yet.
    beforeServe: ({ images }) => dropPrivileges({ stateDir: o.config.stateDir, cacheDir: o.config.cacheDir, images }, become, o.user, o.log),
  });
}

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
export function progressView(app: AppHandle, log: Logger, wanted: boolean): { stop(): void } | undefined {
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
export function signalled(): Promise<void> {
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
