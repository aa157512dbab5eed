/**
 * The Redfish driver over fetch. It follows the service's own links from the service root (DSP0266 §9:
 * clients "shall not" build URIs but follow @odata.id): /redfish/v1 → Systems → the system, its Reset
 * action's target, and VirtualMedia under the system or its manager. It logs in with a session
 * (SessionService, X-Auth-Token, deleted at close) and falls back to basic authentication where the
 * service has no sessions. PATCH carries If-Match when the resource has an ETag (some BMCs refuse it
 * otherwise). Every request has a timeout and is retried with back-off on a network error or a 5xx.
 *
 * Boot override (DMTF ComputerSystem schema, Boot): BootSourceOverrideTarget Pxe, UefiHttp (with
 * HttpBootUri), Cd or Hdd; BootSourceOverrideEnabled Once; BootSourceOverrideMode UEFI.
 */
import { readFileSync } from "node:fs";
import { LIMITS } from "../config.ts";
import { BmcError, ConfigError } from "../errors.ts";
import { describeNetError, tlsFetchOptions, type TlsSettings } from "../net/fetch.ts";
import type { BootSetting, BootTarget, Driver, PowerOp, PowerState } from "./driver.ts";

export interface RedfishTarget {
  /** https://ADDR[:PORT] (http:// only for a test service). */
  url: string;
  user: string;
  password: string;
  /** A CA bundle (PEM) the BMC's certificate is checked against; insecure skips the check. */
  ca?: string | undefined;
  insecure?: boolean | undefined;
  /** Which system, where the service has several (its Id or its @odata.id). */
  system?: string | undefined;
}

const TARGET_OF: Record<BootTarget, string> = { pxe: "Pxe", http: "UefiHttp", cd: "Cd", disk: "Hdd" };
const NAME_OF: Record<string, string> = { Pxe: "pxe", UefiHttp: "http", Cd: "cd", Hdd: "disk", None: "none" };

type Json = Record<string, unknown>;
const link = (o: unknown): string | undefined => (o && typeof o === "object" && typeof (o as Json)["@odata.id"] === "string" ? ((o as Json)["@odata.id"] as string) : undefined);

export class RedfishDriver implements Driver {
  readonly kind = "redfish" as const;
  readonly name: string;
  roundTrips = 0;
  lastAnswer = "";
  readonly #base: string;
  readonly #tls: TlsSettings;
  #token: string | undefined;
  #sessionUri: string | undefined;
  #basic = false;
  #system: string | undefined;
  #fetchTls: ReturnType<typeof tlsFetchOptions> | undefined;

  private readonly target: RedfishTarget;
  constructor(target: RedfishTarget) {
    this.target = target;
    const u = new URL(target.url);
    this.#base = `${u.protocol}//${u.host}`;
    this.name = `Redfish ${this.#base}`;
    let ca: string | undefined;
    if (target.ca) {
      try {
        ca = readFileSync(target.ca, "utf8");
      } catch (err) {
        throw new ConfigError("E_BMC_CA", `${this.name}: ca ${target.ca}: ${(err as Error).message}`);
      }
    }
    this.#tls = { ...(ca ? { ca } : {}), rejectUnauthorized: !target.insecure };
  }

  /**
   * One request: the timeout, retries with back-off on network errors and 5xx, the answer's JSON; a 4xx
   * or 3xx is one BmcError. An action (a POST that does something: Reset, InsertMedia) is not sent again
   * once it may have arrived (a timeout, a 5xx): a power cycle must not happen twice. A session that
   * expired during a long install (401 with a token) is logged into again, once.
   */
  async #call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, relogin = true): Promise<{ status: number; json: Json; headers: Headers }> {
    const url = new URL(path, this.#base).toString();
    const action = method === "POST" && /\/Actions\//.test(path);
    let wait: number = LIMITS.bmc.backoffMs;
    let last = "";
    for (let attempt = 1; attempt <= LIMITS.bmc.redfishTries; attempt++) {
      this.roundTrips++;
      try {
        const res = await fetch(url, {
          method,
          headers: { accept: "application/json", ...(body !== undefined ? { "content-type": "application/json" } : {}), ...this.#auth(), ...headers },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(LIMITS.bmc.redfishTimeoutMs),
          redirect: "manual",
          ...(await this.#tlsOption()),
        } as RequestInit);
        const text = await res.text();
        let json: Json = {};
        try {
          json = text ? (JSON.parse(text) as Json) : {};
        } catch {
          json = {};
        }
        if (res.status === 401 && this.#token && relogin) {
          this.#token = undefined;
          this.#sessionUri = undefined;
          this.#system = undefined;
          await this.#systemUri();
          return this.#call(method, path, body, headers, false);
        }
        if (res.status >= 500 && attempt < LIMITS.bmc.redfishTries && !action) {
          last = `${method} ${path}: ${res.status} ${extendedInfo(json) ?? res.statusText}`;
          this.lastAnswer = last;
          await sleep(wait);
          wait *= 2;
          continue;
        }
        this.lastAnswer = `${method} ${path}: ${res.status}${extendedInfo(json) ? ` ${extendedInfo(json)}` : ""}`;
        if (res.status >= 400) throw new BmcError(res.status === 401 ? "E_BMC_AUTH" : "E_BMC_REFUSED", `${this.name}: ${this.lastAnswer}`, this.lastAnswer);
        if (res.status >= 300) throw new BmcError("E_BMC_REDIRECT", `${this.name}: ${this.lastAnswer}: a redirect to ${res.headers.get("location") ?? "?"} (give bmc.redfish the address it redirects to)`, this.lastAnswer);
        return { status: res.status, json, headers: res.headers };
      } catch (err) {
        if (err instanceof BmcError) throw err;
        last = `${method} ${path}: ${describe(err)}`;
        this.lastAnswer = last;
        // A certificate that is not trusted stays so: no retry.
        if (/certificate|self.signed|CERT_|unable to verify/i.test(describe(err))) throw new BmcError("E_BMC_TLS", `${this.name}: ${last} (give bmc.ca: the BMC's CA, or insecure: true)`, last);
        // An action that may have arrived is not sent again (only a refused connection proves it did not).
        if (action && !/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH/.test(describe(err))) throw new BmcError("E_BMC_UNREACHABLE", `${this.name}: ${last} (not sent again: it may have been done)`, last);
        if (attempt < LIMITS.bmc.redfishTries) {
          await sleep(wait);
          wait *= 2;
        }
      }
    }
    throw new BmcError("E_BMC_UNREACHABLE", `${this.name}: ${last} (${LIMITS.bmc.redfishTries} tries)`, last);
  }

  #auth(): Record<string, string> {
    if (this.#token) return { "x-auth-token": this.#token };
    if (this.#basic) return { authorization: `Basic ${Buffer.from(`${this.target.user}:${this.target.password}`).toString("base64")}` };
    return {};
  }

  /** The fetch options for this BMC's TLS (made once; net/fetch.ts). */
  #tlsOption(): Promise<Record<string, unknown>> {
    this.#fetchTls ??= tlsFetchOptions(this.#base, this.#tls);
    return this.#fetchTls.then((t) => t.options);
  }

  /** Logs in (once) and finds the system (once). */
  async #systemUri(): Promise<string> {
    if (this.#system) return this.#system;
    const root = (await this.#call("GET", "/redfish/v1/")).json;
    const sessions = link((root.Links as Json | undefined)?.Sessions) ?? (link(root.SessionService) ? `${link(root.SessionService)!.replace(/\/$/, "")}/Sessions` : undefined);
    if (sessions) {
      try {
        const r = await this.#call("POST", sessions, { UserName: this.target.user, Password: this.target.password });
        this.#token = r.headers.get("x-auth-token") ?? undefined;
        this.#sessionUri = r.headers.get("location") ?? link(r.json) ?? undefined;
      } catch (err) {
        if ((err as BmcError).code === "E_BMC_AUTH") throw new BmcError("E_BMC_AUTH", `${this.name}: the BMC refused user ${this.target.user} (401 at ${sessions})`, this.lastAnswer);
        // No sessions here: basic authentication.
      }
    }
    if (!this.#token) this.#basic = true;
    const systems = link(root.Systems);
    if (!systems) throw new BmcError("E_BMC_ANSWER", `${this.name}: the service root links no Systems`);
    const members = (((await this.#call("GET", systems)).json.Members as unknown[]) ?? []).map(link).filter((m): m is string => !!m);
    const want = this.target.system;
    const pick = want ? members.find((m) => m === want || m.replace(/\/$/, "").endsWith(`/${want}`)) : members.length === 1 ? members[0] : undefined;
    if (!pick) {
      throw new BmcError("E_BMC_SYSTEM", want ? `${this.name}: no system ${want} (it has ${members.join(", ") || "none"})` : `${this.name}: ${members.length} systems (${members.join(", ") || "none"}); say which with bmc.system:`);
    }
    this.#system = pick;
    return pick;
  }

  async #systemJson(): Promise<{ uri: string; json: Json; etag: string | undefined }> {
    const uri = await this.#systemUri();
    const r = await this.#call("GET", uri);
    return { uri, json: r.json, etag: r.headers.get("etag") ?? (typeof r.json["@odata.etag"] === "string" ? (r.json["@odata.etag"] as string) : undefined) };
  }

  async powerState(): Promise<PowerState> {
    const s = (await this.#systemJson()).json.PowerState;
    return s === "On" ? "on" : s === "Off" ? "off" : "unknown";
  }

  async power(op: PowerOp): Promise<void> {
    const { uri, json } = await this.#systemJson();
    const action = (json.Actions as Json | undefined)?.["#ComputerSystem.Reset"] as Json | undefined;
    const target = typeof action?.target === "string" ? action.target : `${uri.replace(/\/$/, "")}/Actions/ComputerSystem.Reset`;
    const allowed = Array.isArray(action?.["ResetType@Redfish.AllowableValues"]) ? (action!["ResetType@Redfish.AllowableValues"] as string[]) : undefined;
    const pick = (...types: string[]) => types.find((t) => !allowed || allowed.includes(t)) ?? types[0]!;
    const on = json.PowerState === "On";
    const type = op === "on" ? (on ? undefined : pick("On", "ForceOn")) : op === "off" ? (on ? pick("ForceOff", "GracefulShutdown") : undefined) : on ? pick("PowerCycle", "ForceRestart", "GracefulRestart") : pick("On", "ForceOn");
    if (type) await this.#call("POST", target, { ResetType: type });
  }

  async setBootOnce(target: BootTarget, opts: { uri?: string | undefined } = {}): Promise<BootSetting> {
    const { uri, etag } = await this.#systemJson();
    const boot: Json = { BootSourceOverrideTarget: TARGET_OF[target], BootSourceOverrideEnabled: "Once", BootSourceOverrideMode: "UEFI" };
    if (target === "http" && opts.uri) boot.HttpBootUri = opts.uri;
    await this.#call("PATCH", uri, { Boot: boot }, etag ? { "if-match": etag } : {});
    return this.readBoot();
  }

  async readBoot(): Promise<BootSetting> {
    const boot = ((await this.#systemJson()).json.Boot ?? {}) as Json;
    const t = String(boot.BootSourceOverrideTarget ?? "None");
    const enabled = boot.BootSourceOverrideEnabled;
    const mode = boot.BootSourceOverrideMode;
    return {
      target: NAME_OF[t] ?? t,
      once: enabled === "Once" ? true : enabled === "Continuous" ? false : undefined,
      uefi: mode === "UEFI" ? true : mode === "Legacy" ? false : undefined,
      uri: typeof boot.HttpBootUri === "string" ? boot.HttpBootUri : undefined,
      raw: `${t}, ${String(enabled ?? "-")}, ${String(mode ?? "-")}${typeof boot.HttpBootUri === "string" && boot.HttpBootUri ? `, ${boot.HttpBootUri}` : ""}`,
    };
  }

  async clearBoot(): Promise<void> {
    const { uri, etag } = await this.#systemJson();
    await this.#call("PATCH", uri, { Boot: { BootSourceOverrideEnabled: "Disabled" } }, etag ? { "if-match": etag } : {});
  }

  /** The virtual CD: under the system (Redfish 2021.2+) or under its manager. */
  async #cd(): Promise<{ uri: string; json: Json }> {
    const { json } = await this.#systemJson();
    const candidates: string[] = [];
    const own = link(json.VirtualMedia);
    if (own) candidates.push(own);
    for (const m of ((json.Links as Json | undefined)?.ManagedBy as unknown[] | undefined) ?? []) {
      const mgr = link(m);
      if (!mgr) continue;
      const vm = link((await this.#call("GET", mgr)).json.VirtualMedia);
      if (vm) candidates.push(vm);
    }
    for (const c of candidates) {
      for (const m of (((await this.#call("GET", c)).json.Members as unknown[]) ?? []).map(link)) {
        if (!m) continue;
        const media = (await this.#call("GET", m)).json;
        const types = (media.MediaTypes as string[] | undefined) ?? [];
        if (types.includes("CD") || types.includes("DVD")) return { uri: m, json: media };
      }
    }
    throw new BmcError("E_BMC_MEDIA", `${this.name}: no virtual CD under the system or its manager`);
  }

  async insertMedia(url: string): Promise<void> {
    const { uri, json } = await this.#cd();
    if (json.Inserted === true) await this.#eject(uri, json);
    const action = (json.Actions as Json | undefined)?.["#VirtualMedia.InsertMedia"] as Json | undefined;
    const target = typeof action?.target === "string" ? action.target : `${uri.replace(/\/$/, "")}/Actions/VirtualMedia.InsertMedia`;
    await this.#call("POST", target, { Image: url, Inserted: true, WriteProtected: true });
  }

  async ejectMedia(): Promise<void> {
    const { uri, json } = await this.#cd();
    if (json.Inserted === true || json.Image) await this.#eject(uri, json);
  }

  async #eject(uri: string, json: Json): Promise<void> {
    const action = (json.Actions as Json | undefined)?.["#VirtualMedia.EjectMedia"] as Json | undefined;
    const target = typeof action?.target === "string" ? action.target : `${uri.replace(/\/$/, "")}/Actions/VirtualMedia.EjectMedia`;
    await this.#call("POST", target, {});
  }

  /** Deletes the session (a BMC has few; leaving them open locks others out until they time out). */
  async close(): Promise<void> {
    if (this.#sessionUri) {
      await this.#call("DELETE", this.#sessionUri, undefined, {}, false).catch(() => {});
      this.#token = undefined;
      this.#sessionUri = undefined;
    }
    this.#system = undefined;
    const t = this.#fetchTls;
    this.#fetchTls = undefined;
    await (await t)?.close();
  }
}

/** A Redfish error's first message (DSP0266 §9.6: error.@Message.ExtendedInfo). */
function extendedInfo(json: Json): string | undefined {
  const e = json.error as Json | undefined;
  const info = (e?.["@Message.ExtendedInfo"] as Json[] | undefined)?.[0];
  const msg = info?.Message ?? e?.message;
  return typeof msg === "string" ? msg : undefined;
}

function describe(err: unknown): string {
  return (err as { name?: string })?.name === "TimeoutError" ? `no answer within ${LIMITS.bmc.redfishTimeoutMs / 1000} s` : describeNetError(err);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
