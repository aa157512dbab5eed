/**
 * Is the installed ESXi up, at the expected build? ESXi answers the vSphere API's unauthenticated
 * RetrieveServiceContent at https://HOST/sdk (vim25 SOAP, the call every vSphere client makes first, before
 * logging in), and its content's `about` names the build. This works with Secure Boot too, where ESXi 8
 * runs no %firstboot script (execInstalledOnly). The host's certificate is its own, self-signed at first
 * boot: it is not checked (nothing secret is sent; only the build is read).
 */
import { LIMITS } from "../config.ts";
import { errorMessage } from "../errors.ts";
import { describeNetError, tlsFetchOptions } from "../net/fetch.ts";
import type { EventBus } from "../events.ts";
import type { HostStore } from "../hosts/store/store.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";

const ENVELOPE =
  '<?xml version="1.0" encoding="UTF-8"?>' +
  '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
  '<soapenv:Body><RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent></soapenv:Body></soapenv:Envelope>';

export interface EsxiAbout {
  build: string;
  fullName: string | undefined;
}

/** The build the service at `url` ("https://10.77.0.11" or with a port) says it is, or why there is none yet. */
export async function probeEsxi(url: string): Promise<EsxiAbout | { error: string }> {
  const target = `${url.replace(/\/$/, "")}/sdk`;
  const tls = await tlsFetchOptions(target, { rejectUnauthorized: false });
  try {
    const res = await fetch(target, {
      method: "POST",
      headers: { "content-type": "text/xml; charset=utf-8", soapaction: "urn:vim25/8.0" },
      body: ENVELOPE,
      signal: AbortSignal.timeout(LIMITS.drive.probeTimeoutMs),
      ...tls.options,
    } as RequestInit);
    const text = await res.text();
    const about = /<about\b[^>]*>([\s\S]*?)<\/about>/.exec(text)?.[1];
    const build = about ? /<build>([^<]*)<\/build>/.exec(about)?.[1] : undefined;
    if (!res.ok || !build) return { error: `${target}: ${res.status}${build ? "" : ", no about.build in the answer"}` };
    return { build: build.trim(), fullName: /<fullName>([^<]*)<\/fullName>/.exec(about!)?.[1] };
  } catch (err) {
    return { error: `${target}: ${(err as { name?: string }).name === "TimeoutError" ? "no answer" : describeNetError(err)}` };
  } finally {
    await tls.close();
  }
}

export interface VerifierOptions {
  store: HostStore;
  bus: EventBus;
  log: Logger;
  ipOf(mac: Mac): string | undefined;
  /** The build the host's image says (boot.cfg build=, its last part). */
  buildOf(mac: Mac): string | undefined;
  /** How a host is asked (tests point it at another port). */
  probe?: (url: string) => Promise<EsxiAbout | { error: string }>;
}

/**
 * The one owner of "installed → done" for verify: https (serve and reinstall alike): every host that is
 * `installed` and verifies by HTTPS is asked for its build every LIMITS.drive.probeEveryMs at its address
 * (its lab ip, else where its packets came from) until it answers. The image's build: done, with
 * host.verified; another build: failed, naming both. Still silent: it stays installed (a hint says so after
 * LIMITS.waits.verify; reinstall's --timeout fails it).
 */
export class HttpsVerifier {
  readonly #o: VerifierOptions;
  readonly #active = new Set<Mac>();
  readonly #last = new Map<Mac, string>();
  /** Per host still silent: how many asks so far, and the timer of the next (1, 2, 4, 8 s, then the sweep's pace). */
  readonly #tries = new Map<Mac, { n: number; timer: ReturnType<typeof setTimeout> | undefined }>();
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #off: () => void;
  #closed = false;

  constructor(o: VerifierOptions) {
    this.#o = o;
    // A host that reaches installed is asked at once; the rest on the timer (restarts, answers that failed).
    this.#off = o.bus.subscribe((e) => {
      if (e.type === "host.phase" && e.phase === "installed" && e.mac) {
        clearTimeout(this.#tries.get(e.mac)?.timer);
        this.#tries.delete(e.mac);
        void this.#check(e.mac);
      }
    });
    this.#timer = setInterval(() => this.#sweep(), LIMITS.drive.probeEveryMs);
    this.#timer.unref?.();
    queueMicrotask(() => this.#sweep());
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const t of this.#tries.values()) clearTimeout(t.timer);
    this.#off();
  }

  #sweep(): void {
    for (const h of this.#o.store.book.hosts) if (this.#o.store.get(h.mac)?.phase === "installed") void this.#check(h.mac);
  }

  async #check(mac: Mac): Promise<void> {
    const { store, bus, log } = this.#o;
    const entry = store.book.lookup(mac);
    if (this.#closed || !entry || entry.verify !== "https" || this.#active.has(mac) || store.get(mac)?.phase !== "installed") return;
    const ip = entry.ip ?? this.#o.ipOf(mac);
    if (!ip) return;
    this.#active.add(mac);
    try {
      const url = `https://${ip}${LIMITS.drive.httpsPort === 443 ? "" : `:${LIMITS.drive.httpsPort}`}`;
      const r = await (this.#o.probe ?? probeEsxi)(url);
      if (this.#closed || store.get(mac)?.phase !== "installed") return;
      const who = entry.hostname ?? mac;
      if ("error" in r) {
        if (this.#last.get(mac) !== r.error) log.debug(`${who}: not answering yet: ${r.error}`);
        this.#last.set(mac, r.error);
        // Soon again while it may be just coming up; then the sweep's pace.
        const t = this.#tries.get(mac) ?? { n: 0, timer: undefined };
        t.n++;
        const wait = 500 * 2 ** t.n;
        if (wait < LIMITS.drive.probeEveryMs) {
          clearTimeout(t.timer);
          t.timer = setTimeout(() => void this.#check(mac), wait);
          t.timer.unref?.();
        }
        this.#tries.set(mac, t);
        return;
      }
      clearTimeout(this.#tries.get(mac)?.timer);
      this.#tries.delete(mac);
      const want = this.#o.buildOf(mac);
      if (want && r.build !== want) {
        const reason = `the installed ESXi at ${ip} is build ${r.build}, the image is build ${want}`;
        log.warn(`${who}: ${reason}: an older install booted (is the disk netboot installed to first in the boot order?), or the kickstart installed to another disk`);
        await store.failed(mac, reason);
        return;
      }
      await store.done(mac);
      bus.emit({ type: "host.verified", mac, ip, hostname: entry.hostname, how: "https", build: r.build });
      log.info(`${who}: the installed ESXi answers at ${url}: ${r.fullName ?? `build ${r.build}`}`);
    } catch (err) {
      log.warn(`${entry.hostname ?? mac}: verifying: ${errorMessage(err)}`);
    } finally {
      this.#active.delete(mac);
    }
  }
}
