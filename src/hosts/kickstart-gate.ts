/**
 * Who may fetch a kickstart: the lab layer's security rule. A kickstart wipes a disk and carries secrets,
 * so `/<image>/01-<mac>/ks.cfg` goes only to that machine (the address its lease, or the neighbour table,
 * ties to its MAC) and only while it is armed (listed or --allow-any, not mode local, not done in mode
 * once). `kickstartGate` is the rule, pure; `kickstarts` serves what it allows (rendered with the host's
 * variables and its token) and says what it refuses, in the log and on the bus.
 */
import type { BootImage } from "../boot/image.ts";
import { renderTemplate } from "../boot/kickstart.ts";
import type { EventSink } from "../events.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import type { HostBook, HostEntry, KickstartSource } from "./book.ts";
import type { HostPolicy } from "./policy.ts";
import type { HostStore } from "./store/store.ts";
import { kickstartVariables, type SiteFacts } from "./variables.ts";

export interface KickstartAsk {
  /** The MAC the path names (01-<mac>/ks.cfg), else the one known for the asking address. */
  mac: Mac | undefined;
  /** The address that asks. */
  from: string | undefined;
  /** The MAC the neighbour table (DHCP, ARP) ties to that address. */
  macAtFrom: Mac | undefined;
  /** The address the named MAC holds a lease on, here. */
  leasedIp: string | undefined;
}

export type KickstartVerdict =
  | { allow: true; entry: HostEntry | undefined; source: KickstartSource; mac: Mac | undefined }
  /** `quiet`: not worth a log line or an event (a request that names no machine at all). */
  | { allow: false; refused: string; quiet?: boolean };

/** The rule. `armedWhy`: why the named host is not armed (HostPolicy.armed), undefined when it is. */
export function kickstartGate(ask: KickstartAsk, book: HostBook, armedWhy: (mac: Mac) => string | undefined): KickstartVerdict {
  const { mac, from } = ask;
  if (!mac) {
    // --allow-any: the one kickstart for whoever asks (no per-host variables: there is no host).
    if (book.unlisted === "kickstart" && book.fallback.kickstart) return { allow: true, entry: undefined, source: book.fallback.kickstart, mac: undefined };
    return { allow: false, refused: "no MAC in the path: ask for /NAME/01-<mac>/ks.cfg", quiet: true };
  }
  const why = armedWhy(mac);
  if (why) return { allow: false, refused: why };
  const entry = book.lookup(mac);
  // A listed host's kickstart goes only to the machine itself (--allow-any hands it to anyone anyway).
  if (entry && !isTheHost(ask)) return { allow: false, refused: `asked from ${from ?? "?"}, which is not ${mac}'s address` };
  const source = entry?.kickstart ?? book.fallback.kickstart;
  if (!source) return { allow: false, refused: "no kickstart for it" };
  return { allow: true, entry, source, mac };
}

/**
 * The asking address is the named host's own: its lease here when it has one (an address this server
 * handed it; the neighbour table, which anyone on the link can teach with a gratuitous ARP, is not asked
 * then), else the neighbour table says so (proxyDHCP: another server leased it).
 */
export function isTheHost(ask: KickstartAsk): boolean {
  if (ask.from === undefined || ask.mac === undefined) return false;
  return ask.leasedIp !== undefined ? ask.leasedIp === ask.from : ask.macAtFrom === ask.mac;
}

/** The asking address is known to be another machine's (its lease here is another, or ARP names another MAC). */
export function askedElsewhere(ask: KickstartAsk): boolean {
  if (ask.from === undefined || ask.mac === undefined) return false;
  return ask.leasedIp !== undefined ? ask.leasedIp !== ask.from : ask.macAtFrom !== undefined && ask.macAtFrom !== ask.mac;
}

export interface KickstartsOptions {
  store: HostStore;
  policy: HostPolicy;
  site: SiteFacts;
  macOf: (address: string) => Mac | undefined;
  leasedAddress: (mac: Mac) => string | undefined;
  events: EventSink;
  log: Logger;
}

/** The boot namespace's kickstart callback (boot/files.ts BootFilesConfig.kickstart). */
export function kickstarts(o: KickstartsOptions): (mac: Mac | undefined, image: BootImage, client: { address?: string | undefined }) => Promise<Uint8Array | { refused: string }> {
  const book = o.store.book;
  return async (mac, image, client) => {
    const from = client.address;
    const ask: KickstartAsk = { mac, from, macAtFrom: from ? o.macOf(from) : undefined, leasedIp: mac ? o.leasedAddress(mac) : undefined };
    const verdict = kickstartGate(ask, book, (m) => o.policy.armed(m).why);
    // The host's own address only when the asker is the host (a request from elsewhere names it, nothing more).
    const ip = isTheHost(ask) ? from : undefined;
    const elsewhere = askedElsewhere(ask) || undefined;
    if (!verdict.allow) {
      if (!verdict.quiet && mac) {
        o.log.warn(`${mac}: kickstart refused: ${verdict.refused}`);
        o.events({ type: "ks.served", mac, ip, elsewhere, client: from, image: image.name, refused: verdict.refused });
      }
      return { refused: verdict.refused };
    }
    const token = verdict.mac ? await o.store.token(verdict.mac) : "";
    const vars = verdict.mac
      ? kickstartVariables(verdict.entry, verdict.mac, image.name, o.site, verdict.mac ? o.leasedAddress(verdict.mac) : undefined, token)
      : { ...kickstartVariables(undefined, "" as Mac, image.name, o.site, undefined, ""), done_url: "", failed_url: "" };
    const text = renderTemplate(verdict.source.text, vars);
    if (mac) o.events({ type: "ks.served", mac, ip, elsewhere, client: from, image: image.name, refused: undefined });
    return new TextEncoder().encode(text);
  };
}
