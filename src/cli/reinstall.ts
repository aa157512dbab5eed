import { defineCommand } from "citty";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { DEFAULTS, LIMITS } from "../config.ts";
import { hostName } from "../drive/drivers.ts";
import { selectTargets } from "../drive/targets.ts";
import { junitReport } from "../drive/junit.ts";
import { reinstall, summarize, type DriveHost } from "../drive/reinstall.ts";
import { ConfigError } from "../errors.ts";
import { bookFromLab } from "../hosts/book.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { macDirName } from "../wire/mac.ts";
import { givenFlags, parseDuration, serveArgs, serveConfigFromArgs, serveOptionNames } from "./args.ts";
import { guard, loggerFor } from "./common.ts";
import { progressView, signalled, startServing } from "./serving.ts";

const { source: _source, "until-done": _untilDone, timeout: _timeout, ...serveOptions } = serveArgs;
void [_source, _untilDone, _timeout];

const sec = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

export default defineCommand({
  meta: {
    name: "reinstall",
    description:
      "Reinstall hosts with nobody touching them: serve as `serve --config` does, and drive each host's BMC (lab file bmc:): the next boot once (PXE, UEFI HTTP, or its own ISO as virtual media or URL), power on or cycle, " +
      "a power cycle again when it shows no sign of life, the media ejected and the override cleared after its install, done when the installed ESXi answers (verify:). Exit 0 when every host is done, 1 naming each that failed",
  },
  args: {
    hosts: { type: "positional", required: false, description: "MACs or hostnames of the lab file (default: every armed host with a bmc:)", valueHint: "HOST…" },
    ...serveOptions,
    stagger: { type: "string", default: sec(LIMITS.drive.staggerMs), description: "Time between batches of hosts started", valueHint: "DURATION" },
    batch: { type: "string", default: String(LIMITS.drive.batch), description: "Hosts started together", valueHint: "N" },
    retries: { type: "string", default: String(LIMITS.drive.retries), description: "Power cycles again for a host that shows no sign of life", valueHint: "N" },
    "sign-of-life": { type: "string", default: sec(LIMITS.drive.signOfLifeMs), description: "How long a powered host has to show a sign of life (a DHCP answer of ours, a file, a request for its ISO)", valueHint: "DURATION" },
    timeout: { type: "string", default: sec(LIMITS.drive.timeoutMs), description: "Give up on every host not done after this long", valueHint: "DURATION" },
    junit: { type: "string", description: "Write a JUnit XML report here: one testcase per host (CI systems show it)", valueHint: "FILE" },
  },
  async run({ args, rawArgs }) {
    await guard(async () => {
      if (!args.config) throw new ConfigError("E_ARG", "reinstall needs --config lab.yaml (the hosts, their bmc: and images)");
      const json = args.json === true;
      const log = loggerFor(args, { toStderr: json });
      const lab = loadLabFile(args.config, serveOptionNames);
      const given = givenFlags(rawArgs);
      const config = serveConfigFromArgs({ ...(args as Record<string, unknown>), _: [] } as never, undefined, lab, given);
      const count = (v: string, flag: string, min: number) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) throw new ConfigError("E_ARG", `--${flag} ${v}: a whole number, at least ${min}`);
        return n;
      };
      const opts = {
        staggerMs: parseDuration(args.stagger, "--stagger"),
        batch: count(args.batch, "batch", 1),
        retries: count(args.retries, "retries", 0),
        signOfLifeMs: parseDuration(args["sign-of-life"], "--sign-of-life"),
        timeoutMs: parseDuration(args.timeout, "--timeout"),
      };
      // Who is driven, each driver made and its password read now (as root, before the drop): one line per host that cannot be.
      const book = bookFromLab(lab, lab.images.map((i) => i.name), process.env, { templates: false });
      const named = (args._ as string[] | undefined) ?? [];
      const { hosts: targets, drivers, secrets, problems } = selectTargets(book, named, lab.path, { address: config.ip, prefix: config.prefix ?? DEFAULTS.prefix });
      if (problems.length) throw new ConfigError("E_REINSTALL", problems.join("\n"));
      const driven = new Set(targets.map((h) => h.mac));
      for (const h of targets) if (h.bmc?.kind === "redfish" && h.bmc.insecure) log.warn(`${hostName(h)}: bmc insecure: true: the BMC's certificate is not checked (anyone on the path can pose as it and read its password)`);

      // The report is opened now, as the user who ran netboot (root is dropped at the start), and written at the end.
      let junitFd: number | undefined;
      if (args.junit) {
        try {
          junitFd = openSync(args.junit, "w");
        } catch (err) {
          throw new ConfigError("E_JUNIT", `--junit ${args.junit}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (err as Error).message.replace(/^[A-Z]+: /, "").split(",")[0]}`);
        }
      }
      // Done means the installed ESXi answers, for the hosts this run drives (unless the lab says otherwise).
      const app = await startServing({ config, lab, log, json, user: args.user, verifyDefault: (mac) => (driven.has(mac) ? "https" : "none") });
      const stopped = signalled();
      let code = 1;
      const view = json ? undefined : progressView(app, log, args.live !== false);
      try {
        // Armed: its next network boot installs. A host named on the command line that is not (done in mode
        // once) is refused, nothing powered; without names, only the armed hosts are taken, the rest said.
        const unarmed = targets.filter((h) => !app.policy.isArmed(h.mac));
        const why = (h: (typeof targets)[number]) => `${hostName(h)}: not armed: ${app.policy.armed(h.mac).why}`;
        if (named.length && unarmed.length) throw new ConfigError("E_REINSTALL", unarmed.map(why).join("\n"));
        for (const h of unarmed) log.info(`${why(h)}; left alone`);
        const armed = targets.filter((h) => !unarmed.includes(h));
        if (armed.length === 0) throw new ConfigError("E_REINSTALL", `${lab.path}: no armed host with a bmc: (netboot hosts rearm HOST arms one again)`);
        const hosts: DriveHost[] = armed.map((h) => {
          const image = app.images.find((i) => i.name === h.image) ?? app.images[0]!;
          // The server's own entry (its verify: is this run's default for the hosts it drives).
          return { entry: app.store.book.lookup(h.mac) ?? h, driver: drivers.get(h.mac)!, isoUrl: `${app.httpBase}/${image.name}/${macDirName(h.mac)}.iso`, build: image.esxi?.summary.buildNumber };
        });
        log.info(`reinstall: ${hosts.length} host(s), ${opts.batch} at a time every ${args.stagger}; sign of life within ${args["sign-of-life"]}, ${opts.retries} ${opts.retries === 1 ? "retry" : "retries"}; timeout ${args.timeout}`);
        const started = new Date();
        const outcomes = await reinstall(hosts, opts, {
          store: app.store,
          bus: app.bus,
          log,
          ipOf: (mac) => app.views.ipOf(mac),
          stopped,
          secrets,
        });
        const s = summarize(outcomes);
        for (const [i, line] of s.lines.entries()) (outcomes[i]!.ok ? log.info : log.error)(line);
        (s.code === 0 ? log.info : log.error)(s.summary);
        if (junitFd !== undefined) writeFileSync(junitFd, junitReport(outcomes, started));
        code = s.code;
      } finally {
        if (junitFd !== undefined) closeSync(junitFd);
        view?.stop();
        log.info("stopping");
        await app.close();
      }
      process.exitCode = code;
    });
  },
});

