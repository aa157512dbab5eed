/**
 * The HTTP API beside the boot files:
 *
 *   GET  /api/hosts                         every machine seen or listed (no secrets, no tokens)
 *   GET|POST /api/hosts/<mac>/done?token=   the kickstart's %post: the install finished
 *   POST /api/hosts/<mac>/failed?token=     it failed; the body (the installer's log) is kept
 *   GET  /metrics                           Prometheus text format 0.0.4
 *
 * A wrong or missing token is a 403. Written against the runtime-neutral HTTP app (http/handler.ts).
 */
import type { ClientHint } from "../boot/files.ts";
import type { EventBus } from "../events.ts";
import { textResponse, type HttpRequest, type HttpResponse } from "../http/handler.ts";
import type { Logger } from "../log.ts";
import { tryParseMac } from "../wire/mac.ts";
import { Metrics } from "./metrics.ts";
import type { HostRegistry } from "./registry.ts";

/** The installer's log kept from failed_url, at most. */
const MAX_LOG = 1024 * 1024;

export function hostsApi(opts: { hosts: HostRegistry; bus: EventBus; log: Logger }): (parts: readonly string[], req: HttpRequest, client: ClientHint) => Promise<HttpResponse | undefined> {
  const metrics = new Metrics(opts.bus, opts.hosts);
  return async (parts, req) => {
    if (parts.length === 1 && parts[0] === "metrics") {
      if (req.method !== "GET" && req.method !== "HEAD") return json(req, 405, { error: "GET only" });
      return textResponse(req, 200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (parts[0] !== "api") return undefined;
    if (parts.length === 2 && parts[1] === "hosts") return json(req, 200, { hosts: opts.hosts.all().map((s) => hostView(opts.hosts, s.mac)) });
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
  const s = hosts.get(mac as never)!;
  const e = hosts.book.lookup(mac as never);
  const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
  return {
    mac: s.mac,
    listed: s.listed,
    hostname: e?.hostname ?? null,
    image: e?.image ?? null,
    mode: e?.mode ?? null,
    phase: s.phase ?? null,
    ip: s.ip ?? e?.ip ?? null,
    firmware: s.firmware ?? null,
    bytes: s.bytes,
    last_seen: iso(s.lastSeen),
    last_event: s.lastEvent ?? null,
    started_at: iso(s.startedAt),
    done_at: iso(s.doneAt),
    failed_at: iso(s.failedAt),
    failure: s.failure ?? null,
    answered: s.answered ?? null,
  };
}

function json(req: HttpRequest, status: number, value: unknown): HttpResponse {
  return textResponse(req, status, JSON.stringify(value) + "\n", "application/json");
}
