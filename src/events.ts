/**
 * One event bus every server emits into, and the one typed union of what it carries. Observers subscribe:
 * the host registry (phases), the NDJSON writer (--json), the metrics, the terminal view and the
 * status page. Every event has `type` and `time` (ISO 8601), and `mac` / `ip` where known. Secrets never go
 * in: an event names files and hosts, never a kickstart's contents or a token.
 */
import type { Mac } from "./wire/mac.ts";

interface Base {
  time: string;
  mac?: Mac | undefined;
  ip?: string | undefined;
}

export type NetbootEvent =
  /** A DHCP (or proxyDHCP) request and what became of it. */
  | (Base & { type: "dhcp.request"; message: string; port: 67 | 4011; relay: string | undefined; answer: string | undefined; file: string | undefined; ignored: string | undefined; firmware: string | undefined })
  /** An Apple BSDP INFORM[LIST|SELECT] or a Mac's DISCOVER, and the answer. */
  | (Base & { type: "bsdp.request"; message: string; answer: string | undefined; ignored: string | undefined })
  /** `client` is "ip:port": one machine may run several transfers. */
  | (Base & { type: "tftp.start"; client: string; file: string; size: number; blksize: number; windowsize: number })
  /** Bytes acknowledged so far by a transfer still running (about once a second). */
  | (Base & { type: "tftp.progress"; client: string; file: string; bytes: number; size: number })
  | (Base & { type: "tftp.end"; client: string; file: string; outcome: string; bytes: number; seconds: number; retransmits: number; reason: string | undefined; what: string | undefined })
  | (Base & { type: "http.start"; method: string; path: string })
  /** `note`: why a request was refused or missed (404, 403), in words. */
  | (Base & { type: "http.end"; method: string; path: string; status: number; bytes: number; what: string | undefined; note?: string | undefined; aborted?: boolean | undefined })
  /** The client went away before the end of an answer already reported by http.end (Bun's edge reports at the start; how much was sent it does not say). */
  | (Base & { type: "http.abort"; method: string; path: string; bytes: number; what: string | undefined })
  /** A boot.cfg went to a host (over HTTP or TFTP, or inside its disc image). */
  | (Base & { type: "bootcfg.served"; image: string; via: "http" | "tftp" | "disc" })
  /** A kickstart went to a host; `refused` when it was asked for and not given (and why). */
  | (Base & { type: "ks.served"; image: string; refused: string | undefined })
  | (Base & { type: "host.phase"; phase: string; previous: string | undefined; hostname: string | undefined })
  | (Base & { type: "host.done"; hostname: string | undefined; seconds: number | undefined })
  | (Base & { type: "host.failed"; hostname: string | undefined; reason: string })
  /** What a host's stall or error means, in words a bench user acts on (hosts/explain.ts); `text` "" when it cleared. */
  | (Base & { type: "host.hint"; hostname: string | undefined; code: string; level: "info" | "warn"; text: string })
  /** Nothing heard from any client for a while (the whole link, not one machine). */
  | (Base & { type: "link.quiet"; seconds: number; text: string });

export type EventType = NetbootEvent["type"];
type Without<T, K extends keyof never> = T extends unknown ? Omit<T, K> : never;
/** An event as a server hands it in: the bus stamps the time. */
export type EventInput = Without<NetbootEvent, "time">;

export type Listener = (e: NetbootEvent) => void;

export class EventBus {
  readonly #listeners = new Set<Listener>();

  emit(e: EventInput): void {
    const event = { ...e, time: new Date().toISOString() } as NetbootEvent;
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // An observer's failure is its own: the servers go on.
      }
    }
  }

  /** Returns the unsubscribe function. */
  subscribe(l: Listener): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }
}
