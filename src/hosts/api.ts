/**
 * The HTTP API beside the boot files, one route per line:
 *
 *   GET  /                                  the status page (ui/status.html)
 *   GET  /metrics                           Prometheus text format 0.0.4
 *   GET  /api/status                        mode, interface, images, BSDP, counts by phase, recent warnings
 *   GET  /api/hosts                         every machine seen or listed (no secrets, no tokens)
 *   GET  /api/hosts/<mac>                   one machine, with its last events
 *   GET  /api/events                        the event bus live, as Server-Sent Events (browsers, curl -N)
 *   GET|POST /api/hosts/<mac>/done?token=   the kickstart's %post: the install finished
 *   GET|POST /api/hosts/<mac>/failed?token= it failed; a POST body (the installer's log) is kept
 *
 * A wrong or missing token is a 403. done and failed answer 200 once the store has them durably (a
 * store that cannot be written: 503, and the write is retried). Written against the runtime-neutral HTTP
 * app (http/handler.ts): handlers return responses as values.
 */
import { timingSafeEqual } from "node:crypto";
import type { ClientHint } from "../boot/files.ts";
import { LIMITS } from "../config.ts";
import { errorMessage } from "../errors.ts";
import { PHASES, type EventBus, type NetbootEvent } from "../events.ts";
import { textResponse, type HttpRequest, type HttpResponse } from "../http/handler.ts";
import type { Logger, Warning } from "../log.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import type { HintWatcher } from "./explain.ts";
import { Metrics } from "./metrics.ts";
import type { HostViews } from "./view.ts";

/** What the server is doing, for the status page and /api/status. */
export interface StatusInfo {
  mode: string;
  iface: string | undefined;
  httpBase: string;
  images: Array<{ name: string; title: string; source: string; bootBytes: number | undefined }>;
  bsdp: boolean;
  tftp: boolean;
  secureBoot: boolean;
  /** Where the hosts' state is kept (a path, or the database URL without its password). */
  store: string;
}

export interface HostsApiOptions {
  views: HostViews;
  bus: EventBus;
  log: Logger;
  status?: () => StatusInfo;
  hints?: HintWatcher;
  warnings?: readonly Warning[];
  /** The status page, served at "/". */
  page?: (req: HttpRequest) => HttpResponse;
}

type Handler = (req: HttpRequest, params: { mac?: Mac }) => HttpResponse | Promise<HttpResponse>;
interface Route {
  methods: readonly string[];
  /** Path segments; ":mac" matches a MAC (colons or dashes). */
  path: readonly string[];
  handle: Handler;
}

export function hostsApi(opts: HostsApiOptions): (parts: readonly string[], req: HttpRequest, client: ClientHint) => Promise<HttpResponse | undefined> {
  const metrics = new Metrics(opts.bus, opts.views);
  const started = new Date().toISOString();
  const { views } = opts;
  const store = views.store;
  const read = ["GET", "HEAD"];
  const known = (mac: Mac | undefined) => mac !== undefined && views.get(mac) !== undefined;

  /**
   * done and failed: only with the host's token. A host has one once its kickstart could carry it (every
   * listed host; with --allow-any, any host kickstarted), and keeps it when it leaves the lab file.
   */
  const callback = (what: "done" | "failed" | "firstboot"): Handler => async (req, { mac }) => {
    const token = new URL(req.target, "http://netboot.invalid").searchParams.get("token");
    if (!mac || !tokenMatches(store.get(mac)?.token, token)) {
      opts.log.warn(`${req.remoteAddress ?? "?"}: ${what} for ${mac ?? "?"} refused: ${token ? "wrong token" : "no token"}`);
      return { ...json(req, 403, { error: "wrong or missing token" }), mac };
    }
    try {
      const verify = store.book.lookup(mac)?.verify ?? "none";
      if (what === "done" && verify === "none") {
        await store.done(mac);
        opts.log.info(`${mac}: install done (from ${req.remoteAddress ?? "?"})`);
      } else if (what === "done") {
        // "done" waits for the installed system (drive/verify.ts probes it, or its %firstboot calls).
        await store.installed(mac);
        opts.log.info(`${mac}: installed (from ${req.remoteAddress ?? "?"}); done when the installed ESXi ${verify === "https" ? "answers on HTTPS" : "calls firstboot_url"}`);
      } else if (what === "firstboot") {
        const phase = store.get(mac)?.phase;
        if (phase !== "installed" && phase !== "done") return { ...json(req, 409, { error: `not installed yet (phase ${phase ?? "none"})` }), mac };
        if (phase === "installed") {
          await store.done(mac);
          opts.bus.emit({ type: "host.verified", mac, hostname: store.book.lookup(mac)?.hostname, how: "firstboot", build: undefined });
          opts.log.info(`${mac}: the installed system called firstboot_url (from ${req.remoteAddress ?? "?"}): done`);
        }
      } else {
        const body = req.method === "POST" && req.body ? await req.body(LIMITS.hosts.maxFailureLog) : new Uint8Array(0);
        const reason = new TextDecoder().decode(body).trim().split("\n").at(-1)?.slice(0, 200) || "the kickstart called failed_url";
        await store.failed(mac, reason, body);
        opts.log.warn(`${mac}: install failed: ${reason}`);
      }
    } catch (err) {
      // Kept in memory and retried; the installer hears it did not land yet.
      return { ...json(req, 503, { error: `host store unavailable: ${errorMessage(err)}` }), mac };
    }
    return { ...json(req, 200, { ok: true }), mac };
  };

  const routes: Route[] = [
    { methods: read, path: ["metrics"], handle: (req) => textResponse(req, 200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8") },
    { methods: read, path: ["api", "hosts"], handle: (req) => json(req, 200, { hosts: views.rows() }) },
    { methods: read, path: ["api", "status"], handle: (req) => json(req, 200, statusView(opts, started)) },
    { methods: read, path: ["api", "events"], handle: (req) => eventStream(req, opts.bus) },
    {
      methods: read,
      path: ["api", "hosts", ":mac"],
      handle: (req, { mac }) => (known(mac) ? json(req, 200, { ...views.row(mac!), events: views.get(mac!)!.recent.map((e) => ({ time: new Date(e.time).toISOString(), text: e.text })) }) : json(req, 404, { error: "no such host (not listed, not seen)" })),
    },
    { methods: ["GET", "POST"], path: ["api", "hosts", ":mac", "done"], handle: callback("done") },
    { methods: ["GET", "POST"], path: ["api", "hosts", ":mac", "failed"], handle: callback("failed") },
    { methods: ["GET", "POST"], path: ["api", "hosts", ":mac", "firstboot"], handle: callback("firstboot") },
  ];

  return async (parts, req) => {
    if (parts.length === 0 && opts.page && read.includes(req.method)) return opts.page(req);
    if (parts[0] !== "api" && parts[0] !== "metrics") return undefined;
    for (const r of routes) {
      const params = match(r.path, parts);
      if (!params) continue;
      if (!r.methods.includes(req.method)) return json(req, 405, { error: `${r.methods.filter((m) => m !== "HEAD").join(" or ")} only` });
      if (params.mac === null) return json(req, 404, { error: "no such host" });
      return r.handle(req, { mac: params.mac });
    }
    return json(req, 404, { error: "no such API" });
  };
}

/** The route's segments against the request's; a ":mac" segment that is no MAC gives mac null. */
function match(path: readonly string[], parts: readonly string[]): { mac?: Mac | null } | undefined {
  if (path.length !== parts.length) return undefined;
  const out: { mac?: Mac | null } = {};
  for (let i = 0; i < path.length; i++) {
    if (path[i] === ":mac") out.mac = tryParseMac(parts[i]!.replaceAll("-", ":")) ?? null;
    else if (path[i] !== parts[i]) return undefined;
  }
  return out;
}

function tokenMatches(want: string | undefined, got: string | null): boolean {
  if (!want || !got || got.length !== want.length) return false;
  return timingSafeEqual(Buffer.from(want), Buffer.from(got));
}

function statusView(opts: HostsApiOptions, started: string) {
  const counts: Record<string, number> = { seen: 0 };
  for (const p of PHASES) counts[p] = 0;
  for (const s of opts.views.all()) {
    if (s.phase) counts[s.phase] = (counts[s.phase] ?? 0) + 1;
    else counts.seen! += 1;
  }
  const st = opts.status?.();
  const book = opts.views.store.book;
  return {
    started_at: started,
    mode: st?.mode ?? null,
    interface: st?.iface ?? null,
    http: st?.httpBase ?? null,
    tftp: st?.tftp ?? null,
    bsdp: st?.bsdp ?? null,
    secure_boot: st?.secureBoot ?? null,
    store: st?.store ?? null,
    images: (st?.images ?? []).map((i) => ({ name: i.name, title: i.title, source: i.source, boot_bytes: i.bootBytes ?? null })),
    hosts: counts,
    listed: book.hosts.length,
    unlisted: book.unlisted,
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
              }, LIMITS.api.heartbeatMs);
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
