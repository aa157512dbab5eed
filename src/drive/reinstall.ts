/**
 * netboot reinstall: drives each host from its BMC to a verified install, in batches spaced by a stagger.
 * Per host:
 *
 *   0. what an earlier install left (failed; done in mode install) is forgotten (rearmed)
 *   1. the next boot once: PXE, UEFI HTTP, or the virtual CD after inserting the host's own ISO by URL
 *      (via:), read back; what the BMC did not keep is one line and the drive goes on (the sign-of-life
 *      bound and the retry catch a machine that then boots from its disk); again before every retry
 *   2. power: on when off, else a cycle
 *   3. a sign of life within the bound: a phase of its install (offered, or a file it fetched), or for
 *      virtual media and ISO URLs the first request for its ISO; else cycled again, up to the retries,
 *      then failed with the reason
 *   4. its install: installed (or done when verify: none), failed, or the run's timeout
 *   5. the media ejected and the override cleared (also when it failed or was stopped)
 *   6. verify: https (verify.ts's HttpsVerifier asks the installed ESXi's /sdk for the image's build),
 *      firstboot (its %firstboot calls firstboot_url; the API marks it done), none (the installer's
 *      callback was the end)
 *
 * Everything it does goes on the bus (power.*, bmc.*, host.verified) and into each host's timeline for the
 * report. Secrets never appear: drivers name where a BMC is, not who logs in; report text is scrubbed of
 * every secret the caller knows, in case a BMC echoes one.
 */
import { describeKept, type BootTarget, type Driver } from "../bmc/driver.ts";
import { LIMITS } from "../config.ts";
import { errorMessage } from "../errors.ts";
import type { EventBus, NetbootEvent, Phase } from "../events.ts";
import type { HostEntry } from "../hosts/book.ts";
import type { HostStore } from "../hosts/store/store.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import { hostName } from "./drivers.ts";
import { isArmed } from "../hosts/store/record.ts";

export interface DriveHost {
  entry: HostEntry;
  driver: Driver;
  /** The host's own ISO on this server (virtual media, ISO URL). */
  isoUrl: string;
  /** The build the installed ESXi must report (the image's boot.cfg build=, its last part). */
  build: string | undefined;
}

export interface DriveOptions {
  staggerMs: number;
  batch: number;
  retries: number;
  timeoutMs: number;
  signOfLifeMs: number;
}

export interface DriveDeps {
  store: HostStore;
  bus: EventBus;
  log: Logger;
  /** Where the host is now (its lab ip, its lease, what the link showed). */
  ipOf(mac: Mac): string | undefined;
  /** Stop early (Ctrl-C): every host still going is reported as stopped. */
  stopped: Promise<void>;
  /** Text to take out of anything reported (the BMC passwords). */
  secrets: readonly string[];
}

export interface TimelineEntry {
  at: number;
  what: string;
}

export interface HostOutcome {
  mac: Mac;
  name: string;
  ok: boolean;
  /** The last phase its install reached before it ended (failed is not one). */
  phase: Phase | undefined;
  /** Why it failed, and what to look at. */
  reason: string | undefined;
  hint: string | undefined;
  /** What its BMC answered last. */
  bmcAnswer: string;
  bmc: string;
  roundTrips: number;
  started: number;
  seconds: number;
  timeline: TimelineEntry[];
}

class HostFailed extends Error {
  readonly hint: string | undefined;
  /** The store has the failure already (the installer's, the verifier's). */
  readonly recorded: boolean;
  constructor(reason: string, hint?: string, recorded = false) {
    super(reason);
    this.hint = hint;
    this.recorded = recorded;
  }
}

/** The host store could not be written: said as such, not as the BMC's fault. */
class StoreFailed extends Error {}

/** Ctrl-C. */
class Stopped extends Error {}

/** Runs every host; resolves when each is done or failed (or the run timed out, or was stopped). */
export async function reinstall(hosts: readonly DriveHost[], o: DriveOptions, d: DriveDeps): Promise<HostOutcome[]> {
  const deadline = Date.now() + o.timeoutMs;
  const results: Array<Promise<HostOutcome>> = [];
  let stopped = false;
  void d.stopped.then(() => (stopped = true));
  const batch = Math.max(1, o.batch);
  let next = 0;
  for (; next < hosts.length; next += batch) {
    if (next > 0) await Promise.race([sleep(o.staggerMs), d.stopped]);
    // A batch is not started when the run is over: nothing is powered that nobody would watch.
    if (stopped || Date.now() >= deadline) break;
    for (const h of hosts.slice(next, next + batch)) results.push(driveOne(h, o, d, deadline));
  }
  const done = await Promise.all(results);
  for (const h of hosts.slice(done.length)) {
    const reason = stopped ? "stopped before it was started" : "the run timed out before it was started";
    done.push({ mac: h.entry.mac, name: hostName(h.entry), ok: false, phase: d.store.get(h.entry.mac)?.phase, reason, hint: undefined, bmcAnswer: "", bmc: h.driver.name, roundTrips: 0, started: Date.now(), seconds: 0, timeline: [] });
  }
  return done;
}

async function driveOne(h: DriveHost, o: DriveOptions, d: DriveDeps, deadline: number): Promise<HostOutcome> {
  const { entry, driver } = h;
  const mac = entry.mac;
  const name = hostName(entry);
  const via = entry.via ?? "pxe";
  const started = Date.now();
  const timeline: TimelineEntry[] = [];
  const scrub = (s: string) => d.secrets.reduce((t, secret) => (secret ? t.split(secret).join("********") : t), s);
  const note = (what: string, level: "info" | "warn" = "info") => {
    timeline.push({ at: Date.now(), what: scrub(what) });
    d.log[level](`${name}: ${scrub(what)}`);
  };
  const emit = (e: Record<string, unknown>) => d.bus.emit({ mac, hostname: entry.hostname, bmc: driver.name, ...e } as never);
  const bmcCall = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      emit({ type: "bmc.error", what, answer: scrub(driver.lastAnswer || errorMessage(err)) });
      throw err;
    }
  };
  let halted = false;
  void d.stopped.then(() => (halted = true));
  const phase = () => d.store.get(mac)?.phase;
  // Signs of life, as they come: anything the machine asks of this server (DHCP, TFTP, HTTP in its name,
  // from its own address), a phase of its install, or a request for its ISO (a BMC reads it from elsewhere).
  let lastSign = 0;
  let lastPhase: Phase | undefined;
  const isoPath = new URL(h.isoUrl).pathname;
  const off = d.bus.subscribe((e: NetbootEvent) => {
    if (e.type === "host.phase" && e.mac === mac) {
      lastSign = Date.now();
      if (e.phase !== "failed") lastPhase = e.phase;
      note(`phase ${e.phase}`);
    } else if (e.type === "host.verified" && e.mac === mac) note(`the installed ESXi answers${e.ip ? ` at ${e.ip}` : ""}: build ${e.build ?? "?"}`);
    else if ((e.type === "dhcp.request" || e.type === "tftp.start" || e.type === "http.start") && e.mac === mac && !e.elsewhere) lastSign = Date.now();
    else if (e.type === "http.start" && e.path === isoPath) lastSign = Date.now();
  });
  let overridden = false;
  try {
    try {
      // Whatever an earlier install left (failed, or done in mode install) is forgotten: this one is watched from its start.
      if (!isArmed(d.store.get(mac))) {
        await d.store.rearm(mac).catch((err) => {
          throw new StoreFailed(`the host store could not arm it again: ${errorMessage(err)}`);
        });
      }
      const target: BootTarget = via === "virtual-media" ? "cd" : via === "iso-url" || via === "http" ? "http" : "pxe";
      const uri = via === "iso-url" ? h.isoUrl : undefined;
      for (let attempt = 1; ; attempt++) {
        // 1. The next boot, once: again before every try (a once-only override is spent by the boot that failed).
        if (via === "virtual-media") {
          await bmcCall("insert the virtual CD", () => driver.insertMedia!(h.isoUrl));
          emit({ type: "bmc.media", action: "insert", image: h.isoUrl });
          if (attempt === 1) note(`virtual CD: ${h.isoUrl}`);
        }
        overridden = true;
        try {
          const kept = await bmcCall(`set the next boot to ${target}`, () => driver.setBootOnce(target, { uri }));
          const partial = describeKept({ target, uri }, kept);
          emit({ type: "bmc.boot", target, kept: kept.raw, partial });
          note(partial ? `next boot ${target}: the BMC ${partial}; going on (a boot from its disk is caught by the sign-of-life bound)` : `next boot ${target}, once, UEFI: ${kept.raw}`, partial ? "warn" : "info");
        } catch (err) {
          emit({ type: "bmc.boot", target, kept: undefined, partial: scrub(errorMessage(err)) });
          note(`next boot ${target}: the BMC refused (${scrub(errorMessage(err))}); going on with its own boot order`, "warn");
        }
        // 2. Power: on when off, else a cycle (Wake-on-LAN can only wake).
        const state = await bmcCall("read the power state", () => driver.powerState());
        const op = state === "off" || driver.kind === "wol" ? "on" : "cycle";
        const poweredAt = Date.now();
        await bmcCall(`power ${op}`, () => driver.power(op));
        emit({ type: `power.${op}`, attempt });
        note(`power ${op}${attempt > 1 ? ` (retry ${attempt - 1} of ${o.retries})` : ""} via ${driver.name}`);
        // 3. A sign of life within the bound.
        if (await until(() => lastSign >= poweredAt || isFinished(phase()), Math.min(o.signOfLifeMs, deadline - Date.now()), d.stopped)) break;
        if (halted) throw new Stopped();
        if (Date.now() >= deadline) throw new HostFailed("the run timed out before it showed a sign of life");
        const what = via === "virtual-media" || via === "iso-url" ? "no request for its ISO" : "nothing asked of this server in its name";
        if (attempt > o.retries) {
          throw new HostFailed(`no sign of life within ${Math.round(o.signOfLifeMs / 1000)} s of power ${op} (${what}), ${o.retries} ${o.retries === 1 ? "retry" : "retries"} spent`, hintFor(via, driver.kind));
        }
        note(`no sign of life within ${Math.round(o.signOfLifeMs / 1000)} s (${what}): once more`, "warn");
      }

      // 4. Its install, to the installer's done (installed, or done with verify: none).
      if (!(await until(() => isFinished(phase()), deadline - Date.now(), d.stopped))) {
        if (halted) throw new Stopped();
        throw new HostFailed("the run timed out during its install");
      }
      if (phase() === "failed" && d.store.get(mac)?.reached.installed === undefined) throw new HostFailed(`the installer said it failed: ${d.store.get(mac)?.failure ?? "?"}`, `netboot hosts log ${mac} shows what it sent`, true);

      // 5. Media out, override cleared, before the machine's next boot counts on its disk.
      await restore();

      // 6. Done means the installed system is up (drive/verify.ts asks it; firstboot_url is the API's).
      if (entry.verify !== "none") note(entry.verify === "https" ? `installed; waiting for the installed ESXi to answer on HTTPS${h.build ? ` at build ${h.build}` : ""}` : "installed; waiting for its %firstboot to call firstboot_url");
      if (!(await until(() => phase() === "done" || phase() === "failed", deadline - Date.now(), d.stopped))) {
        if (halted) throw new Stopped();
        if (entry.verify === "firstboot") throw new HostFailed("installed, but its %firstboot never called firstboot_url before the timeout", "ESXi 8 with Secure Boot runs no %firstboot script (execInstalledOnly): use verify: https");
        const ip = entry.ip ?? d.ipOf(mac);
        throw new HostFailed(`installed, but the installed ESXi never answered on HTTPS${ip ? ` at ${ip}` : " (its address is unknown: give it ip: in the lab file)"} before the timeout`, "is its disk first in the boot order (the installer's NVRAM write can fail)? Does its management network come up on that address?");
      }
      if (phase() === "failed") throw new HostFailed(d.store.get(mac)?.failure ?? "failed", "an older install booted (the disk netboot installed to is not first in the boot order?), or the kickstart installed to another disk", true);
      note("done");
      return outcome(true, undefined, undefined);
    } catch (err) {
      if (err instanceof Stopped) {
        // Stopped by hand: said here, not written as a failure other instances would see.
        note("stopped", "warn");
        return outcome(false, "stopped", undefined);
      }
      const known = err instanceof HostFailed || err instanceof StoreFailed;
      const reason = scrub(known ? err.message : `${driver.name}: ${errorMessage(err)}`);
      const hint = err instanceof HostFailed ? err.hint : err instanceof StoreFailed ? "the host store: see the log" : "check the BMC's address and credentials with netboot power HOST status";
      note(`failed: ${reason}`, "warn");
      // The store says it too (the status page, netboot hosts, host.failed), unless it already does.
      if (!(err instanceof HostFailed && err.recorded) && phase() !== "done") {
        await d.store.failed(mac, reason).catch((e) => d.log.error(`${name}: the host store could not record the failure: ${errorMessage(e)}`));
      }
      return outcome(false, reason, hint);
    }
  } finally {
    off();
    if (overridden) await restore().catch(() => {});
    await driver.close().catch(() => {});
  }

  /** Ejects the media and clears the override, once; a BMC that refuses is said, not fatal. */
  async function restore(): Promise<void> {
    if (!overridden) return;
    overridden = false;
    if (via === "virtual-media" && driver.ejectMedia) {
      await bmcCall("eject the virtual CD", () => driver.ejectMedia!()).then(
        () => (emit({ type: "bmc.media", action: "eject", image: undefined }), note("virtual CD ejected")),
        (err) => note(`eject: ${scrub(errorMessage(err))}`, "warn"),
      );
    }
    await bmcCall("clear the boot override", () => driver.clearBoot()).then(
      () => note("boot override cleared"),
      (err) => note(`clearing the boot override: ${scrub(errorMessage(err))}`, "warn"),
    );
  }

  function outcome(ok: boolean, reason: string | undefined, hint: string | undefined): HostOutcome {
    return { mac, name, ok, phase: lastPhase, reason, hint, bmcAnswer: scrub(driver.lastAnswer), bmc: driver.name, roundTrips: driver.roundTrips, started, seconds: (Date.now() - started) / 1000, timeline };
  }
}

function hintFor(via: string, kind: Driver["kind"]): string {
  if (via === "virtual-media") return "the BMC never read the ISO: can the BMC reach this server's HTTP address (its management network)?";
  if (via === "iso-url") return "the firmware never fetched the ISO: does it support UEFI HTTP boot, and can it reach this server?";
  if (kind === "wol") return "Wake-on-LAN needs it enabled in the firmware and the NIC powered while off; network boot first in its boot order";
  return "did it boot from its disk (the BMC did not keep the override, or another DHCP server answered)? Watch its console";
}

/** The installer is through: installed (verify: https or firstboot), done, or failed. */
function isFinished(p: Phase | undefined): boolean {
  return p === "installed" || p === "done" || p === "failed";
}

/** Polls `ok` until it holds (true), the time runs out or the run is stopped (false). */
async function until(ok: () => boolean, ms: number, stopped: Promise<void>): Promise<boolean> {
  const end = Date.now() + Math.max(0, ms);
  let halt = false;
  void stopped.then(() => (halt = true));
  while (!ok()) {
    if (halt || Date.now() >= end) return ok();
    await sleep(Math.min(LIMITS.drive.pollMs, Math.max(1, end - Date.now())));
  }
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One line per host for the end of the run, and the verdict. */
export function summarize(outcomes: readonly HostOutcome[]): { code: 0 | 1; lines: string[]; summary: string } {
  const lines = outcomes.map((r) => (r.ok ? `${r.name} (${r.mac}): done in ${r.seconds.toFixed(0)} s, ${r.roundTrips} BMC round trips` : `${r.name} (${r.mac}): FAILED (last phase: ${r.phase ?? "none"}): ${r.reason}${r.hint ? `; ${r.hint}` : ""}`));
  const failed = outcomes.filter((r) => !r.ok);
  return { code: failed.length ? 1 : 0, lines, summary: failed.length ? `reinstall: ${failed.length} of ${outcomes.length} failed: ${failed.map((r) => r.name).join(", ")}` : `reinstall: all ${outcomes.length} done` };
}
