/**
 * The host registry: where each machine is, fed by the event bus, persisted in STATE_DIR/hosts.json (written
 * whole and renamed on every phase change), so a `once` host that reported done boots from disk after a
 * restart too. Phases of one install, in order:
 *
 *   offered     a DHCP/proxyDHCP/BSDP answer told it where to boot from
 *   loader      it fetched its first stage (iPXE, or the ESXi loader itself)
 *   bootcfg     it fetched its boot.cfg (BIOS: its disc image)
 *   modules     the kernel and modules are flowing
 *   kickstart   the installer is up (it asked DHCP as a plain client, or for its kickstart)
 *   installing  it has its kickstart
 *   done        the kickstart's %post called done_url          | failed: failed_url, with the log
 *
 * It also gives the policy its snapshot of a host (boot/policy.ts HostSnapshot): listed or not, which image,
 * whether it is armed (gets a kickstart) or boots from its disk.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HostSnapshot } from "../boot/policy.ts";
import { fsReason, SourceError } from "../errors.ts";
import type { EventBus, NetbootEvent } from "../events.ts";
import type { Logger } from "../log.ts";
import { ensureStateDir, writeFileAtomic } from "../state/atomic.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import type { HostBook, HostEntry } from "./book.ts";
import { describeEvent, isSizeProbe } from "./describe.ts";

export const PHASES = ["offered", "loader", "bootcfg", "modules", "kickstart", "installing", "done", "failed"] as const;
export type Phase = (typeof PHASES)[number];

/** The machine's platform as its first-stage firmware showed it (iPXE later hides it). */
export type Platform = "BIOS" | "UEFI" | "HTTP" | "Mac" | "ARM64" | "other";

/** Moments of one install that the explanations (explain.ts) reason about. */
export type Mark = "offer" | "request" | "nbp" | "script" | "loader" | "bootcfg" | "module" | "installer" | "ks";

export interface HostEvent {
  time: number;
  text: string;
}

export interface HostState {
  mac: Mac;
  listed: boolean;
  phase: Phase | undefined;
  phaseSince: number | undefined;
  /** The phase came from the state file (a restart) and nothing was heard from the host since. */
  restored?: boolean;
  ip: string | undefined;
  firmware: string | undefined;
  platform: Platform | undefined;
  /** Bytes served to it since its install started. */
  bytes: number;
  /** Of those, the kernel's and modules' (and the disc's, for BIOS): what the progress bar shows. */
  moduleBytes: number;
  /** TFTP transfers still running for it: client "ip:port" → bytes acknowledged so far. */
  inflight: Map<string, { file: string; bytes: number }>;
  lastSeen: number | undefined;
  /** The last thing it did, in words ("GET /esxi/b.b00 200"). */
  lastEvent: string | undefined;
  /** The last thing that went wrong for it, in words, and when. */
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  /** What its state means, when it looks stuck (explain.ts). */
  hint: { code: string; level: "info" | "warn"; text: string } | undefined;
  /** Its last events, oldest first (at most RECENT). */
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
  /** [time, progress bytes] samples of the last seconds, for the rate. */
  samples: Array<[number, number]>;
}

/** Events kept per machine. */
export const RECENT = 10;
/** The rate is measured over this window. */
const RATE_WINDOW_MS = 5000;

/** At most this many unlisted machines are remembered; the ones seen longest ago go first. */
const MAX_UNLISTED = 1024;

interface Persisted {
  version: 1;
  hosts: Record<string, { phase?: Phase; startedAt?: number; doneAt?: number; failedAt?: number; failure?: string; token: string }>;
}

export class HostRegistry {
  readonly book: HostBook;
  readonly path: string;
  readonly #dir: string;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #states = new Map<Mac, HostState>();
  readonly #tokens = new Map<Mac, string>();
  /** How many of #states are unlisted MACs (at most MAX_UNLISTED). */
  #unlisted = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: () => void;
  /** The bytes of an image's kernel and modules (boot/image.ts bootBytes), for the progress bar. */
  #bootBytes: (image: string) => number | undefined = () => undefined;

  constructor(book: HostBook, stateDir: string, bus: EventBus, log: Logger) {
    this.book = book;
    this.#dir = stateDir;
    this.path = join(stateDir, "hosts.json");
    this.#bus = bus;
    this.#log = log;
    for (const h of book.hosts) this.#states.set(h.mac, blank(h.mac, true));
    this.#load();
    // Every listed host has its callback token from the start (the kickstart carries it).
    const missing = book.hosts.filter((h) => !this.#tokens.has(h.mac));
    for (const h of missing) this.#tokens.set(h.mac, randomBytes(16).toString("hex"));
    if (missing.length && book.hosts.length) this.#save();
    this.#unsubscribe = bus.subscribe((e) => this.#observe(e));
    // `netboot hosts rearm MAC` drops a file in STATE_DIR/rearm/ (it may run while we do).
    // Made here, before serve drops root and hands the state directory over, so that the server can take
    // requests away that a root `netboot hosts rearm` puts there.
    if (book.hosts.length) mkdirSync(join(this.#dir, "rearm"), { recursive: true });
    this.#timer = setInterval(() => this.#applyRearms(), 2000);
    this.#timer.unref?.();
    this.#applyRearms();
  }

  close(): void {
    this.#unsubscribe();
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Every machine seen or listed, listed ones first. */
  all(): HostState[] {
    return [...this.#states.values()].sort((a, b) => Number(b.listed) - Number(a.listed));
  }

  get(mac: Mac): HostState | undefined {
    return this.#states.get(mac);
  }

  /** How many bytes of kernel and modules each image holds (set by the app once the images are open). */
  setBootBytes(fn: (image: string) => number | undefined): void {
    this.#bootBytes = fn;
  }

  /** The image this machine boots (its own, else the one every unlisted machine gets). */
  imageOf(mac: Mac): string {
    return this.book.lookup(mac)?.image ?? this.book.fallback.image;
  }

  /** Progress of its install: bytes of kernel and modules served (running TFTP transfers included) of the total. */
  progress(mac: Mac, now = Date.now()): { bytes: number; total: number | undefined; rate: number | undefined } {
    const s = this.#states.get(mac);
    if (!s) return { bytes: 0, total: undefined, rate: undefined };
    const bytes = progressBytes(s);
    let rate: number | undefined;
    const recent = s.samples.filter(([t]) => now - t <= RATE_WINDOW_MS);
    if (recent.length && now - (s.lastSeen ?? 0) < RATE_WINDOW_MS) {
      const [t0, b0] = recent[0]!;
      rate = now - t0 >= 500 ? ((bytes - b0) * 1000) / (now - t0) : undefined;
    } else if (s.phase === "modules" || s.phase === "bootcfg") rate = 0;
    return { bytes, total: this.#bootBytes(this.imageOf(mac)), rate };
  }

  /** A hint set by the watcher (explain.ts); true when it changed. */
  setHint(mac: Mac, hint: HostState["hint"]): boolean {
    const s = this.#states.get(mac);
    if (!s || (s.hint?.code === hint?.code && s.hint?.text === hint?.text)) return false;
    s.hint = hint;
    return true;
  }

  /** What the boot policy needs to know of this machine now. */
  snapshot(mac: Mac): HostSnapshot {
    const entry = this.book.lookup(mac);
    if (!entry) {
      if (this.book.unlisted === "deny") return { refused: this.book.listed ? "not listed (deny by default)" : "not allowed" };
      return { image: this.book.fallback.image, kickstart: this.book.unlisted === "kickstart" && this.book.fallback.kickstart !== undefined };
    }
    if (entry.mode === "local") return { localBoot: "mode local: boots from its own disk" };
    const s = this.#states.get(mac);
    if (entry.mode === "once" && s?.phase === "done") return { localBoot: `installed (done ${new Date(s.doneAt ?? 0).toISOString()}); netboot hosts rearm ${mac} to install again` };
    return { image: entry.image, kickstart: entry.kickstart !== undefined };
  }

  /** A host gets its kickstart only while armed: listed (or --allow-any), not local, not done in once mode. */
  armed(mac: Mac): { entry: HostEntry | undefined; why: string | undefined } {
    const snap = this.snapshot(mac);
    const entry = this.book.lookup(mac);
    if (snap.refused) return { entry, why: snap.refused };
    if (snap.localBoot) return { entry, why: snap.localBoot };
    if (!snap.kickstart) return { entry, why: "no kickstart for it (interactive install)" };
    return { entry, why: undefined };
  }

  /** The host's callback token (made once, kept in the state file). */
  token(mac: Mac): string {
    let t = this.#tokens.get(mac);
    if (!t) {
      t = randomBytes(16).toString("hex");
      this.#tokens.set(mac, t);
      this.#save();
    }
    return t;
  }

  checkToken(mac: Mac, token: string | null | undefined): boolean {
    const want = this.#tokens.get(mac);
    if (!want || !token || token.length !== want.length) return false;
    return timingSafeEqual(Buffer.from(want), Buffer.from(token));
  }

  /** The kickstart's %post said the install finished. */
  done(mac: Mac): void {
    const s = this.#state(mac);
    const now = Date.now();
    s.doneAt = now;
    s.failedAt = undefined;
    s.failure = undefined;
    s.hint = undefined;
    this.#phase(s, "done");
    this.#bus.emit({ type: "host.done", mac, ip: s.ip, hostname: this.book.lookup(mac)?.hostname, seconds: s.startedAt ? (now - s.startedAt) / 1000 : undefined });
  }

  failed(mac: Mac, reason: string, log?: Uint8Array): void {
    const s = this.#state(mac);
    s.failedAt = Date.now();
    s.failure = reason;
    this.#error(s, s.failedAt, `install failed: ${reason}`);
    if (log?.length) {
      mkdirSync(join(this.#dir, "logs"), { recursive: true });
      writeFileSync(join(this.#dir, "logs", `${mac.replaceAll(":", "-")}-failed.log`), log);
    }
    this.#phase(s, "failed");
    this.#bus.emit({ type: "host.failed", mac, ip: s.ip, hostname: this.book.lookup(mac)?.hostname, reason });
  }

  /** Arms a host again: its next network boot installs. */
  rearm(mac: Mac): void {
    const s = this.#state(mac);
    Object.assign(s, { phase: undefined, phaseSince: undefined, doneAt: undefined, failedAt: undefined, failure: undefined, startedAt: undefined, bytes: 0, moduleBytes: 0, lastError: undefined, lastErrorAt: undefined, hint: undefined, marks: {}, samples: [] });
    s.inflight.clear();
    this.#save();
    this.#log.info(`${mac}: armed again; its next network boot installs`);
  }

  /**
   * What the boot policy answered this machine ("boot ipxe/snponly.efi", "no boot answer (not listed…)").
   * With `log`, a change goes to the log too (denied and local-booting machines: the operator wants to know).
   */
  note(mac: Mac, answered: string, log = true): void {
    const s = this.#state(mac);
    if (s.answered !== answered && log) this.#log.info(`${mac}${s.listed ? "" : " (unlisted)"}: ${answered}`);
    s.answered = answered;
    s.lastSeen = Date.now();
  }

  // --- internal ---

  #state(mac: Mac): HostState {
    let s = this.#states.get(mac);
    if (!s) {
      s = blank(mac, false);
      this.#states.set(mac, s);
      // Past the cap, the eighth of unlisted MACs seen longest ago go in one pass: a flood of made-up MACs
      // costs one sort per 128 new ones, not a scan of every state per new MAC.
      if (++this.#unlisted > MAX_UNLISTED) {
        const unlisted = [...this.#states.values()].filter((x) => !x.listed && x !== s);
        unlisted.sort((a, b) => (a.lastSeen ?? 0) - (b.lastSeen ?? 0));
        for (const x of unlisted.slice(0, MAX_UNLISTED / 8)) this.#states.delete(x.mac);
        this.#unlisted = unlisted.length - MAX_UNLISTED / 8 + 1;
      }
    }
    return s;
  }

  #observe(e: NetbootEvent): void {
    if (!e.mac || e.type === "link.quiet") return;
    const s = this.#state(e.mac);
    const now = Date.now();
    const text = describeEvent(e);
    if (text && e.type !== "host.phase") {
      s.recent.push({ time: now, text });
      if (s.recent.length > RECENT) s.recent.shift();
    }
    if (e.type.startsWith("host.")) return;
    s.lastSeen = now;
    s.restored = false;
    if (e.ip && e.ip !== "0.0.0.0") s.ip = e.ip;
    switch (e.type) {
      case "dhcp.request": {
        if (e.firmware) s.firmware = e.firmware;
        const platform = platformOf(e.firmware);
        if (platform) s.platform = platform;
        s.lastEvent = text;
        if (e.file && e.answer) {
          // A boot file handed out: a new install starts, unless this one is under way.
          if (!s.phase || s.phase === "done" || s.phase === "failed" || (PHASES.indexOf(s.phase) >= PHASES.indexOf("kickstart") && e.firmware !== "ipxe")) {
            this.#restart(s, now);
            this.#phase(s, "offered");
          }
          if (e.message === "DISCOVER") s.marks.offer = now;
        }
        if (e.message === "REQUEST") s.marks.request = now;
        if (e.firmware === "ipxe") s.marks.offer = s.marks.offer ?? now; else if (!e.file && s.phase === "modules" && (e.firmware === "unknown" || e.firmware === undefined)) {
          s.marks.installer = now;
          this.#phase(s, "kickstart"); // the installer's own DHCP
        }
        break;
      }
      case "bsdp.request":
        s.firmware = "apple";
        s.platform = "Mac";
        s.lastEvent = text;
        if (e.answer && /SELECT/.test(e.message)) s.marks.offer = now;
        break;
      case "tftp.start":
        s.inflight.set(e.client, { file: e.file, bytes: 0 });
        break;
      case "tftp.progress":
        s.inflight.set(e.client, { file: e.file, bytes: e.bytes });
        if (isModule(e.file)) s.marks.module = now;
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
        if (e.type === "tftp.end" && e.outcome !== "sent" && !isSizeProbe(e)) this.#error(s, now, text!);
        if (e.type === "http.end" && e.status >= 400 && !/crypto64\.efi$/i.test(e.path)) this.#error(s, now, text!);
        if (!ok || !e.what) {
          sample(s, now);
          break;
        }
        const to = phaseOf(e.what);
        if (to === "modules") {
          s.moduleBytes += e.bytes;
          s.marks.module = now;
        }
        if (e.what.startsWith("iPXE ") && e.what !== "iPXE script") {
          s.marks.nbp = now;
          s.nbpFile = e.type === "tftp.end" ? e.file : e.path;
        }
        if (e.what === "iPXE script") s.marks.script = now;
        if (e.what === "EFI loader") {
          s.marks.loader = now;
          s.nbpFile = e.type === "tftp.end" ? e.file : e.path;
        }
        if (e.what === "boot.cfg") s.marks.bootcfg = now;
        if (e.what === "ks.cfg") s.marks.ks = now;
        sample(s, now);
        // Without a DHCP answer of ours (--dhcp off, another server points here) the first boot file starts the phases.
        if (to && (!s.phase || (PHASES.indexOf(to) > PHASES.indexOf(s.phase) && s.phase !== "done" && s.phase !== "failed"))) this.#phase(s, to);
        break;
      }
      case "ks.served":
        if (e.refused) this.#error(s, now, `kickstart refused: ${e.refused}`);
        break;
      default:
        break;
    }
  }

  #restart(s: HostState, now: number): void {
    Object.assign(s, { startedAt: now, bytes: 0, moduleBytes: 0, doneAt: undefined, failedAt: undefined, failure: undefined, lastError: undefined, lastErrorAt: undefined, hint: undefined, marks: {}, samples: [], nbpFile: undefined });
    s.inflight.clear();
  }

  #error(s: HostState, now: number, text: string): void {
    s.lastError = text;
    s.lastErrorAt = now;
  }

  #phase(s: HostState, phase: Phase): void {
    if (s.phase === phase) return;
    const previous = s.phase;
    s.phase = phase;
    s.phaseSince = Date.now();
    if (s.listed) this.#save();
    this.#bus.emit({ type: "host.phase", mac: s.mac, ip: s.ip, phase, previous, hostname: this.book.lookup(s.mac)?.hostname });
  }

  #load(): void {
    const data = readHostState(this.path);
    for (const [m, v] of Object.entries(data?.hosts ?? {})) {
      const mac = tryParseMac(m);
      if (!mac || !v) continue;
      if (typeof v.token === "string") this.#tokens.set(mac, v.token);
      const s = this.#states.get(mac);
      if (!s) continue; // no longer listed: forgotten
      s.phase = PHASES.includes(v.phase as Phase) ? v.phase : undefined;
      s.restored = s.phase !== undefined;
      s.startedAt = v.startedAt;
      s.doneAt = v.doneAt;
      s.failedAt = v.failedAt;
      s.failure = v.failure;
    }
  }

  #save(): void {
    const out: Persisted = { version: 1, hosts: {} };
    for (const [mac, token] of this.#tokens) {
      const s = this.#states.get(mac);
      out.hosts[mac] = { token, phase: s?.phase, startedAt: s?.startedAt, doneAt: s?.doneAt, failedAt: s?.failedAt, failure: s?.failure };
    }
    ensureStateDir(this.#dir);
    writeFileAtomic(this.path, JSON.stringify(out, null, 1));
  }

  #rearmWarned = false;

  #applyRearms(): void {
    const dir = join(this.#dir, "rearm");
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir)) {
      const mac = tryParseMac(f.replaceAll("-", ":"));
      try {
        rmSync(join(dir, f), { force: true });
      } catch (err) {
        // Each request is done once: one that cannot be taken away is not applied (it would be every 2 s).
        if (!this.#rearmWarned) this.#log.warn(`${join(dir, f)}: cannot take the rearm request away (${(err as Error).message.split("\n")[0]}); not applied`);
        this.#rearmWarned = true;
        continue;
      }
      if (mac) this.rearm(mac);
    }
  }
}

/**
 * STATE_DIR/hosts.json as a server wrote it, or undefined when there is none. One that cannot be parsed
 * is an error: starting without it would arm every host again (a boot-once host already installed would
 * be reinstalled at its next network boot). It is written atomically, so only a hand edit or a bad disk
 * gets there.
 */
export function readHostState(path: string): Partial<Persisted> | undefined {
  if (!existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    // Unreadable is not corrupt: the file may be fine (and moving it away would arm every host again).
    throw new SourceError("E_STATE_READ", `cannot read ${path} (${fsReason(err)})`);
  }
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  try {
    const data = JSON.parse(text) as unknown;
    if (!isObject(data) || ((data as Partial<Persisted>).hosts !== undefined && !isObject((data as Partial<Persisted>).hosts))) throw new Error("no hosts object");
    return data as Partial<Persisted>;
  } catch (err) {
    throw new SourceError("E_STATE_CORRUPT", `${path} is not a host state file (${(err as Error).message}); move it away to start with every host armed`);
  }
}

/** Asks a running (or the next) server to arm a host again: a file in STATE_DIR/rearm/. */
export function requestRearm(stateDir: string, mac: Mac): string {
  const dir = join(stateDir, "rearm");
  const f = join(dir, mac.replaceAll(":", "-"));
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(f, `${new Date().toISOString()}\n`);
  } catch (err) {
    throw new SourceError("E_STATE_DIR", `cannot ask for ${mac} to be armed again: ${f} (${fsReason(err)}); is --state-dir the server's, and writable by you?`);
  }
  return f;
}

/** What a file's kind (the boot namespace's `what`) says about the host's phase. */
function phaseOf(what: string): Phase | undefined {
  if (what === "boot.cfg") return "bootcfg";
  if (what.startsWith("disc image")) return "modules";
  if (what === "ks.cfg") return "installing";
  if (what === "file") return "modules";
  if (what.startsWith("iPXE") || what === "EFI loader") return "loader";
  return undefined;
}

/** A machine nothing is known of yet (also what tests start from). */
export function blank(mac: Mac, listed: boolean): HostState {
  return {
    mac,
    listed,
    phase: undefined,
    phaseSince: undefined,
    ip: undefined,
    firmware: undefined,
    platform: undefined,
    bytes: 0,
    moduleBytes: 0,
    inflight: new Map(),
    lastSeen: undefined,
    lastEvent: undefined,
    lastError: undefined,
    lastErrorAt: undefined,
    hint: undefined,
    recent: [],
    marks: {},
    nbpFile: undefined,
    startedAt: undefined,
    doneAt: undefined,
    failedAt: undefined,
    failure: undefined,
    answered: undefined,
    samples: [],
  };
}

/** Kernel and module bytes served, with what running TFTP transfers of modules have sent so far. */
function progressBytes(s: HostState): number {
  let n = s.moduleBytes;
  for (const t of s.inflight.values()) if (isModule(t.file)) n += t.bytes;
  return n;
}

function sample(s: HostState, now: number): void {
  s.samples.push([now, progressBytes(s)]);
  while (s.samples.length > 2 && now - s.samples[0]![0] > RATE_WINDOW_MS) s.samples.shift();
}

/** A TFTP name that is a kernel or module, not a first stage, a boot.cfg or a kickstart. */
function isModule(file: string): boolean {
  return !/(^|\/)(ipxe\/[^/]+|boot\.cfg|boot\.ipxe|mboot\.efi|bootx64\.efi|bootaa64\.efi|crypto64\.efi|ks\.cfg|[^/]+\.kpxe)$/i.test(file.replace(/^[a-z]+:\/\/[^/]+/i, ""));
}

function platformOf(firmware: string | undefined): Platform | undefined {
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
