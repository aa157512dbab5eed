/**
 * Where each machine is in its install, from the typed facts on the bus, kept in the host store. Phases of
 * one install, in order:
 *
 *   offered     a DHCP/proxyDHCP/BSDP answer told it where to boot from (a new install starts)
 *   loader      it fetched its first stage (an iPXE binary, or the ESXi loader itself)
 *   bootcfg     it fetched its boot.cfg
 *   modules     the kernel and modules (BIOS: its disc image) are flowing
 *   kickstart   the installer is up (it asked DHCP as a plain client)
 *   installing  it has its kickstart
 *   done        the kickstart's %post called done_url          | failed: failed_url, with the log
 *
 * `phaseAfter` is the rule (pure: an event and the current phase in, the next phase out); the tracker
 * applies it to every event and marks the store. Every change of the store, made here or elsewhere
 * (another instance, `netboot hosts rearm`), goes on the bus once as host.phase / host.done /
 * host.failed / host.armed: those events have one source.
 */
import type { FileKind } from "../boot/files.ts";
import { PHASES, type EventBus, type NetbootEvent, type Phase } from "../events.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import type { HostChange, HostStore } from "./store/store.ts";

const order = (p: Phase | undefined) => (p === undefined ? -1 : PHASES.indexOf(p));

/** The phase a file of this kind shows the machine has reached. */
export function phaseOfKind(kind: FileKind | undefined): Phase | undefined {
  switch (kind) {
    case "nbp":
    case "loader":
      return "loader";
    case "bootcfg":
      return "bootcfg";
    case "module":
    case "disc":
      return "modules";
    case "ks":
      return "installing";
    default:
      return undefined; // the iPXE script, the crypto module: no step of their own
  }
}

/** What an event moves a machine to, from `current`: a phase, and `restart` when a new install starts. */
export function phaseAfter(e: NetbootEvent, current: Phase | undefined): { phase: Phase; restart: boolean } | undefined {
  const finished = current === "done" || current === "failed";
  switch (e.type) {
    case "dhcp.request":
      if (e.answer && e.file) {
        // A boot file handed out: a new install starts, unless this one is under way (iPXE asking again
        // in the middle of it is the same install).
        if (current === undefined || finished || (order(current) >= order("kickstart") && e.firmware !== "ipxe")) return { phase: "offered", restart: true };
        return undefined;
      }
      // The installer's own DHCP (a plain client, after the modules): it is up.
      if (!e.file && current === "modules" && (e.firmware === "unknown" || e.firmware === undefined)) return { phase: "kickstart", restart: false };
      return undefined;
    case "bsdp.request":
      if (e.answer === "ACK[SELECT]" && (current === undefined || finished)) return { phase: "offered", restart: true };
      return undefined;
    case "tftp.end":
    case "http.end": {
      const ok = e.type === "tftp.end" ? e.outcome === "sent" : e.status === 200 || e.status === 206;
      const to = ok ? phaseOfKind(e.kind) : undefined;
      if (!to) return undefined;
      // Without a DHCP answer of ours (--dhcp off, another server points here) the first boot file starts the phases.
      if (current === undefined) return { phase: to, restart: true };
      if (order(to) > order(current) && !finished) return { phase: to, restart: false };
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The event may be the machine's own: its DHCP or BSDP packet, or a request from its address or from one
 * not known to be anyone's (routed; loopback). A file asked for in its name from an address known to be
 * another machine's (`elsewhere`) moves nothing of it.
 */
export function identifies(e: NetbootEvent): boolean {
  return !e.elsewhere;
}

export class HostTracker {
  readonly #store: HostStore;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #off: Array<() => void>;
  /** The address each machine was last seen at (host.* events carry it). */
  readonly #ip: (mac: Mac) => string | undefined;

  /**
   * Subscribes to the bus: constructed before the view model (hosts/view.ts), which then sees the store
   * already marked by the event it is handed (a new install resets its screen before that event is shown).
   */
  constructor(opts: { store: HostStore; bus: EventBus; log: Logger; ip?: (mac: Mac) => string | undefined }) {
    this.#store = opts.store;
    this.#bus = opts.bus;
    this.#log = opts.log;
    this.#ip = opts.ip ?? (() => undefined);
    this.#off = [opts.bus.subscribe((e) => this.#observe(e)), opts.store.watch((c) => this.#changed(c))];
  }

  close(): void {
    for (const off of this.#off) off();
  }

  #observe(e: NetbootEvent): void {
    if (!e.mac || e.type.startsWith("host.") || e.type === "link.quiet" || !identifies(e)) return;
    const next = phaseAfter(e, this.#store.get(e.mac)?.phase);
    if (next) void this.#store.mark(e.mac, next.phase, { restart: next.restart });
  }

  /**
   * A change of the store, from here or elsewhere: on the bus, once, after the event that caused it has
   * reached every observer (the phase line then shows what that event told: the address, the firmware).
   */
  #changed(c: HostChange): void {
    queueMicrotask(() => this.#announce(c));
  }

  #announce(c: HostChange): void {
    const hostname = this.#store.book.lookup(c.mac)?.hostname;
    const ip = this.#ip(c.mac);
    const was = c.previous?.phase;
    const now = c.record?.phase;
    if (c.op === "rearm" || (c.remote && was !== undefined && now === undefined)) {
      this.#log.info(`${c.mac}: armed again; its next network boot installs`);
      this.#bus.emit({ type: "host.armed", mac: c.mac, ip, hostname });
      return;
    }
    if (now === undefined || now === was) return;
    const r = c.record!;
    const restart = r.startedAt !== undefined && r.startedAt !== c.previous?.startedAt;
    this.#bus.emit({ type: "host.phase", mac: c.mac, ip, phase: now, previous: was, restart, hostname });
    if (now === "done") this.#bus.emit({ type: "host.done", mac: c.mac, ip, hostname, seconds: r.startedAt && r.doneAt ? (r.doneAt - r.startedAt) / 1000 : undefined });
    if (now === "failed") this.#bus.emit({ type: "host.failed", mac: c.mac, ip, hostname, reason: r.failure ?? "failed" });
  }
}
