/**
 * One event bus every server emits into, and the one typed union of what it carries. Each fact is set by
 * the code where it arises (the DHCP server knows the answer's message type, the boot namespace the kind
 * of file it resolved, the TFTP engine whether a refusal was a size query); observers derive phases,
 * metrics labels and hints from these fields, never from display text (hosts/describe.ts makes the prose,
 * in one place). Observers: the host tracker (phases), the view model (the table, the status page), the
 * NDJSON writer (--json), the metrics, the event stream of the status page.
 *
 * Every event has `type` and `time` (ISO 8601), `mac` where known, and `ip` only where the event shows the
 * host's own address (its lease, or a request from an address known to be that MAC): a request that names
 * a MAC in its path and comes from elsewhere carries the requester in `client`, never as the host's `ip`,
 * and `elsewhere` when that address is known to be another machine's (it then moves nothing of the host).
 * Secrets never go in: an event names files and hosts, never a kickstart's contents or a token.
 */
import type { FileKind } from "./boot/files.ts";
import type { Decline, Firmware } from "./boot/types.ts";
import type { Logger } from "./log.ts";
import type { Mac } from "./wire/mac.ts";

/** The phases of one install, in order (hosts/tracker.ts moves a host through them). */
export const PHASES = ["offered", "loader", "bootcfg", "modules", "kickstart", "installing", "installed", "done", "failed"] as const;
export type Phase = (typeof PHASES)[number];

/** What a DHCP answer of ours was (its option 53). */
export type DhcpAnswerType = "OFFER" | "ACK" | "NAK";
/** What a BSDP answer of ours was. */
export type BsdpAnswerType = "ACK[LIST]" | "ACK[SELECT]" | "ACK[FAILED]" | "OFFER";
/** How a TFTP transfer ended. */
export type TransferOutcome = "sent" | "failed" | "refused" | "rejected";
/** What the boot policy said to the machine (boot/types.ts BootDecision's action). */
export type DecisionAction = "boot" | "local" | "ignore";

interface Base {
  time: string;
  mac?: Mac | undefined;
  ip?: string | undefined;
  /** Asked in the host's name (its MAC in the path) from an address known to be another machine's. */
  elsewhere?: true | undefined;
}

export type NetbootEvent =
  /**
   * A DHCP (or proxyDHCP) request and what became of it: `answer` our reply's type, `file` the boot file
   * it names, `decision` and `reason` what the boot policy said (a denied host in server mode still gets
   * an address: answer OFFER, decision ignore), `declined` why it got no boot answer (a code), `ignored`
   * why there was no answer at all.
   */
  | (Base & {
      type: "dhcp.request";
      message: string;
      port: 67 | 4011;
      relay: string | undefined;
      answer: DhcpAnswerType | undefined;
      file: string | undefined;
      ignored: string | undefined;
      firmware: Firmware | undefined;
      decision: DecisionAction | undefined;
      declined: Decline | undefined;
      reason: string | undefined;
    })
  /** An Apple BSDP INFORM[LIST|SELECT] or a Mac's DISCOVER, and the answer. */
  | (Base & { type: "bsdp.request"; message: string; answer: BsdpAnswerType | undefined; file: string | undefined; ignored: string | undefined })
  /** `client` is "ip:port": one machine may run several transfers. */
  | (Base & { type: "tftp.start"; client: string; file: string; kind: FileKind | undefined; size: number; blksize: number; windowsize: number })
  /** Bytes acknowledged so far by a transfer still running (about once a second). */
  | (Base & { type: "tftp.progress"; client: string; file: string; kind: FileKind | undefined; bytes: number; size: number })
  /** `sizeProbe`: the client ended after the OACK to learn the size (tsize), as edk2 and curl do first. */
  | (Base & { type: "tftp.end"; client: string; file: string; kind: FileKind | undefined; outcome: TransferOutcome; sizeProbe: boolean; bytes: number; seconds: number; retransmits: number; reason: string | undefined })
  | (Base & { type: "http.start"; client: string; method: string; path: string })
  /** `note`: why a request was refused or missed (404, 403), in words. */
  | (Base & { type: "http.end"; client: string; method: string; path: string; status: number; bytes: number; kind: FileKind | undefined; note?: string | undefined; aborted?: boolean | undefined })
  /** The client went away before the end of an answer already reported by http.end (Bun's edge reports at the start; how much was sent it does not say). */
  | (Base & { type: "http.abort"; client: string; method: string; path: string; bytes: number; kind: FileKind | undefined })
  /** A boot.cfg went to a host, over HTTP or TFTP (a BIOS host reads its own inside its disc image). */
  | (Base & { type: "bootcfg.served"; image: string; via: "http" | "tftp" })
  /** A kickstart went to a host; `refused` when it was asked for and not given (and why); `client` who asked. */
  | (Base & { type: "ks.served"; image: string; client: string | undefined; refused: string | undefined })
  /** `restart`: a new install starts here (the last one's progress is forgotten). */
  | (Base & { type: "host.phase"; phase: Phase; previous: Phase | undefined; restart: boolean; hostname: string | undefined })
  | (Base & { type: "host.done"; hostname: string | undefined; seconds: number | undefined })
  | (Base & { type: "host.failed"; hostname: string | undefined; reason: string })
  /** The host is armed again (`netboot hosts rearm`): its next network boot installs. */
  | (Base & { type: "host.armed"; hostname: string | undefined })
  /** What a host's stall or error means, in words a bench user acts on (hosts/explain.ts); `text` "" when it cleared. */
  | (Base & { type: "host.hint"; hostname: string | undefined; code: string; level: "info" | "warn"; text: string })
  /** Nothing heard from any client for a while (the whole link, not one machine). */
  | (Base & { type: "link.quiet"; seconds: number; text: string })
  /** The installed system answered as "done" asks (verify: https at `build`, or its %firstboot's call). */
  | (Base & { type: "host.verified"; hostname: string | undefined; how: "https" | "firstboot"; build: string | undefined })
  /** netboot drove a machine's power through its BMC (`bmc` where, never who); `attempt` 1 first, then each retry. */
  | (Base & { type: "power.on" | "power.off" | "power.cycle"; hostname: string | undefined; bmc: string; attempt: number })
  /** The next boot set once and read back: `kept` in the BMC's words; `partial` what it did not keep. */
  | (Base & { type: "bmc.boot"; hostname: string | undefined; bmc: string; target: string; kept: string | undefined; partial: string | undefined })
  /** Virtual media inserted (the machine's own ISO by URL) or ejected. */
  | (Base & { type: "bmc.media"; hostname: string | undefined; bmc: string; action: "insert" | "eject"; image: string | undefined })
  /** A BMC call that failed: what was asked, and what the BMC answered (never a credential). */
  | (Base & { type: "bmc.error"; hostname: string | undefined; bmc: string; what: string; answer: string });

/**
 * Who a request is about (`mac`: the one its path names, else the one behind its address) and what it
 * shows of that host: its `ip` only when the address is known to be that MAC's or the path names none;
 * `elsewhere` when the address is known to be another machine's. HTTP and TFTP both ask this.
 */
export function requester(pathMac: Mac | undefined, addressMac: Mac | undefined, address: string | undefined): { mac: Mac | undefined; ip: string | undefined; elsewhere: true | undefined } {
  const ours = !pathMac || addressMac === pathMac;
  return { mac: pathMac ?? addressMac, ip: ours ? address : undefined, elsewhere: pathMac && addressMac && addressMac !== pathMac ? true : undefined };
}

export type EventType = NetbootEvent["type"];
type Without<T, K extends keyof never> = T extends unknown ? Omit<T, K> : never;
/** An event as a server hands it in: the bus stamps the time. */
export type EventInput = Without<NetbootEvent, "time">;
/** Where a server puts its events (the bus's emit). */
export type EventSink = (e: EventInput) => void;

export type Listener = (e: NetbootEvent) => void;

export class EventBus {
  readonly #listeners = new Set<Listener>();
  readonly #log: Logger | undefined;
  /** Event types whose listener failure was already logged (once each: a broken observer must not flood). */
  readonly #failed = new Set<string>();

  /** `log`: where a listener's failure is said (once per event type); the servers go on either way. */
  constructor(log?: Logger) {
    this.#log = log;
  }

  readonly emit: EventSink = (e) => {
    const event = { ...e, time: new Date().toISOString() } as NetbootEvent;
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (err) {
        if (this.#failed.has(event.type)) continue;
        this.#failed.add(event.type);
        const where = err instanceof Error ? err.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim() : undefined;
        this.#log?.warn(`an observer of ${event.type} events failed (said once per type): ${err instanceof Error ? err.message : String(err)}${where ? ` (${where})` : ""}`);
      }
    }
  };

  /** Returns the unsubscribe function. */
  subscribe(l: Listener): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }
}
