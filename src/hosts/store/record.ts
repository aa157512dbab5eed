/**
 * What netboot knows of one MAC that must outlive a restart, and the operations that change it: one record
 * shape and one pure reducer (`applyOp`) shared by every backend, so the file store and PostgreSQL mean the
 * same by each operation (the contract tests run both). A backend persists operations or records; it never
 * interprets them on its own.
 */
import { PHASES, type Phase } from "../../events.ts";
import { tryParseMac, type Mac } from "../../wire/mac.ts";

export interface HostRecord {
  mac: Mac;
  /** The per-host secret in done_url and failed_url (made once; never shown, logged or sent in an event). */
  token: string | undefined;
  phase: Phase | undefined;
  /** When each phase of the current install was reached (ms since the epoch). */
  reached: Partial<Record<Phase, number>>;
  startedAt: number | undefined;
  doneAt: number | undefined;
  failedAt: number | undefined;
  failure: string | undefined;
  /** The installer's log (failed_url's body) is kept (HostStore.failureLog). */
  failureLog: boolean;
  /** It spoke BSDP (Mac firmware: TFTP blocks capped at 1460); `image` the id it chose in its picker. */
  bsdp: { image: number | undefined } | undefined;
  /** Why it gets VMware's signed loader by TFTP instead of iPXE (its iPXE never started: Secure Boot). */
  signedLoader: { since: number; reason: string } | undefined;
  /** When it last changed (ms), and how many changes it has had (the order watchers and instances agree on). */
  updated: number;
  rev: number;
}

export type HostOp =
  /** The token, kept only when the host has none yet (two instances minting at once agree on the first). */
  | { op: "token"; token: string }
  /** A phase reached; `restart`: a new install starts here (the previous one's times are forgotten). */
  | { op: "mark"; phase: Phase; restart?: boolean | undefined }
  | { op: "done" }
  /** The installer's %post said done; "done" waits for the installed system to answer (verify: https or firstboot). */
  | { op: "installed" }
  | { op: "failed"; reason: string; log: boolean }
  /** Armed again: its next network boot installs (`netboot hosts rearm`). */
  | { op: "rearm" }
  /** It spoke BSDP; `image` its choice in the picker (undefined: keep what it chose before; null: forget it). */
  | { op: "bsdp"; image?: number | null | undefined }
  /** It gets the signed loader from now on (a reason), or no longer (undefined). */
  | { op: "signed"; reason: string | undefined }
  /** Dropped (an unlisted MAC past the bound). */
  | { op: "forget" };

export type OpName = HostOp["op"];

export function blankRecord(mac: Mac, at: number): HostRecord {
  return { mac, token: undefined, phase: undefined, reached: {}, startedAt: undefined, doneAt: undefined, failedAt: undefined, failure: undefined, failureLog: false, bsdp: undefined, signedLoader: undefined, updated: at, rev: 0 };
}

const noInstall = { phase: undefined, reached: {}, startedAt: undefined, doneAt: undefined, failedAt: undefined, failure: undefined, failureLog: false };

/**
 * The record after `op` at time `at`; undefined when it is forgotten. The same record back (===, undefined
 * for a MAC with none) when the operation changes nothing (a Mac's choice made again, a token it has, a
 * rearm of a host that is armed): nothing to write or to tell.
 */
export function applyOp(prev: HostRecord | undefined, mac: Mac, op: HostOp, at: number): HostRecord | undefined {
  if (op.op === "forget") return undefined;
  const base = prev ?? blankRecord(mac, at);
  let next: HostRecord;
  switch (op.op) {
    case "token":
      if (base.token) return prev;
      next = { ...base, token: op.token };
      break;
    case "mark":
      // A finished install moves only when a new one starts (a late mark from another instance does not undo a done).
      if (!op.restart && (base.phase === op.phase || base.phase === "done" || base.phase === "failed")) return prev;
      next = op.restart ? { ...base, ...noInstall, startedAt: at, phase: op.phase, reached: { [op.phase]: at } } : { ...base, phase: op.phase, reached: { ...base.reached, [op.phase]: at } };
      break;
    case "done":
      next = { ...base, phase: "done", reached: { ...base.reached, done: at }, doneAt: at, failedAt: undefined, failure: undefined, failureLog: false };
      break;
    case "installed":
      if (base.phase === "installed" || base.phase === "done") return prev;
      next = { ...base, phase: "installed", reached: { ...base.reached, installed: at }, failedAt: undefined, failure: undefined, failureLog: false };
      break;
    case "failed":
      next = { ...base, phase: "failed", reached: { ...base.reached, failed: at }, failedAt: at, failure: op.reason, failureLog: op.log };
      break;
    case "rearm":
      if (isArmed(base)) return prev;
      next = { ...base, ...noInstall };
      break;
    case "bsdp": {
      const image = op.image === undefined ? base.bsdp?.image : (op.image ?? undefined);
      if (base.bsdp && base.bsdp.image === image) return prev;
      next = { ...base, bsdp: { image } };
      break;
    }
    case "signed":
      if (base.signedLoader?.reason === op.reason) return prev;
      next = { ...base, signedLoader: op.reason ? { since: at, reason: op.reason } : undefined };
      break;
  }
  return { ...next, updated: at, rev: base.rev + 1 };
}

/** No install under way or ended: its next network boot installs (a rearm changes nothing). */
export function isArmed(r: HostRecord | undefined): boolean {
  return r === undefined || (r.phase === undefined && r.startedAt === undefined && r.doneAt === undefined && r.failedAt === undefined);
}

/**
 * What of a record is written down. A lab's host's whole record (listed, or holding a token: it was listed
 * when its kickstart went out, and its done must survive it leaving the lab file); for any other MAC only
 * what a restart must not lose (its BSDP choice, its Secure Boot mark): its phases are followed in memory,
 * so a flood of made-up MACs never reaches the disk or the database.
 */
export function durablePart(r: HostRecord, listed: boolean): HostRecord | undefined {
  if (listed || r.token !== undefined) return r;
  const bsdp = r.bsdp?.image !== undefined ? r.bsdp : undefined;
  if (!bsdp && !r.signedLoader) return undefined;
  return { ...blankRecord(r.mac, r.updated), bsdp, signedLoader: r.signedLoader, updated: r.updated, rev: r.rev };
}

/** An operation that must be on disk (or committed) before it is acknowledged to anyone. */
export function isDurableOp(op: HostOp): boolean {
  return op.op === "done" || op.op === "installed" || op.op === "failed" || op.op === "rearm" || op.op === "token";
}

/**
 * An operation worth writing for a MAC the lab does not list (see durablePart): a token (it makes the MAC
 * a lab's host), a Mac's choice in its picker (not the bare fact it spoke BSDP: a flood of made-up Macs
 * is not written), a Secure Boot mark.
 */
export function isKeptForUnlisted(op: HostOp): boolean {
  return op.op === "token" || (op.op === "bsdp" && op.image !== undefined) || op.op === "signed";
}

/** A record as stored (JSON), checked field by field: the reason when it is not one. */
export function parseRecord(raw: unknown, key?: string): HostRecord {
  const fail = (why: string): never => {
    throw new Error(why);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("not an object");
  const o = raw as Record<string, unknown>;
  const mac = tryParseMac(String(o.mac ?? key ?? "")) ?? fail(`mac ${JSON.stringify(o.mac ?? key)} is not a MAC`);
  if (key !== undefined && tryParseMac(key) !== mac) fail(`kept under ${key}, but says it is ${mac}`);
  const num = (k: string) => (o[k] === undefined || o[k] === null ? undefined : typeof o[k] === "number" && Number.isFinite(o[k]) ? (o[k] as number) : fail(`${k} is not a number`));
  const str = (k: string) => (o[k] === undefined || o[k] === null ? undefined : typeof o[k] === "string" ? (o[k] as string) : fail(`${k} is not text`));
  const phase = str("phase");
  if (phase !== undefined && !PHASES.includes(phase as Phase)) fail(`phase ${JSON.stringify(phase)} is not one`);
  const reached: Partial<Record<Phase, number>> = {};
  if (o.reached !== undefined && o.reached !== null) {
    if (typeof o.reached !== "object" || Array.isArray(o.reached)) fail("reached is not an object");
    for (const [p, t] of Object.entries(o.reached as Record<string, unknown>)) {
      if (!PHASES.includes(p as Phase) || typeof t !== "number") fail(`reached.${p} is not a phase's time`);
      reached[p as Phase] = t as number;
    }
  }
  let bsdp: HostRecord["bsdp"];
  if (o.bsdp !== undefined && o.bsdp !== null) {
    if (typeof o.bsdp !== "object" || Array.isArray(o.bsdp)) fail("bsdp is not an object");
    const image = (o.bsdp as Record<string, unknown>).image;
    if (image !== undefined && image !== null && typeof image !== "number") fail("bsdp.image is not a number");
    bsdp = { image: typeof image === "number" ? image : undefined };
  }
  const signed = o.signedLoader === undefined || o.signedLoader === null ? undefined : typeof o.signedLoader === "object" ? (o.signedLoader as Record<string, unknown>) : fail("signedLoader is not an object");
  if (signed && (typeof signed.reason !== "string" || typeof signed.since !== "number")) fail("signedLoader needs reason and since");
  return {
    mac,
    token: str("token"),
    phase: phase as Phase | undefined,
    reached,
    startedAt: num("startedAt"),
    doneAt: num("doneAt"),
    failedAt: num("failedAt"),
    failure: str("failure"),
    failureLog: o.failureLog === true,
    bsdp,
    signedLoader: signed ? { since: signed.since as number, reason: signed.reason as string } : undefined,
    updated: num("updated") ?? 0,
    rev: num("rev") ?? 0,
  };
}

/** An operation as stored (a journal line, a notification), checked: the reason when it is not one. */
export function parseOp(raw: Record<string, unknown>): HostOp {
  switch (raw.op) {
    case "token":
      if (typeof raw.token !== "string" || !raw.token) throw new Error("token op without a token");
      return { op: "token", token: raw.token };
    case "mark":
      if (!PHASES.includes(raw.phase as Phase)) throw new Error(`mark op with phase ${JSON.stringify(raw.phase)}`);
      return { op: "mark", phase: raw.phase as Phase, restart: raw.restart === true || undefined };
    case "done":
    case "installed":
    case "rearm":
    case "forget":
      return { op: raw.op };
    case "failed":
      return { op: "failed", reason: String(raw.reason ?? ""), log: raw.log === true };
    case "bsdp":
      if (raw.image !== undefined && raw.image !== null && typeof raw.image !== "number") throw new Error("bsdp op with an image that is not a number");
      return { op: "bsdp", image: raw.image as number | null | undefined };
    case "signed":
      return { op: "signed", reason: typeof raw.reason === "string" ? raw.reason : undefined };
    default:
      throw new Error(`unknown op ${JSON.stringify(raw.op)}`);
  }
}

/** Two records say the same (revision and time aside; a database may hand keys back in another order). */
export function sameFacts(a: HostRecord | undefined, b: HostRecord | undefined): boolean {
  if (!a || !b) return a === b;
  return canonical({ ...a, updated: 0, rev: 0 }) === canonical({ ...b, updated: 0, rev: 0 });
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "undefined";
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(",")}}`;
}
