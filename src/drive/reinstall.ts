/**
 * netboot reinstall: drives each host from its BMC to a verified install, in batches spaced by a stagger.
 * Per host:
 *
 *   1. the next boot once: PXE, UEFI HTTP, or the virtual CD after inserting the host's own ISO by URL
 *      (via:), read back; what the BMC did not keep is one line and the drive goes on (the sign-of-life
 *      bound and the retry catch a machine that then boots from its disk)
 *   2. power: on when off, else a cycle
 *   3. a sign of life within the bound: a phase of its install (offered, or a file it fetched), or for
 *      virtual media and ISO URLs the first request for its ISO; else cycled again, up to the retries,
 *      then failed with the reason
 *   4. its install: installed (or done when verify: none), failed, or the run's timeout
 *   5. the media ejected and the override cleared
 *   6. verify: https (the installed ESXi's /sdk names the image's build), firstboot (its %firstboot calls
 *      firstboot_url; the API marks it done), none (the installer's callback was the end)
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
import type { EsxiAbout } from "./verify.ts";

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
  probe(url: string): Promise<EsxiAbout | { error: string }>;
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
  constructor(reason: string, hint?: string) {
    super(reason);
    this.hint = hint;
  }
}

/** Runs every host; resolves when each is done or failed (or the run timed out, or was stopped). */
export async function reinstall(hosts: readonly DriveHost[], o: DriveOptions, d: DriveDeps): Promise<HostOutcome[]> {
  const deadline = Date.now() + o.timeoutMs;
  const results: Array<Promise<HostOutcome>> = [];
  let stopped = false;
  void d.stopped.then(() => (stopped = true));
  for (let i = 0; i < hosts.length; i += Math.max(1, o.batch)) {
    if (i > 0) await Promise.race([sleep(o.staggerMs), d.stopped]);
    if (stopped) break;
    for (const h of hosts.slice(i, i + Math.max(1, o.batch))) results.push(driveOne(h, o, d, deadline));
  }
  const done = await Promise.all(results);
  // Hosts never started (stopped during the stagger) are reported too.
  for (const h of hosts.slice(done.length)) {
    done.push({ mac: h.entry.mac, name: hostName(h.entry), ok: false, phase: d.store.get(h.entry.mac)?.phase, reason: "stopped before it was started", hint: undefined, bmcAnswer: "", bmc: h.driver.name, roundTrips: 0, started: Date.now(), seconds: 0, timeline: [] });
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
      const answer = scrub(driver.lastAnswer || errorMessage(err));
      emit({ type: "bmc.error", what, answer });
      throw err;
    }
  };
  // Phase changes and requests for its ISO, as they come.
  let lastSign = 0;
  let lastPhase: Phase | undefined = d.store.get(mac)?.phase;
  const isoPath = new URL(h.isoUrl).pathname;
  const off = d.bus.subscribe((e: NetbootEvent) => {
    if (e.type === "host.phase" && e.mac === mac) {
      lastSign = Date.now();
      if (e.phase !== "failed") lastPhase = e.phase;
      note(`phase ${e.phase}`);
    } else if (e.type === "http.start" && e.path === isoPath) lastSign = Date.now();
  });
  try {
    try {
      // 1. The next boot, once.
      let target: BootTarget = via === "virtual-media" ? "cd" : via === "iso-url" || via === "http" ? "http" : "pxe";
      if (via === "virtual-media") {
        await bmcCall("insert the virtual CD", () => driver.insertMedia!(h.isoUrl));
        emit({ type: "bmc.media", action: "insert", image: h.isoUrl });
        note(`virtual CD: ${h.isoUrl}`);
        target = "cd";
      }
      try {
        const kept = await bmcCall(`set the next boot to ${target}`, () => driver.setBootOnce(target, { uri: via === "iso-url" ? h.isoUrl : undefined }));
        const partial = describeKept({ target, uri: via === "iso-url" ? h.isoUrl : undefined }, kept);
        emit({ type: "bmc.boot", target, kept: kept.raw, partial });
        note(partial ? `next boot ${target}: the BMC ${partial}; going on (a boot from its disk is caught by the sign-of-life bound)` : `next boot ${target}, once, UEFI: ${kept.raw}`, partial ? "warn" : "info");
      } catch (err) {
        emit({ type: "bmc.boot", target, kept: undefined, partial: scrub(errorMessage(err)) });
        note(`next boot ${target}: the BMC refused (${scrub(errorMessage(err))}); going on with its own boot order`, "warn");
      }

      // 2-3. Power, then a sign of life, cycled again up to the retries.
      for (let attempt = 1; ; attempt++) {
        const state = await bmcCall("read the power state", () => driver.powerState());
        const op = state === "off" ? "on" : driver.kind === "wol" ? "on" : "cycle";
        await bmcCall(`power ${op}`, () => driver.power(op));
        emit({ type: `power.${op}`, attempt });
        note(`power ${op}${attempt > 1 ? ` (retry ${attempt - 1} of ${o.retries})` : ""} via ${driver.name}`);
        const poweredAt = Date.now();
        const alive = await until(() => lastSign >= poweredAt || isFinished(d.store, mac), Math.min(o.signOfLifeMs, deadline - Date.now()), d.stopped);
        if (alive) break;
        if (Date.now() >= deadline) throw new HostFailed("the run timed out before it showed a sign of life");
        if (await Promise.race([d.stopped.then(() => true), sleep(0).then(() => false)])) throw new HostFailed("stopped");
        const what = via === "virtual-media" || via === "iso-url" ? "no request for its ISO" : "no DHCP answer of ours and no file fetched";
        if (attempt > o.retries) {
          throw new HostFailed(`no sign of life within ${Math.round(o.signOfLifeMs / 1000)} s of power ${op} (${what}), ${o.retries} ${o.retries === 1 ? "retry" : "retries"} spent`, hintFor(via, driver.kind));
        }
        note(`no sign of life within ${Math.round(o.signOfLifeMs / 1000)} s (${what}): power cycle again`, "warn");
      }

      // 4. The install.
      const verify = entry.verify;
      const installedOrEnd = () => {
        const p = d.store.get(mac)?.phase;
        return p === "installed" || p === "done" || p === "failed";
      };
      if (!(await until(installedOrEnd, deadline - Date.now(), d.stopped))) throw new HostFailed(Date.now() >= deadline ? "the run timed out during its install" : "stopped during its install");
      if (d.store.get(mac)?.phase === "failed") throw new HostFailed(`the installer said it failed: ${d.store.get(mac)?.failure ?? "?"}`, `netboot hosts log ${mac} shows what it sent`);

      // 5. Media out, override cleared (a BMC that refuses is said, not fatal).
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

      // 6. Done means the installed system is up.
      if (verify === "https") await verifyHttps(h, d, deadline, note);
      else if (verify === "firstboot") {
        if (!(await until(() => d.store.get(mac)?.phase === "done" || d.store.get(mac)?.phase === "failed", deadline - Date.now(), d.stopped))) {
          throw new HostFailed("installed, but its %firstboot never called firstboot_url before the timeout", "ESXi 8 with Secure Boot runs no %firstboot script (execInstalledOnly): use verify: https");
        }
      }
      if (d.store.get(mac)?.phase !== "done") throw new HostFailed(`ended in phase ${d.store.get(mac)?.phase ?? "none"}, not done`);
      note("done");
      return outcome(true, undefined, undefined);
    } catch (err) {
      const reason = scrub(err instanceof HostFailed ? err.message : `${driver.name}: ${errorMessage(err)}`);
      const hint = err instanceof HostFailed ? err.hint : "check the BMC's address and credentials with netboot power HOST status";
      note(`failed: ${reason}`, "warn");
      // The store says it too (the status page, netboot hosts, host.failed), unless the installer already did.
      if (d.store.get(mac)?.phase !== "failed" && d.store.get(mac)?.phase !== "done") await d.store.failed(mac, reason).catch(() => {});
      return outcome(false, reason, hint);
    }
  } finally {
    off();
    await driver.close().catch(() => {});
  }

  function outcome(ok: boolean, reason: string | undefined, hint: string | undefined): HostOutcome {
    return { mac, name, ok, phase: lastPhase, reason, hint, bmcAnswer: scrub(driver.lastAnswer), bmc: driver.name, roundTrips: driver.roundTrips, started, seconds: (Date.now() - started) / 1000, timeline };
  }
}

async function verifyHttps(h: DriveHost, d: DriveDeps, deadline: number, note: (what: string, level?: "info" | "warn") => void): Promise<void> {
  const mac = h.entry.mac;
  note(`installed; waiting for the installed ESXi to answer on HTTPS${h.build ? ` at build ${h.build}` : ""}`);
  let last = "";
  for (;;) {
    const ip = h.entry.ip ?? d.ipOf(mac);
    if (ip) {
      const url = `https://${ip}${LIMITS.drive.httpsPort === 443 ? "" : `:${LIMITS.drive.httpsPort}`}`;
      const r = await d.probe(url);
      if ("build" in r) {
        if (h.build && r.build !== h.build) throw new HostFailed(`the installed ESXi at ${ip} is build ${r.build}, the image is build ${h.build}`, "an older install booted (the disk netboot installed to is not first in the boot order?), or the kickstart installed to another disk");
        await d.store.done(mac);
        d.bus.emit({ type: "host.verified", mac, ip, hostname: h.entry.hostname, how: "https", build: r.build });
        note(`the installed ESXi answers at ${url}: ${r.fullName ?? `build ${r.build}`}`);
        return;
      }
      if (r.error !== last) d.log.debug(`${h.entry.hostname ?? mac}: ${r.error}`);
      last = r.error;
    }
    if (Date.now() + LIMITS.drive.probeEveryMs > deadline) {
      throw new HostFailed(`installed, but the installed ESXi never answered on HTTPS${ip ? ` at ${ip}` : " (its address is unknown: give it ip: in the lab file)"} before the timeout${last ? ` (${last})` : ""}`, "is its disk first in the boot order (the installer's NVRAM write can fail)? Does its management network come up on that address?");
    }
    if (await Promise.race([sleep(LIMITS.drive.probeEveryMs).then(() => false), d.stopped.then(() => true)])) throw new HostFailed("stopped while waiting for the installed ESXi");
  }
}

function hintFor(via: string, kind: Driver["kind"]): string {
  if (via === "virtual-media") return "the BMC never read the ISO: can the BMC reach this server's HTTP address (its management network)?";
  if (via === "iso-url") return "the firmware never fetched the ISO: does it support UEFI HTTP boot, and can it reach this server?";
  if (kind === "wol") return "Wake-on-LAN needs it enabled in the firmware and the NIC powered while off; network boot first in its boot order";
  return "did it boot from its disk (the BMC did not keep the override, or another DHCP server answered)? Watch its console";
}

function isFinished(store: HostStore, mac: Mac): boolean {
  const p = store.get(mac)?.phase;
  return p === "installed" || p === "done" || p === "failed";
}

/** Polls `ok` until it holds (true), the time runs out or the run is stopped (false). */
async function until(ok: () => boolean, ms: number, stopped: Promise<void>): Promise<boolean> {
  const end = Date.now() + Math.max(0, ms);
  let halt = false;
  void stopped.then(() => (halt = true));
  while (!ok()) {
    if (halt || Date.now() >= end) return ok();
    await sleep(Math.min(250, Math.max(1, end - Date.now())));
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
