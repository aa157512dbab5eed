/**
 * The HTTP API beside the boot files:
 *
 *   GET  /                                  the status page (ui/status.html)
 *   GET  /api/status                        mode, interface, images, BSDP, counts by phase, recent warnings
 *   GET  /api/hosts                         every machine seen or listed (no secrets, no tokens)
 *   GET  /api/hosts/<mac>                   one machine, with its last events
 *   GET  /api/events                        the event bus live, as Server-Sent Events (browsers, curl -N)
 *   GET|POST /api/hosts/<mac>/done?token=   the kickstart's %post: the install finished
 *   POST /api/hosts/<mac>/failed?token=     it failed; the body (the installer's log) is kept
 *   GET  /metrics                           Prometheus text format 0.0.4
 *
 * A wrong or missing token is a 403. Written against the runtime-neutral HTTP app (http/handler.ts).
 */
import type { ClientHint } from "../boot/files.ts";
import type { EventBus, NetbootEvent } from "../events.ts";
import { textResponse, type HttpRequest, type HttpResponse } from "../http/handler.ts";
import type { Logger, Warning } from "../log.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import type { HintWatcher } from "./explain.ts";
import { Metrics } from "./metrics.ts";
import { PHASES, type HostRegistry } from "./registry.ts";

/** The installer's log kept from failed_url, at most. */
const MAX_LOG = 1024 * 1024;
/** An idle event stream gets a comment this often (proxies and Bun's idle timer keep it open). */
const HEARTBEAT_MS = 15_000;

/** What the server is doing, for the status page and /api/status. */
export interface StatusInfo {
  mode: string;
  iface: string | undefined;
  httpBase: string;
  images: Array<{ name: string; title: string; source: string; bootBytes: number | undefined }>;
  bsdp: boolean;
  tftp: boolean;
  secureBoot: boolean;
}

export interface HostsApiOptions {
  hosts: HostRegistry;
  bus: EventBus;
  log: Logger;
  status?: () => StatusInfo;
  hints?: HintWatcher;
  warnings?: readonly Warning[];
  /** The status page, served at "/". */
  page?: (req: HttpRequest) => HttpResponse;
}

export function hostsApi(opts: HostsApiOptions): (parts: readonly string[], req: HttpRequest, client: ClientHint) => Promise<HttpResponse | undefined> {
  const metrics = new Metrics(opts.bus, opts.hosts);
  const started = new Date().toISOString();
  return async (parts, req) => {
    if (parts.length === 0 && opts.page && (req.method === "GET" || req.method === "HEAD")) return opts.page(req);
    if (parts.length === 1 && parts[0] === "metrics") {
      if (req.method !== "GET" && req.method !== "HEAD") return json(req, 405, { error: "GET only" });
      return textResponse(req, 200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (parts[0] !== "api") return undefined;
    const read = req.method === "GET" || req.method === "HEAD";
    if (parts.length === 2 && parts[1] === "hosts") return read ? json(req, 200, { hosts: opts.hosts.all().map((s) => hostView(opts.hosts, s.mac)) }) : json(req, 405, { error: "GET only" });
    if (parts.length === 2 && parts[1] === "status") return read ? json(req, 200, statusView(opts, started)) : json(req, 405, { error: "GET only" });
    if (parts.length === 2 && parts[1] === "events") return read ? eventStream(req, opts.bus) : json(req, 405, { error: "GET only" });
    if (parts.length === 3 && parts[1] === "hosts") {
      const mac = tryParseMac(parts[2]!.replaceAll("-", ":"));
      if (!mac || !opts.hosts.get(mac)) return json(req, 404, { error: "no such host (not listed, not seen)" });
      return json(req, 200, { ...hostView(opts.hosts, mac), events: opts.hosts.get(mac)!.recent.map((e) => ({ time: new Date(e.time).toISOString(), text: e.text })) });
    }
    if (parts.length === 4 && parts[1] === "hosts" && (parts[3] === "done" || parts[3] === "failed")) {
      const mac = tryParseMac(parts[2]!.replaceAll("-", ":"));
      if (!mac) return json(req, 404, { error: "no such host" });
      const token = new URL(req.target, "http://netboot.invalid").searchParams.get("token");
      if (!opts.hosts.book.lookup(mac) || !opts.hosts.checkToken(mac, token)) {
        opts.log.warn(`${req.remoteAddress ?? "?"}: ${parts[3]} for ${mac} refused: ${token ? "wrong token" : "no token"}`);
        return { ...json(req, 403, { error: "wrong or missing token" }), mac };
      }
      if (parts[3] === "done") {
        if (req.method !== "GET" && req.method !== "POST") return json(req, 405, { error: "GET or POST" });
        opts.hosts.done(mac);
        opts.log.info(`${mac}: install done (from ${req.remoteAddress ?? "?"})`);
        return { ...json(req, 200, { ok: true }), mac, what: "done" };
      }
      const body = req.method === "POST" && req.body ? await req.body(MAX_LOG) : new Uint8Array(0);
      const text = new TextDecoder().decode(body);
      const reason = text.trim().split("\n").at(-1)?.slice(0, 200) || "the kickstart called failed_url";
      opts.hosts.failed(mac, reason, body);
      opts.log.warn(`${mac}: install failed: ${reason}`);
      return { ...json(req, 200, { ok: true }), mac, what: "failed" };
    }
    return json(req, 404, { error: "no such API" });
  };
}

/** A host as /api/hosts shows it: documented field names, no variables, no tokens. */
export function hostView(hosts: HostRegistry, mac: string) {
  const s = hosts.get(mac as Mac)!;
  const e = hosts.book.lookup(mac as Mac);
  const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
  const p = hosts.progress(mac as Mac);
  return {
    mac: s.mac,
    listed: s.listed,
    hostname: e?.hostname ?? null,
    image: e?.image ?? (s.phase ? hosts.imageOf(mac as Mac) : null),
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
  };
}

function statusView(opts: HostsApiOptions, started: string) {
  const counts: Record<string, number> = { seen: 0 };
  for (const p of PHASES) counts[p] = 0;
  for (const s of opts.hosts.all()) {
    if (s.phase) counts[s.phase] = (counts[s.phase] ?? 0) + 1;
    else counts.seen! += 1;
  }
  const st = opts.status?.();
  return {
    started_at: started,
    mode: st?.mode ?? null,
    interface: st?.iface ?? null,
    http: st?.httpBase ?? null,
    tftp: st?.tftp ?? null,
    bsdp: st?.bsdp ?? null,
    secure_boot: st?.secureBoot ?? null,
    images: (st?.images ?? []).map((i) => ({ name: i.name, title: i.title, source: i.source, boot_bytes: i.bootBytes ?? null })),
    hosts: counts,
    listed: opts.hosts.book.hosts.length,
    unlisted: opts.hosts.book.unlisted,
    link_hint: opts.hints?.linkHint() ?? null,
    warnings: (opts.warnings ?? []).slice(-20).map((w) => ({ time: new Date(w.time).toISOString(), level: w.level, text: w.tag ? `[${w.tag}] ${w.msg}` : w.msg })),
  };
}

/** The bus as Server-Sent Events: one `data:` line of JSON per event (the same as --json prints). */
function eventStream(req: HttpRequest, bus: EventBus): HttpResponse {
  const enc = new TextEncoder();
  return {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no", server: "netboot" },
    body:
      req.method === "HEAD"
        ? undefined
        : {
            kind: "stream",
            open(send) {
              send(enc.encode(": netboot events\nretry: 2000\n\n"));
              let stop = () => {};
              const heartbeat = setInterval(() => {
                if (!send(enc.encode(": ping\n\n"))) stop();
              }, HEARTBEAT_MS);
              heartbeat.unref?.();
              const unsubscribe = bus.subscribe((e: NetbootEvent) => {
                if (!send(enc.encode(`data: ${JSON.stringify(e)}\n\n`))) stop();
              });
              stop = () => {
                clearInterval(heartbeat);
                unsubscribe();
              };
              return stop;
            },
          },
    path: req.target.split("?")[0]!,
    mac: undefined,
    note: undefined,
  };
}

function json(req: HttpRequest, status: number, value: unknown): HttpResponse {
  return textResponse(req, status, JSON.stringify(value) + "\n", "application/json");
}
