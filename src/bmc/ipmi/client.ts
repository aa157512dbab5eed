/**
 * An IPMI 2.0 (RMCP+) session with one BMC over UDP: the chassis commands netboot needs (power, the boot
 * flags). Every request waits LIMITS.bmc.ipmiWaitMs and is sent up to ipmiTries times, each time with the
 * next session sequence number (§6.12.13: a BMC drops a repeated one); a refusal is one BmcError naming
 * the BMC, the command and the completion code. The password is only ever an HMAC key.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { randomBytes } from "node:crypto";
import { LIMITS } from "../../config.ts";
import { BmcError } from "../../errors.ts";
import {
  CIPHER_SUITES, completionText, PAYLOAD, PREFERRED_SUITES, PRIV, RAKP_STATUS, bootFlagsBytes, ipmiRequest, newRakp, openSessionRequest, parseBootFlags,
  parseCipherSuiteRecords, parseIpmiResponse, parseOpenSessionResponse, parsePacket, parseRakp2, parseRakp4, rakp1, rakp2Matches, rakp3, rakp4Matches,
  sessionKeys, v15Packet, v20Packet, type BootDevice, type BootFlags, type IpmiResponse, type SessionKeys,
} from "./codec.ts";

export interface IpmiTarget {
  host: string;
  port?: number | undefined;
  user: string;
  password: string;
  /** Only this suite (a lab's `cipher:`); otherwise the best the BMC offers of 17 and 3. */
  cipherSuite?: number | undefined;
}

/** What one attempt to open a session gave, per suite: for logs and the closing report. */
export interface SuiteAttempt {
  suite: number;
  result: string;
}

const NETFN = { chassis: 0x00, app: 0x06 } as const;
const CMD = {
  chassisStatus: 0x01, chassisControl: 0x02, setBootOptions: 0x08, getBootOptions: 0x09,
  authCapabilities: 0x38, setPrivilege: 0x3b, closeSession: 0x3c, cipherSuites: 0x54,
} as const;
export const CHASSIS_CONTROL = { off: 0x00, on: 0x01, cycle: 0x02, reset: 0x03, soft: 0x05 } as const;
export type ChassisControl = keyof typeof CHASSIS_CONTROL;

class Transport {
  readonly #socket: Socket;
  #waiter: ((p: Uint8Array) => void) | undefined;
  /** Datagrams sent (every try counts). */
  sent = 0;
  readonly name: string;
  constructor(name: string, host: string, port: number) {
    this.name = name;
    this.#socket = createSocket(isIPv6(host) ? "udp6" : "udp4");
    this.#socket.on("message", (msg) => this.#waiter?.(new Uint8Array(msg)));
    this.#socket.on("error", () => {});
    this.#socket.connect(port, host);
  }
  async ready(): Promise<void> {
    await new Promise<void>((res, rej) => {
      this.#socket.once("connect", () => res());
      this.#socket.once("error", rej);
    }).catch((err) => {
      throw new BmcError("E_BMC_UNREACHABLE", `${this.name}: ${(err as Error).message}`);
    });
  }
  /** Sends build(try) until accept() takes an answer, or the tries run out. */
  async exchange<T>(what: string, build: (attempt: number) => Uint8Array, accept: (p: Uint8Array) => T | undefined): Promise<T> {
    for (let attempt = 0; attempt < LIMITS.bmc.ipmiTries; attempt++) {
      const got = await new Promise<T | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.#waiter = undefined;
          resolve(undefined);
        }, LIMITS.bmc.ipmiWaitMs);
        this.#waiter = (p) => {
          const v = accept(p);
          if (v === undefined) return;
          clearTimeout(timer);
          this.#waiter = undefined;
          resolve(v);
        };
        this.sent++;
        this.#socket.send(build(attempt), (err) => {
          if (err) {
            clearTimeout(timer);
            this.#waiter = undefined;
            resolve(undefined);
          }
        });
      });
      if (got !== undefined) return got;
    }
    throw new BmcError("E_BMC_TIMEOUT", `${this.name}: no answer to ${what} (${LIMITS.bmc.ipmiTries} tries, ${LIMITS.bmc.ipmiWaitMs} ms each)`, "no answer");
  }
  close(): void {
    try {
      this.#socket.close();
    } catch {
      // closed already
    }
  }
}

export class IpmiSession {
  #seq = 1;
  #rqSeq = 1;
  #closed = false;
  /** The BMC's sequence numbers seen (§6.12.13): a repeated or too old one is a replay, dropped. */
  #peerHigh = 0;
  readonly #peerSeen = new Set<number>();
  private readonly transport: Transport;
  readonly name: string;
  readonly suite: number;
  private readonly keys: SessionKeys;
  private readonly bmcSid: number;
  private readonly consoleSid: number;
  /** Every suite tried before this one opened, and why each was not taken. */
  readonly attempts: readonly SuiteAttempt[];
  private constructor(transport: Transport, name: string, suite: number, keys: SessionKeys, bmcSid: number, consoleSid: number, attempts: readonly SuiteAttempt[]) {
    this.transport = transport;
    this.name = name;
    this.suite = suite;
    this.keys = keys;
    this.bmcSid = bmcSid;
    this.consoleSid = consoleSid;
    this.attempts = attempts;
  }

  /** Opens a session at administrator level: the best suite both sides have, never 0 unless asked for. */
  static async open(t: IpmiTarget): Promise<IpmiSession> {
    const port = t.port ?? LIMITS.bmc.ipmiPort;
    const name = `IPMI ${t.host}:${port}`;
    const transport = new Transport(name, t.host, port);
    try {
      await transport.ready();
      await authCapabilities(transport);
      const offered = await cipherSuites(transport).catch(() => undefined);
      const wanted = t.cipherSuite !== undefined ? [t.cipherSuite] : PREFERRED_SUITES.filter((s) => !offered || offered.includes(s));
      if (wanted.length === 0) throw new BmcError("E_BMC_CIPHER", `${name}: offers cipher suites ${offered!.join(", ")}, none of ${PREFERRED_SUITES.join(" or ")} (set bmc.cipher: in the lab file to use another)`);
      const attempts: SuiteAttempt[] = [];
      for (const id of wanted) {
        const suite = CIPHER_SUITES[id];
        if (!suite) throw new BmcError("E_BMC_CIPHER", `${name}: cipher suite ${id} is not one netboot speaks (${Object.keys(CIPHER_SUITES).join(", ")})`);
        const r = await openWith(transport, suite, t);
        if ("refused" in r) {
          attempts.push({ suite: id, result: r.refused });
          // A suite the BMC does not have: try the next. A refused name or password: every suite will say so.
          if (r.retry) continue;
          throw new BmcError("E_BMC_AUTH", `${name}: ${r.refused}`);
        }
        attempts.push({ suite: r.suite, result: r.suite === id ? "opened" : `opened (the BMC chose suite ${r.suite} when asked for ${id})` });
        const s = new IpmiSession(transport, name, r.suite, r.keys, r.bmcSid, r.consoleSid, attempts);
        await s.request(NETFN.app, CMD.setPrivilege, [PRIV.admin], "Set Session Privilege Level (administrator)");
        return s;
      }
      throw new BmcError("E_BMC_CIPHER", `${name}: no session: ${attempts.map((a) => `suite ${a.suite}: ${a.result}`).join("; ")}`);
    } catch (err) {
      transport.close();
      throw err;
    }
  }

  /** One command inside the session; a completion code other than 0 is a BmcError with its meaning. */
  async request(netFn: number, cmd: number, data: readonly number[] | Uint8Array, what: string): Promise<Uint8Array> {
    const r = await this.send(netFn, cmd, data, what);
    if (r.completion !== 0) throw new BmcError("E_BMC_REFUSED", `${this.name}: ${what}: the BMC answered ${completionText(r.completion)}`, `completion code ${completionText(r.completion)}`);
    return r.data;
  }

  async send(netFn: number, cmd: number, data: readonly number[] | Uint8Array, what: string): Promise<IpmiResponse> {
    if (this.#closed) throw new BmcError("E_BMC_CLOSED", `${this.name}: the session is closed`);
    const rqSeq = this.#rqSeq;
    this.#rqSeq = (this.#rqSeq % 63) + 1;
    const message = ipmiRequest(netFn, cmd, rqSeq, data);
    return this.transport.exchange(
      what,
      () => v20Packet(PAYLOAD.ipmi, this.bmcSid, this.#nextSeq(), message, this.keys),
      (p) => {
        const pkt = parsePacket(p, this.keys);
        if (!pkt || "v15" in pkt || pkt.payloadType !== PAYLOAD.ipmi || pkt.sessionId !== this.consoleSid) return undefined;
        if (!this.#freshPeerSeq(pkt.seq)) return undefined;
        const r = parseIpmiResponse(pkt.payload);
        return r && r.rqSeq === rqSeq && r.cmd === cmd && r.netFn === (netFn | 1) ? r : undefined;
      },
    );
  }

  /** A sequence number within the window of the highest seen (16 back) and not seen before (§6.12.13). */
  #freshPeerSeq(seq: number): boolean {
    if (seq === 0 || this.#peerSeen.has(seq) || (this.#peerHigh > 16 && seq < this.#peerHigh - 16)) return false;
    this.#peerSeen.add(seq);
    if (seq > this.#peerHigh) this.#peerHigh = seq;
    if (this.#peerSeen.size > 32) for (const s of this.#peerSeen) if (s < this.#peerHigh - 16) this.#peerSeen.delete(s);
    return true;
  }

  /** Datagrams sent to the BMC in this session, its opening included. */
  get requests(): number {
    return this.transport.sent;
  }

  #nextSeq(): number {
    const s = this.#seq;
    this.#seq = this.#seq >= 0xffffffff ? 1 : this.#seq + 1;
    return s;
  }

  async powerIsOn(): Promise<boolean> {
    const d = await this.request(NETFN.chassis, CMD.chassisStatus, [], "Get Chassis Status");
    return (d[0]! & 0x01) !== 0;
  }

  async chassisControl(op: ChassisControl): Promise<void> {
    await this.request(NETFN.chassis, CMD.chassisControl, [CHASSIS_CONTROL[op]], `Chassis Control (${op})`);
  }

  /** Set System Boot Options, parameter 5 (boot flags). */
  async setBootFlags(f: { device: BootDevice; persistent: boolean; efi: boolean }): Promise<void> {
    await this.request(NETFN.chassis, CMD.setBootOptions, [0x05, ...bootFlagsBytes(f)], `Set System Boot Options (boot flags: ${f.device}${f.efi ? ", EFI" : ""}, ${f.persistent ? "persistent" : "next boot only"})`);
  }

  /** Get System Boot Options, parameter 5: what the BMC kept. */
  async getBootFlags(): Promise<BootFlags & { raw: string }> {
    const d = await this.request(NETFN.chassis, CMD.getBootOptions, [0x05, 0, 0], "Get System Boot Options (boot flags)");
    const flags = parseBootFlags(d.subarray(2));
    if (!flags) throw new BmcError("E_BMC_ANSWER", `${this.name}: Get System Boot Options: ${d.length} bytes, too short for boot flags`);
    return { ...flags, raw: [...d.subarray(2, 7)].map((b) => b.toString(16).padStart(2, "0")).join(" ") };
  }

  /** Close Session; the socket goes whatever the BMC says. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.send(NETFN.app, CMD.closeSession, [...new Uint8Array(new Uint32Array([this.bmcSid]).buffer)], "Close Session");
    } catch {
      // The BMC forgets an idle session by itself.
    } finally {
      this.#closed = true;
      this.transport.close();
    }
  }
}

/** Get Channel Authentication Capabilities (§22.13), outside a session: the BMC speaks IPMI 2.0. */
async function authCapabilities(t: Transport): Promise<void> {
  const r = await t.exchange(
    "Get Channel Authentication Capabilities",
    () => v15Packet(ipmiRequest(NETFN.app, CMD.authCapabilities, 0, [0x8e, PRIV.admin])),
    (p) => {
      const pkt = parsePacket(p);
      const m = pkt && "v15" in pkt ? parseIpmiResponse(pkt.message) : undefined;
      return m && m.cmd === CMD.authCapabilities ? m : undefined;
    },
  );
  if (r.completion !== 0) throw new BmcError("E_BMC_REFUSED", `${t.name}: Get Channel Authentication Capabilities: ${completionText(r.completion)}`);
  if ((r.data[1]! & 0x80) === 0 || (r.data[3]! & 0x02) === 0) throw new BmcError("E_BMC_V15", `${t.name}: the BMC speaks only IPMI 1.5 (netboot speaks 2.0: RMCP+)`);
}

/** Get Channel Cipher Suites (§22.15), outside a session: undefined where the BMC does not answer it. */
async function cipherSuites(t: Transport): Promise<number[]> {
  const records: number[] = [];
  for (let index = 0; index < 64; index++) {
    const r = await t.exchange(
      "Get Channel Cipher Suites",
      () => v15Packet(ipmiRequest(NETFN.app, CMD.cipherSuites, 0, [0x0e, 0x00, 0x80 | index])),
      (p) => {
        // pyghmi answers it as an IPMI 2.0 packet outside a session; the spec's BMCs as 1.5.
        const pkt = parsePacket(p);
        const m = pkt ? parseIpmiResponse("v15" in pkt ? pkt.message : pkt.payloadType === PAYLOAD.ipmi && pkt.sessionId === 0 ? pkt.payload : new Uint8Array()) : undefined;
        return m && m.cmd === CMD.cipherSuites ? m : undefined;
      },
    );
    if (r.completion !== 0) throw new BmcError("E_BMC_REFUSED", completionText(r.completion));
    const chunk = r.data.subarray(1);
    records.push(...chunk);
    if (chunk.length < 16) break;
  }
  return parseCipherSuiteRecords(Uint8Array.from(records));
}

type Opened = { keys: SessionKeys; bmcSid: number; consoleSid: number; suite: number } | { refused: string; retry: boolean };

/** Open Session, then RAKP 1-4 with one suite. */
async function openWith(t: Transport, suite: (typeof CIPHER_SUITES)[number], target: IpmiTarget): Promise<Opened> {
  const consoleSid = (randomBytes(4).readUInt32LE(0) | 1) >>> 0;
  const tag = randomBytes(1)[0]!;
  const open = await t.exchange(
    `Open Session (cipher suite ${suite.id})`,
    () => v20Packet(PAYLOAD.openSessionRequest, 0, 0, openSessionRequest(tag, consoleSid, suite, PRIV.admin)),
    (p) => {
      const pkt = parsePacket(p);
      const r = pkt && !("v15" in pkt) && pkt.payloadType === PAYLOAD.openSessionResponse ? parseOpenSessionResponse(pkt.payload) : undefined;
      return r && r.tag === tag ? r : undefined;
    },
  );
  if (open.status !== 0) return { refused: `Open Session: ${RAKP_STATUS[open.status] ?? `status 0x${open.status.toString(16)}`}`, retry: true };
  if (open.consoleSid !== consoleSid) return { refused: "Open Session: the answer names another session", retry: true };
  // §13.18: the BMC answers with the algorithms it chose. Some choose their own whatever was asked
  // (pyghmi's BMC always answers suite 3): go on with theirs if it is one netboot would have proposed.
  const chosen = Object.values(CIPHER_SUITES).find((s) => s.auth === open.auth && s.integrity === open.integrity && s.crypt === open.crypt);
  if (!chosen || (chosen.id !== suite.id && (target.cipherSuite !== undefined || !(PREFERRED_SUITES as readonly number[]).includes(chosen.id)))) {
    return { refused: `Open Session: the BMC chose algorithms ${open.auth}/${open.integrity}/${open.crypt} (authentication/integrity/confidentiality), not suite ${suite.id}'s${target.cipherSuite !== undefined ? " (the lab file pins cipher:)" : ""}`, retry: target.cipherSuite === undefined };
  }
  suite = chosen;
  let rakp;
  try {
    rakp = newRakp(suite, consoleSid, open.bmcSid, target.user, target.password, PRIV.admin);
  } catch (err) {
    return { refused: (err as Error).message, retry: false };
  }
  const m2 = await t.exchange(
    "RAKP 1",
    () => v20Packet(PAYLOAD.rakp1, 0, 0, rakp1(tag, rakp)),
    (p) => {
      const pkt = parsePacket(p);
      const r = pkt && !("v15" in pkt) && pkt.payloadType === PAYLOAD.rakp2 ? parseRakp2(pkt.payload) : undefined;
      return r && r.tag === tag ? r : undefined;
    },
  );
  if (m2.status !== 0) {
    const why = RAKP_STATUS[m2.status] ?? `status 0x${m2.status.toString(16)}`;
    return { refused: `RAKP 2: ${why}${m2.status === 0x0d ? ` (user ${target.user})` : ""}`, retry: m2.status === 0x04 || m2.status === 0x05 || m2.status === 0x11 };
  }
  if (!rakp2Matches(rakp, m2)) return { refused: `the BMC does not know this password for user ${target.user} (RAKP 2's code does not match)`, retry: false };
  const keys = sessionKeys(rakp, m2);
  const m4 = await t.exchange(
    "RAKP 3",
    () => v20Packet(PAYLOAD.rakp3, 0, 0, rakp3(tag, rakp, m2)),
    (p) => {
      const pkt = parsePacket(p);
      const r = pkt && !("v15" in pkt) && pkt.payloadType === PAYLOAD.rakp4 ? parseRakp4(pkt.payload) : undefined;
      return r && r.tag === tag ? r : undefined;
    },
  );
  if (m4.status !== 0) return { refused: `RAKP 4: ${RAKP_STATUS[m4.status] ?? `status 0x${m4.status.toString(16)}`}`, retry: false };
  if (!rakp4Matches(rakp, m2, keys.sik, m4)) return { refused: "RAKP 4's integrity check does not match (not the BMC that answered RAKP 2?)", retry: false };
  return { keys, bmcSid: open.bmcSid, consoleSid, suite: suite.id };
}
