/**
 * What a machine's state means, in words a person at the bench acts on, when it looks stuck: "DISCOVER but
 * no REQUEST: another DHCP server answered first?" rather than a log line to decode. `explain` is pure
 * (a host's state and the time in, a hint or nothing out); the watcher applies it every two seconds, puts
 * the hint on the host (terminal view, status page, /api/hosts), logs each new one once and emits it.
 *
 * The waits (LIMITS.waits) are what real firmware and loaders take on a healthy link, with room (the QEMU
 * lab's timings): a PXE client REQUESTs within a second of the OFFER; iPXE asks for its script a few
 * seconds after it is sent (15 s when it first waits for IPv6 autoconfiguration); the loader asks for a
 * module right after its boot.cfg; a module never pauses for a minute.
 */
import { LIMITS } from "../config.ts";
import type { EventBus } from "../events.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import type { HostViews, HostState } from "./view.ts";

export interface Hint {
  code: string;
  level: "info" | "warn";
  text: string;
}

export interface ExplainContext {
  /** How DHCP is answered: "server", "proxy", or "off" (BSDP only, or none). */
  mode: string;
  /** The host gets a kickstart (so the installer should fetch one). */
  armed: boolean;
  /** Its progress against the image's kernel and modules. */
  progress: { bytes: number; total: number | undefined };
}

export const WAIT = LIMITS.waits;

export function explain(s: HostState, now: number, ctx: ExplainContext): Hint | undefined {
  const m = s.marks;
  const since = (t: number | undefined) => (t === undefined ? Infinity : now - t);
  const after = (a: number | undefined, b: number | undefined) => a !== undefined && (b === undefined || b < a);
  if (s.phase === "done" || s.phase === "failed") return undefined;
  // Before a restart: how long it has been quiet says nothing about the boot (it may be long over).
  if (s.restored && s.phase) return { code: "restored", level: "info", text: `${s.phase} before netboot restarted; nothing heard from it since` };
  if (!s.phase) {
    if (s.verdict === "refused" && !s.listed) {
      return { code: "not-listed", level: "info", text: `not listed, so it gets no boot answer: add it to the lab file's hosts: (or --allow ${s.mac})` };
    }
    return undefined;
  }
  switch (s.phase) {
    case "offered": {
      if (ctx.mode === "server" && after(m.offer, m.request) && since(m.offer) > WAIT.request) {
        return { code: "dhcp-no-request", level: "warn", text: "DISCOVER but no REQUEST: another DHCP server answered first? (netboot doctor --iface … looks for one)" };
      }
      if (since(m.offer ?? s.phaseSince) > WAIT.bootFile && m.nbp === undefined && m.loader === undefined) {
        return ctx.mode === "proxy"
          ? { code: "proxy-no-tftp", level: "warn", text: "proxyDHCP answer sent, but the boot file was never asked for: did the link's DHCP server give it an address? Is UDP 69 (TFTP) open to this machine?" }
          : { code: "no-tftp", level: "warn", text: "boot file offered, but never asked for by TFTP: firewall on UDP 69? (netboot doctor)" };
      }
      return undefined;
    }
    case "loader": {
      const nbp = (s.nbpFile ?? "").toLowerCase();
      if (m.script === undefined && m.nbp !== undefined && since(m.nbp) > WAIT.script) {
        if (nbp.endsWith("snponly.efi")) {
          return { code: "ipxe-never-started", level: "warn", text: "snponly.efi sent, but iPXE never asked for boot.ipxe: Secure Boot on? Its next boot gets VMware's signed loader instead (or pass --secure-boot)" };
        }
        return { code: "ipxe-no-script", level: "warn", text: `${nbp.split("/").pop() || "iPXE"} sent, but iPXE never asked for boot.ipxe: did iPXE's own DHCP request get an answer? Is the HTTP port open to this machine?` };
      }
      if (m.script !== undefined && m.loader === undefined && since(m.script) > WAIT.loader) {
        return { code: "ipxe-no-loader", level: "warn", text: "iPXE ran boot.ipxe but never fetched the ESXi loader: look at the machine's console (iPXE prints why)" };
      }
      if (m.loader !== undefined && m.bootcfg === undefined && since(m.loader) > WAIT.bootcfg) {
        return { code: "loader-no-bootcfg", level: "warn", text: "the ESXi loader was sent but never asked for its boot.cfg: look at the machine's console (the loader prints the path it tried)" };
      }
      return undefined;
    }
    case "bootcfg":
      if (m.module === undefined && since(m.bootcfg) > WAIT.module) {
        return { code: "no-modules", level: "warn", text: "boot.cfg sent, but no kernel or module was asked for in 30 s: the loader stopped at an error on the machine's console, or cannot reach prefix=" };
      }
      return undefined;
    case "modules": {
      const { bytes, total } = ctx.progress;
      const complete = total !== undefined && total > 0 && bytes >= total * 0.99;
      if (complete) {
        return ctx.armed
          ? { code: "installer-starting", level: "info", text: "every module sent: ESXi is starting (its installer asks DHCP again, then for ks.cfg)" }
          : { code: "interactive", level: "info", text: "every module sent: the interactive installer runs on the machine's console" };
      }
      if (since(m.module ?? s.phaseSince) > WAIT.stall && s.inflight.size === 0) {
        return { code: "modules-stalled", level: "warn", text: "no kernel or module bytes for 60 s: the machine stopped (an error on its console?), rebooted, or lost the link" };
      }
      return undefined;
    }
    case "kickstart":
      if (!ctx.armed) return { code: "interactive", level: "info", text: "the interactive installer is up (no kickstart for this machine)" };
      if (m.ks === undefined && since(m.installer ?? s.phaseSince) > WAIT.kickstart) {
        return { code: "no-kickstart", level: "warn", text: "the installer is up but has not fetched ks.cfg in 3 min: can the installer's network reach ks=? (its VLAN, the NIC BOOTIF names)" };
      }
      return undefined;
    case "installing":
      return undefined;
    case "installed":
      if (since(s.phaseSince) > WAIT.verify) {
        return { code: "not-verified", level: "warn", text: `installed ${Math.round(WAIT.verify / 60_000)} min ago, and the installed ESXi has not answered: is its disk first in the boot order (the installer's NVRAM write can fail)? Does it get the address netboot probes?` };
      }
      return undefined;
  }
}

/** Nothing from any machine for a while: the likeliest causes, for the whole link. */
export function quietText(seconds: number): string {
  return `no packets from any client for ${seconds.toFixed(0)} s: firewall? cable? the client's boot order (network boot first, or its one-time boot menu)?`;
}

/**
 * Applies `explain` to every machine every two seconds, and watches the link as a whole. New hints are
 * logged once (and emitted as host.hint); a hint that clears emits an empty one.
 */
export class HintWatcher {
  readonly #hosts: HostViews;
  readonly #armed: (mac: Mac) => boolean;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #mode: () => string;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #unsubscribe: () => void;
  #lastPacket: number;
  #quietSaid = false;

  /** `armed`: the host gets a kickstart (HostPolicy.armed), so its installer should fetch one. */
  constructor(opts: { hosts: HostViews; armed: (mac: Mac) => boolean; bus: EventBus; log: Logger; mode: () => string; intervalMs?: number; now?: () => number }) {
    this.#hosts = opts.hosts;
    this.#armed = opts.armed;
    this.#bus = opts.bus;
    this.#log = opts.log;
    this.#mode = opts.mode;
    const now = opts.now ?? Date.now;
    this.#lastPacket = now();
    this.#unsubscribe = opts.bus.subscribe((e) => {
      if (e.mac && !e.type.startsWith("host.")) {
        this.#lastPacket = now();
        this.#quietSaid = false;
      }
    });
    this.#timer = setInterval(() => this.tick(now()), opts.intervalMs ?? LIMITS.hosts.hintEveryMs);
    this.#timer.unref?.();
  }

  /** Since when no client has sent anything (start-up, if none ever did). */
  get lastPacket(): number {
    return this.#lastPacket;
  }

  /** One pass (the timer's; tests call it with their own clock). */
  tick(now: number): void {
    const mode = this.#mode();
    for (const s of this.#hosts.all()) {
      const hint = explain(s, now, { mode, armed: this.#armed(s.mac), progress: this.#hosts.progress(s.mac, now) });
      if (!this.#hosts.setHint(s.mac, hint)) continue;
      const hostname = this.#hosts.store.book.lookup(s.mac)?.hostname;
      if (hint) (hint.level === "warn" ? this.#log.warn : this.#log.info)(`${who(s.mac, hostname)}: ${hint.text}`);
      this.#bus.emit({ type: "host.hint", mac: s.mac, ip: s.ip, hostname, code: hint?.code ?? "", level: hint?.level ?? "info", text: hint?.text ?? "" });
    }
    const quiet = now - this.#lastPacket;
    if (quiet >= WAIT.quiet && !this.#quietSaid) {
      this.#quietSaid = true;
      const text = quietText(quiet / 1000);
      this.#log.warn(text);
      this.#bus.emit({ type: "link.quiet", seconds: Math.round(quiet / 1000), text });
    }
  }

  /** The link-wide hint while it holds (the terminal footer, the status page). */
  linkHint(now = Date.now()): string | undefined {
    const quiet = now - this.#lastPacket;
    return quiet >= WAIT.quiet ? quietText(quiet / 1000) : undefined;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
  }
}

function who(mac: Mac, hostname: string | undefined): string {
  return hostname ? `${hostname} (${mac})` : mac;
}
