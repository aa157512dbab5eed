/**
 * The screen's view of each machine, fed by the bus: what the terminal table, the status page and
 * /api/hosts show beside the store's facts. Its address, firmware and platform as its packets showed
 * them, bytes served and in flight, the rate of the last seconds, its last events, its last error, the
 * moments of its install the hints reason about, what it was answered, the hint itself. Nothing here is
 * kept across a restart; the facts are the store's (store/).
 */
import type { FileKind } from "../boot/files.ts";
import type { Firmware, Verdict } from "../boot/types.ts";
import { LIMITS } from "../config.ts";
import type { EventBus, NetbootEvent, Phase } from "../events.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import { describeEvent } from "./describe.ts";
import { identifies } from "./tracker.ts";
import type { HostStore } from "./store/store.ts";

/** The machine's platform as its first-stage firmware showed it (iPXE later hides it). */
export type Platform = "BIOS" | "UEFI" | "HTTP" | "Mac" | "ARM64" | "other";

/** Moments of one install that the explanations (explain.ts) reason about. */
export type Mark = "offer" | "request" | "nbp" | "script" | "loader" | "bootcfg" | "module" | "installer" | "ks";

export interface HostEvent {
  time: number;
  text: string;
}

/** What a person sees of a machine: the store's facts and the screen state (one object, made when asked). */
export interface HostState {
  mac: Mac;
  listed: boolean;
  phase: Phase | undefined;
  phaseSince: number | undefined;
  /** The phase came from the store (a restart) and nothing was heard from the host since. */
  restored: boolean;
  ip: string | undefined;
  firmware: Firmware | "apple" | undefined;
  platform: Platform | undefined;
  /** Bytes served to it since its install started. */
  bytes: number;
  /** Of those, the kernel's and modules' (and the disc's, for BIOS): what the progress bar shows. */
  moduleBytes: number;
  /** TFTP transfers still running for it: client "ip:port" → what and how far. */
  inflight: Map<string, { file: string; kind: FileKind | undefined; bytes: number }>;
  lastSeen: number | undefined;
  /** The last thing it did, in words ("GET /esxi/b.b00 200"). */
  lastEvent: string | undefined;
  /** The last thing that went wrong for it, in words, and when. */
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  /** What its state means, when it looks stuck (explain.ts). */
  hint: { code: string; level: "info" | "warn"; text: string } | undefined;
  /** Its last events, oldest first (at most LIMITS.hosts.recentEvents). */
  recent: HostEvent[];
  marks: Partial<Record<Mark, number>>;
  /** The boot file it was last handed (the NBP). */
  nbpFile: string | undefined;
  startedAt: number | undefined;
  doneAt: number | undefined;
  failedAt: number | undefined;
  failure: string | undefined;
  /** What it was answered, or why not ("no boot answer (not listed…)", "boot ipxe/snponly.efi"). */
  answered: string | undefined;
  /** The same as a code (the table, the page and the hints decide by it). */
  verdict: Verdict | undefined;
  /** [time, progress bytes] samples of the last seconds, for the rate. */
  samples: Array<[number, number]>;
}

type Screen = Omit<HostState, "listed" | "phase" | "phaseSince" | "startedAt" | "doneAt" | "failedAt" | "failure"> & {
  /** The install this screen shows (the store's startedAt): a new one starts from a blank screen. */
  install: number | undefined;
};

/** A machine nothing is known of yet (also what tests start from). */
export function blank(mac: Mac, listed: boolean): HostState {
  return { ...blankScreen(mac), listed, phase: undefined, phaseSince: undefined, startedAt: undefined, doneAt: undefined, failedAt: undefined, failure: undefined };
}

function blankScreen(mac: Mac): Screen {
  return { mac, install: undefined, restored: false, ip: undefined, firmware: undefined, platform: undefined, bytes: 0, moduleBytes: 0, inflight: new Map(), lastSeen: undefined, lastEvent: undefined, lastError: undefined, lastErrorAt: undefined, hint: undefined, recent: [], marks: {}, nbpFile: undefined, answered: undefined, verdict: undefined, samples: [] };
}

export class HostViews {
  readonly store: HostStore;
  readonly #log: Logger;
  readonly #screens = new Map<Mac, Screen>();
  readonly #off: () => void;
  /** How many of #screens are unlisted MACs (at most LIMITS.hosts.maxUnlisted). */
  #unlisted = 0;
  /** The bytes of an image's kernel and modules (boot/image.ts bootBytes), for the progress bar. */
  #bootBytes: (image: string) => number | undefined = () => undefined;

  /** Subscribes to the bus: construct it after the tracker (tracker.ts says why). */
  constructor(opts: { store: HostStore; bus: EventBus; log: Logger }) {
    this.store = opts.store;
    this.#log = opts.log;
    for (const h of opts.store.book.hosts) {
      const s = blankScreen(h.mac);
      const r = opts.store.get(h.mac);
      s.restored = r?.phase !== undefined;
      s.install = r?.startedAt;
      this.#screens.set(h.mac, s);
    }
    this.#off = opts.bus.subscribe((e) => this.#observe(e));
  }

  close(): void {
    this.#off();
  }

  /** Every machine listed or seen, listed ones first. */
  all(): HostState[] {
    return [...this.#screens.keys()].map((m) => this.get(m)!).sort((a, b) => Number(b.listed) - Number(a.listed));
  }

  /** Every machine as /api/hosts shows it (the order of all()). */
  rows() {
    return this.all().map((s) => this.row(s));
  }

  /** Its own address as its packets showed it (the tracker puts it in host.* events). */
  ipOf(mac: Mac): string | undefined {
    return this.#screens.get(mac)?.ip;
  }

  get(mac: Mac): HostState | undefined {
    const s = this.#screens.get(mac);
    if (!s) return undefined;
    const r = this.store.get(mac);
    const phase = r?.phase;
    const { install: _install, ...screen } = s;
    return { ...screen, listed: this.store.book.lookup(mac) !== undefined, phase, phaseSince: phase ? r?.reached[phase] : undefined, startedAt: r?.startedAt, doneAt: r?.doneAt, failedAt: r?.failedAt, failure: r?.failure };
  }

  /** How many bytes of kernel and modules each image holds (set by the app once the images are open). */
  setBootBytes(fn: (image: string) => number | undefined): void {
    this.#bootBytes = fn;
  }

  /** The image this machine boots (its own, else the one every unlisted machine gets). */
  imageOf(mac: Mac): string {
    return this.store.book.lookup(mac)?.image ?? this.store.book.fallback.image;
  }

  /** Progress of its install: bytes of kernel and modules served (running TFTP transfers included) of the total. */
  progress(mac: Mac, now = Date.now()): { bytes: number; total: number | undefined; rate: number | undefined } {
    const s = this.#screens.get(mac);
    if (!s) return { bytes: 0, total: undefined, rate: undefined };
    const bytes = progressBytes(s);
    let rate: number | undefined;
    const recent = s.samples.filter(([t]) => now - t <= LIMITS.hosts.rateWindowMs);
    const phase = this.store.get(mac)?.phase;
    if (recent.length && now - (s.lastSeen ?? 0) < LIMITS.hosts.rateWindowMs) {
      const [t0, b0] = recent[0]!;
      rate = now - t0 >= 500 ? ((bytes - b0) * 1000) / (now - t0) : undefined;
    } else if (phase === "modules" || phase === "bootcfg") rate = 0;
    return { bytes, total: this.#bootBytes(this.imageOf(mac)), rate };
  }

  /** A hint set by the watcher (explain.ts); true when it changed. */
  setHint(mac: Mac, hint: HostState["hint"]): boolean {
    const s = this.#screens.get(mac);
    if (!s || (s.hint?.code === hint?.code && s.hint?.text === hint?.text)) return false;
    s.hint = hint;
    return true;
  }

  /** A machine as /api/hosts shows it: documented field names, no variables, no tokens. */
  row(of: Mac | HostState) {
    const s = typeof of === "string" ? this.get(of)! : of;
    const mac = s.mac;
    const e = this.store.book.lookup(mac);
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    const p = this.progress(mac);
    return {
      mac: s.mac,
      listed: s.listed,
      hostname: e?.hostname ?? null,
      image: e?.image ?? (s.phase ? this.imageOf(mac) : null),
      mode: e?.mode ?? null,
      phase: s.phase ?? null,
      ip: s.ip ?? e?.ip ?? null,
      firmware: s.firmware ?? null,
      platform: s.platform ?? null,
      bytes: s.bytes,
      progress: { bytes: p.bytes, total: p.total ?? null, rate: p.rate === undefined ? null : Math.round(p.rate) },
      last_seen: iso(s.lastSeen),
      last_event: s.lastEvent ?? null,
      last_error: s.lastError ?? null,
      last_error_at: iso(s.lastErrorAt),
      hint: s.hint ?? null,
      started_at: iso(s.startedAt),
      done_at: iso(s.doneAt),
      failed_at: iso(s.failedAt),
      failure: s.failure ?? null,
      answered: s.answered ?? null,
      verdict: s.verdict ?? null,
    };
  }

  // --- internal ---

  #screen(mac: Mac): Screen {
    let s = this.#screens.get(mac);
    if (!s) {
      s = blankScreen(mac);
      this.#screens.set(mac, s);
      // Past the cap, the eighth of unlisted MACs seen longest ago go in one pass: a flood of made-up MACs
      // costs one sort per 128 new ones, not a scan of every machine per new MAC.
      const max = LIMITS.hosts.maxUnlisted;
      if (!this.store.book.lookup(mac) && ++this.#unlisted > max) {
        const unlisted = [...this.#screens.values()].filter((x) => x !== s && !this.store.book.lookup(x.mac));
        unlisted.sort((a, b) => (a.lastSeen ?? 0) - (b.lastSeen ?? 0));
        for (const x of unlisted.slice(0, max / 8)) this.#screens.delete(x.mac);
        this.#unlisted = unlisted.length - max / 8 + 1;
      }
    }
    return s;
  }

  #observe(e: NetbootEvent): void {
    if (!e.mac || e.type === "link.quiet") return;
    if (!e.type.startsWith("host.") && !identifies(e)) return this.#named(e);
    const s = this.#screen(e.mac);
    const now = Date.now();
    // A new install (the tracker marked it, for this very event) or none (armed again): a blank screen.
    const install = this.store.get(e.mac)?.startedAt;
    if (install !== s.install) {
      restart(s);
      s.install = install;
    }
    const text = describeEvent(e);
    if (text && e.type !== "host.phase") {
      s.recent.push({ time: now, text });
      if (s.recent.length > LIMITS.hosts.recentEvents) s.recent.shift();
    }
    if (e.type === "host.phase") {
      if (e.phase === "kickstart") s.marks.installer ??= now;
      return;
    }
    if (e.type === "host.armed") {
      s.restored = false;
      return;
    }
    if (e.type.startsWith("host.")) return;
    s.lastSeen = now;
    s.restored = false;
    // Only what shows the host's own address moves it (a request naming its MAC from elsewhere does not).
    if (e.ip && e.ip !== "0.0.0.0") s.ip = e.ip;
    switch (e.type) {
      case "dhcp.request":
        if (e.firmware) s.firmware = e.firmware;
        s.platform = platformOf(e.firmware) ?? s.platform;
        s.lastEvent = text;
        if (e.file && e.answer && e.message === "DISCOVER") s.marks.offer = now;
        if (e.message === "REQUEST") s.marks.request = now;
        if (e.firmware === "ipxe") s.marks.offer ??= now;
        this.#answered(s, e);
        break;
      case "bsdp.request":
        s.firmware = "apple";
        s.platform = "Mac";
        s.lastEvent = text;
        if (e.answer === "ACK[SELECT]") s.marks.offer = now;
        break;
      case "tftp.start":
        s.inflight.set(e.client, { file: e.file, kind: e.kind, bytes: 0 });
        break;
      case "tftp.progress":
        s.inflight.set(e.client, { file: e.file, kind: e.kind, bytes: e.bytes });
        if (e.kind === "module" || e.kind === "disc") s.marks.module = now;
        sample(s, now);
        break;
      case "http.abort":
        s.lastEvent = text;
        break;
      case "tftp.end":
      case "http.end": {
        if (e.type === "tftp.end") s.inflight.delete(e.client);
        const ok = e.type === "tftp.end" ? e.outcome === "sent" : e.status === 200 || e.status === 206;
        s.bytes += e.bytes;
        s.lastEvent = text;
        // mboot.efi asks for crypto64.efi whether the image has it or not: a 404 there is normal, as a size query is.
        const expected = e.kind === "crypto" || (e.type === "tftp.end" && e.sizeProbe);
        if (!ok && !expected && (e.type === "tftp.end" || e.status >= 400)) error(s, now, text!);
        if (ok) this.#served(s, e, now);
        sample(s, now);
        break;
      }
      case "ks.served":
        if (e.refused) error(s, now, `kickstart refused: ${e.refused}`);
        break;
      default:
        break;
    }
  }

  /**
   * A request that names a machine from an address not known to be its own: in its recent events and, when
   * refused, as its last error (someone asked for its kickstart), but its address, progress and moments
   * stay what the machine itself showed. A MAC with no screen gets none (a flood of made-up paths).
   */
  #named(e: NetbootEvent): void {
    const s = this.#screens.get(e.mac!);
    const text = describeEvent(e);
    if (!s || !text) return;
    const now = Date.now();
    s.recent.push({ time: now, text });
    if (s.recent.length > LIMITS.hosts.recentEvents) s.recent.shift();
    const failed = (e.type === "tftp.end" && e.outcome !== "sent" && !e.sizeProbe) || (e.type === "http.end" && e.status >= 400 && e.kind !== "crypto");
    if (failed) error(s, now, text);
    if (e.type === "ks.served" && e.refused) error(s, now, `kickstart refused: ${e.refused}`);
  }

  /** A file served whole: the moment of its kind, the module bytes, the first stage it got. */
  #served(s: Screen, e: Extract<NetbootEvent, { type: "tftp.end" | "http.end" }>, now: number): void {
    const mark = e.kind ? MARK_OF[e.kind] : undefined;
    if (mark) s.marks[mark] = now;
    if (e.kind === "module" || e.kind === "disc") s.moduleBytes += e.bytes;
    if (e.kind === "nbp" || e.kind === "loader") s.nbpFile = e.type === "tftp.end" ? e.file : e.path;
  }

  /**
   * What the policy answered it, from the DHCP request's typed decision. A change for a machine sent to its
   * disk, or denied where a list is kept, goes to the log too (the operator wants to know); once each.
   */
  #answered(s: Screen, e: Extract<NetbootEvent, { type: "dhcp.request" }>): void {
    if (!e.decision) return;
    const listed = this.store.book.lookup(s.mac) !== undefined;
    let answered: string;
    let say = false;
    if (e.decision === "boot") answered = `boot ${e.file ?? "?"}`;
    else if (e.decision === "local") {
      answered = `boots from its own disk (${e.reason})`;
      say = true;
    } else if (e.declined === "not-netboot") {
      if (this.store.get(s.mac)?.phase) return;
      answered = "not network-booting (a plain DHCP client)";
    } else {
      answered = `no boot answer (${e.reason})`;
      say = this.store.book.listed;
    }
    if (s.answered !== answered && say) this.#log.info(`${s.mac}${listed ? "" : " (unlisted)"}: ${answered}`);
    s.answered = answered;
    s.verdict = e.decision === "ignore" ? (e.declined ?? "unbootable") : e.decision;
  }
}

/** Which moment of an install (explain.ts) a file of each kind marks. */
const MARK_OF: Partial<Record<FileKind, Mark>> = { nbp: "nbp", script: "script", loader: "loader", bootcfg: "bootcfg", module: "module", disc: "module", ks: "ks" };

function restart(s: Screen): void {
  Object.assign(s, { bytes: 0, moduleBytes: 0, lastError: undefined, lastErrorAt: undefined, hint: undefined, marks: {}, samples: [], nbpFile: undefined });
  s.inflight.clear();
}

function error(s: Screen, now: number, text: string): void {
  s.lastError = text;
  s.lastErrorAt = now;
}

/** Kernel and module bytes served, with what running TFTP transfers of modules have sent so far. */
function progressBytes(s: Screen): number {
  let n = s.moduleBytes;
  for (const t of s.inflight.values()) if (t.kind === "module" || t.kind === "disc") n += t.bytes;
  return n;
}

function sample(s: Screen, now: number): void {
  s.samples.push([now, progressBytes(s)]);
  while (s.samples.length > 2 && now - s.samples[0]![0] > LIMITS.hosts.rateWindowMs) s.samples.shift();
}

function platformOf(firmware: Firmware | undefined): Platform | undefined {
  switch (firmware) {
    case "bios":
      return "BIOS";
    case "efi-x64":
      return "UEFI";
    case "efi-x64-http":
    case "efi-arm64-http":
      return "HTTP";
    case "efi-arm64":
      return "ARM64";
    case "apple":
      return "Mac";
    default:
      return undefined; // iPXE, the installer: the platform stays what the firmware said
  }
}
