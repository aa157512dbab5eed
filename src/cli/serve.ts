import { defineCommand } from "citty";
import { accessSync, closeSync, constants, openSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import { startApp, type AppHandle } from "../app.ts";
import { hostView } from "../hosts/api.ts";
import type { Logger } from "../log.ts";
import { LiveView } from "../ui/terminal.ts";
import { ansiStyle, phaseLine, plainStyle, tableLines } from "../ui/table.ts";
import { EventBus, type NetbootEvent } from "../events.ts";
import { loadLabFile } from "../hosts/lab.ts";
import type { HostRegistry } from "../hosts/registry.ts";
import { givenFlags, parseDuration, serveArgs, serveConfigFromArgs, serveOptionNames } from "./args.ts";
import { guard, loggerFor } from "./common.ts";
import { describeIdentity, dropTo, handOver, isRoot, resolveIdentity, type Identity } from "../os/privilege.ts";

export default defineCommand({
  meta: {
    name: "serve",
    description:
      "Network-boot ESXi installers from their ISOs, read in place: DHCP/proxyDHCP, BSDP, TFTP and HTTP, boot.cfg rewritten per client and route. " +
      "UEFI PXE gets iPXE (or, with --secure-boot or when iPXE never starts, VMware's signed loader by TFTP); UEFI HTTP boot the loader by URL; " +
      "BIOS boots the ISO itself as a CD through iPXE's sanboot (needs the image as an ISO with its El Torito boot record). " +
      "With --config lab.yaml: hosts by MAC (the rest get no boot answer), kickstart templates, install-done callbacks, boot-once. " +
      "Bounds: DHCP/BSDP answers 20 at once then 5/s per MAC, offers to unlisted MACs held 10 s (listed 60 s), ACKs sent after the lease is fsynced; " +
      "TFTP 512 transfers, 16 per address (error \"server busy\"); HTTP 1024 answers at once (503 + Retry-After), 1000 requests per connection, headers 16 KiB within 10 s, 120 s idle",
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
      const bus = new EventBus();
      if (json) bus.subscribe((e) => process.stdout.write(JSON.stringify(e) + "\n"));
      // Who to become, decided before anything is opened: a --user that does not exist stops here.
      const become = isRoot() ? resolveIdentity(args.user) : undefined;
      if (args.user && !isRoot()) log.warn(`--user ${args.user}: not running as root, nothing to drop`);
      const app = await startApp(config, log, { lab, bus });
      try {
        await dropPrivileges(app, become, args.user, app.log);
      } catch (err) {
        await app.close();
        throw err;
      }
      const image = app.images[0]!;
      log.info(`ready: status page ${app.httpBase}/, UEFI loader ${app.httpBase}/${image.name}/mboot.efi, boot.cfg ${app.httpBase}/${image.name}/boot.cfg (Ctrl-C stops)`);
      const view = json ? undefined : progressView(app, log, args.live !== false);
      let code = 0;
      try {
        if (args["until-done"]) code = await untilDone(app.hosts, bus, log, timeoutMs);
        else await waitForSignal();
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
 * become it. Then check that each image can still be read as that account (a directory source under
 * /root cannot), and stop with one line if not.
 */
async function dropPrivileges(app: AppHandle, who: Identity | undefined, asked: string | undefined, log: Logger): Promise<void> {
  if (!isRoot()) return;
  if (!who) {
    log.warn(asked ? `--user ${asked}: keeping root, as asked` : "running as root");
    return;
  }
  handOver([app.config.stateDir, app.config.cacheDir], who);
  dropTo(who);
  for (const dir of [app.config.stateDir, app.config.cacheDir]) {
    if (!dir) continue;
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw new ConfigError("E_PRIV", `${dir} is not writable as ${who.name} (a directory above it is closed to that user?): choose another --state-dir/--cache-dir, or give --user`);
    }
  }
  for (const image of app.images) {
    const probe = (await image.tree.stat("boot.cfg")) ?? (await image.tree.list("/")).find((f) => f.type === "file");
    try {
      if (probe?.type === "file") {
        const data = await image.tree.open(probe);
        // The HTTP edge opens a local file by its path for every answer (sendfile): that path must open.
        if (data.local) closeSync(openSync(data.local.path, "r"));
        else await data.read(0, Math.min(probe.size, 1));
      }
    } catch (err) {
      throw new ConfigError("E_PRIV", `${image.tree.description} is not readable as ${who.name} (${(err as Error).message.split("\n")[0]}): make it readable to that user, or give --user root`);
    }
  }
  log.info(`running as ${describeIdentity(who)} (root dropped; ${app.config.stateDir}${app.config.cacheDir ? ` and ${app.config.cacheDir}` : ""} handed over)`);
}

/**
 * Where the machines are: a live table under the log when stdout is a terminal (not under CI, not with
 * TERM=dumb or --no-live), else one plain line per phase change.
 */
function progressView(app: AppHandle, log: Logger, wanted: boolean): { stop(): void } | undefined {
  const tty = wanted && process.stdout.isTTY === true && !process.env.CI && process.env.TERM !== "dumb";
  if (!tty) {
    const unsubscribe = app.bus.subscribe((e) => {
      if (e.type === "host.phase" && e.mac && app.hosts.get(e.mac)) log.info(phaseLine(hostView(app.hosts, e.mac), e.previous));
    });
    return { stop: unsubscribe };
  }
  const style = process.env.NO_COLOR ? plainStyle : ansiStyle;
  const view = new LiveView({
    out: process.stdout,
    also: process.stderr.isTTY ? [process.stderr] : [],
    frame: (columns, rows) => tableLines({ hosts: app.hosts.all().map((s) => hostView(app.hosts, s.mac)), status: app.status(), linkHint: app.hints.linkHint() }, columns, rows, Date.now(), style),
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

/** --until-done: 0 when every listed once/install host is done, 1 at a failure, the timeout or Ctrl-C. */
async function untilDone(hosts: HostRegistry, bus: EventBus, log: ReturnType<typeof loggerFor>, timeoutMs: number | undefined): Promise<number> {
  const targets = hosts.book.hosts.filter((h) => h.mode !== "local");
  if (targets.length === 0) {
    log.error("--until-done: no host in mode once or install to wait for (list them in the lab file, or with --allow)");
    return 1;
  }
  const t0 = Date.now();
  const pending = () => targets.filter((h) => hosts.get(h.mac)?.phase !== "done");
  const result = await new Promise<{ code: number; why: string }>((resolve) => {
    const check = (e?: NetbootEvent) => {
      if (e?.type === "host.failed" && targets.some((h) => h.mac === e.mac)) resolve({ code: 1, why: `${e.hostname ?? e.mac} failed: ${e.reason}` });
      else if (pending().length === 0) resolve({ code: 0, why: "every host reported done" });
    };
    bus.subscribe(check);
    check();
    if (timeoutMs !== undefined) setTimeout(() => resolve({ code: 1, why: `timed out after ${(timeoutMs / 1000).toFixed(0)} s` }), timeoutMs).unref?.();
    waitForSignal().then(() => resolve({ code: 1, why: "stopped before every host was done" }));
  });
  const line = (h: (typeof targets)[number]) => {
    const s = hosts.get(h.mac);
    const took = s?.doneAt && s.startedAt ? `${((s.doneAt - s.startedAt) / 1000).toFixed(0)} s` : s?.startedAt ? `${((Date.now() - s.startedAt) / 1000).toFixed(0)} s so far` : "-";
    return `${h.mac}  ${(h.hostname ?? "-").padEnd(16)} ${(s?.phase ?? "not seen").padEnd(10)} ${took}`;
  };
  for (const h of targets) (result.code === 0 || hosts.get(h.mac)?.phase === "done" ? log.info : log.warn)(line(h));
  const left = pending();
  if (result.code === 0) log.info(`--until-done: ${result.why} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  else log.error(`--until-done: ${result.why}; not done: ${left.map((h) => `${h.hostname ?? h.mac} (last phase: ${hosts.get(h.mac)?.phase ?? "not seen"})`).join(", ") || "none"}`);
  return result.code;
}

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
