/**
 * IPMI 2.0 over LAN (RMCP+), the bytes: packets, the RAKP exchange that opens a session, the keys it
 * yields, integrity and confidentiality. No sockets here (client.ts sends); node:crypto for HMAC and AES.
 *
 * Written from the IPMI v2.0 specification (rev. 1.1): §13.6 (the session header), §13.17-13.22 (Open
 * Session and RAKP 1-4), §13.28-13.32 (authentication, the session keys SIK, K1, K2, integrity, AES-CBC-128)
 * and table 22-20 (cipher suite IDs); ipmitool's lanplus (src/plugins/lanplus/lanplus_crypt.c) was read
 * for the details the text leaves open: the role byte in the HMACs is the byte sent (with the name-only
 * lookup bit), K1 and K2 hash 20-byte constants for SHA-1 and SHA-256 alike, and RAKP 4 and the packet
 * integrity of suite 17 are 16 bytes of HMAC-SHA256.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const RMCP_HEADER = [0x06, 0x00, 0xff, 0x07] as const;
export const AUTH_TYPE_RMCPP = 0x06;

export const PAYLOAD = { ipmi: 0x00, openSessionRequest: 0x10, openSessionResponse: 0x11, rakp1: 0x12, rakp2: 0x13, rakp3: 0x14, rakp4: 0x15 } as const;

/** Privilege levels (§6.8). */
export const PRIV = { callback: 1, user: 2, operator: 3, admin: 4 } as const;
/** RAKP 1's role byte: look the user up by name only (ipmitool's default). */
const NAME_ONLY_LOOKUP = 0x10;

/** The algorithms of a cipher suite (table 22-20). */
export interface CipherSuite {
  id: number;
  /** RAKP: 0 none, 1 HMAC-SHA1, 3 HMAC-SHA256. */
  auth: 0 | 1 | 3;
  /** Integrity: 0 none, 1 HMAC-SHA1-96, 4 HMAC-SHA256-128. */
  integrity: 0 | 1 | 4;
  /** Confidentiality: 0 none, 1 AES-CBC-128. */
  crypt: 0 | 1;
}

export const CIPHER_SUITES: Readonly<Record<number, CipherSuite>> = {
  0: { id: 0, auth: 0, integrity: 0, crypt: 0 },
  1: { id: 1, auth: 1, integrity: 0, crypt: 0 },
  2: { id: 2, auth: 1, integrity: 1, crypt: 0 },
  3: { id: 3, auth: 1, integrity: 1, crypt: 1 },
  17: { id: 17, auth: 3, integrity: 4, crypt: 1 },
};

/** What netboot proposes, best first. Suite 0 (no authentication: any password opens it) only when a lab asks. */
export const PREFERRED_SUITES = [17, 3] as const;

const hashOf = (alg: number): "sha1" | "sha256" => (alg === 3 || alg === 4 ? "sha256" : "sha1");
/** Bytes of the RAKP 2 and RAKP 3 codes (a whole HMAC), of RAKP 4's check and of a packet's AuthCode. */
export const rakpCodeBytes = (s: CipherSuite) => (s.auth === 0 ? 0 : s.auth === 3 ? 32 : 20);
export const rakp4Bytes = (s: CipherSuite) => (s.auth === 0 ? 0 : s.auth === 3 ? 16 : 12);
export const authCodeBytes = (s: CipherSuite) => (s.integrity === 0 ? 0 : s.integrity === 4 ? 16 : 12);

const hmac = (alg: "sha1" | "sha256", key: Uint8Array, ...parts: Uint8Array[]) => {
  const h = createHmac(alg, key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

const u32le = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
};
const readU32le = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);

/** §13.8: the two's complement of the sum of the bytes. */
export function checksum(bytes: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum = (sum + bytes[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** An IPMI request message for the BMC (responder 0x20) from a remote console (software ID 0x81). */
export function ipmiRequest(netFn: number, cmd: number, rqSeq: number, data: readonly number[] | Uint8Array = []): Uint8Array {
  const m = new Uint8Array(7 + data.length);
  m[0] = 0x20;
  m[1] = (netFn << 2) & 0xfc;
  m[2] = checksum(m, 0, 2);
  m[3] = 0x81;
  m[4] = (rqSeq << 2) & 0xfc;
  m[5] = cmd;
  m.set(data, 6);
  m[m.length - 1] = checksum(m, 3, m.length - 1);
  return m;
}

export interface IpmiResponse {
  netFn: number;
  cmd: number;
  rqSeq: number;
  completion: number;
  data: Uint8Array;
}

export function parseIpmiResponse(m: Uint8Array): IpmiResponse | undefined {
  if (m.length < 8) return undefined;
  if (checksum(m, 0, 2) !== m[2] || checksum(m, 3, m.length - 1) !== m[m.length - 1]) return undefined;
  return { netFn: m[1]! >> 2, rqSeq: m[4]! >> 2, cmd: m[5]!, completion: m[6]!, data: m.subarray(7, m.length - 1) };
}

/** An IPMI 1.5 packet outside any session (Get Channel Authentication Capabilities goes so, §13.14). */
export function v15Packet(message: Uint8Array): Uint8Array {
  const p = new Uint8Array(4 + 10 + message.length);
  p.set(RMCP_HEADER, 0);
  // auth type 0, sequence 0, session 0
  p[13] = message.length;
  p.set(message, 14);
  return p;
}

export interface SessionKeys {
  suite: CipherSuite;
  /** K1 (integrity) and K2 (its first 16 bytes are the AES key). */
  k1: Uint8Array;
  k2: Uint8Array;
}

/** An IPMI 2.0 packet (§13.6): outside a session (keys undefined) or inside one, signed and encrypted as the suite says. */
export function v20Packet(payloadType: number, sessionId: number, seq: number, payload: Uint8Array, keys?: SessionKeys): Uint8Array {
  const encrypted = keys !== undefined && keys.suite.crypt === 1 && payloadType === PAYLOAD.ipmi;
  const signed = keys !== undefined && keys.suite.integrity !== 0 && payloadType === PAYLOAD.ipmi;
  const body = encrypted ? encryptAes(keys!.k2.subarray(0, 16), payload) : payload;
  const headerLen = 12;
  const pad = signed ? (4 - ((headerLen + body.length + 2) % 4)) % 4 : 0;
  const codeLen = signed ? authCodeBytes(keys!.suite) : 0;
  const trailer = signed ? pad + 2 + codeLen : 0;
  const p = new Uint8Array(4 + headerLen + body.length + trailer);
  p.set(RMCP_HEADER, 0);
  p[4] = AUTH_TYPE_RMCPP;
  p[5] = payloadType | (encrypted ? 0x80 : 0) | (signed ? 0x40 : 0);
  p.set(u32le(sessionId), 6);
  p.set(u32le(seq), 10);
  p[14] = body.length & 0xff;
  p[15] = body.length >> 8;
  p.set(body, 16);
  if (signed) {
    let at = 16 + body.length;
    for (let i = 0; i < pad; i++) p[at++] = 0xff;
    p[at++] = pad;
    p[at++] = 0x07;
    p.set(hmac(hashOf(keys!.suite.integrity), keys!.k1, p.subarray(4, at)).subarray(0, codeLen), at);
  }
  return p;
}

export interface V20Packet {
  payloadType: number;
  encrypted: boolean;
  signed: boolean;
  sessionId: number;
  seq: number;
  payload: Uint8Array;
}

export interface V15Packet {
  v15: true;
  message: Uint8Array;
}

/**
 * Reads a packet from the BMC. Inside a session the AuthCode is checked and the payload decrypted: a packet
 * that fails either is dropped (undefined), as §13.6 asks, and so is anything that is not RMCP's IPMI class.
 */
export function parsePacket(p: Uint8Array, keys?: SessionKeys): V20Packet | V15Packet | undefined {
  if (p.length < 14 || p[0] !== 0x06 || p[3] !== 0x07) return undefined;
  if (p[4] !== AUTH_TYPE_RMCPP) {
    // IPMI 1.5, auth type none: 4 + 1 + 4 + 4 + 1 length + message.
    if (p[4] !== 0) return undefined;
    const len = p[13]!;
    if (p.length < 14 + len) return undefined;
    return { v15: true, message: p.subarray(14, 14 + len) };
  }
  if (p.length < 16) return undefined;
  const type = p[5]!;
  const encrypted = (type & 0x80) !== 0;
  const signed = (type & 0x40) !== 0;
  const len = p[14]! | (p[15]! << 8);
  if (p.length < 16 + len) return undefined;
  let payload = p.subarray(16, 16 + len);
  if (signed) {
    if (!keys || keys.suite.integrity === 0) return undefined;
    const codeLen = authCodeBytes(keys.suite);
    const end = p.length - codeLen;
    if (end < 16 + len + 2 || p[end - 1] !== 0x07) return undefined;
    const want = hmac(hashOf(keys.suite.integrity), keys.k1, p.subarray(4, end)).subarray(0, codeLen);
    const got = p.subarray(end, end + codeLen);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
  } else if (keys && keys.suite.integrity !== 0 && (type & 0x3f) === PAYLOAD.ipmi && readU32le(p, 6) !== 0) return undefined;
  if (encrypted) {
    if (!keys || keys.suite.crypt !== 1) return undefined;
    const plain = decryptAes(keys.k2.subarray(0, 16), payload);
    if (!plain) return undefined;
    payload = plain;
  }
  return { payloadType: type & 0x3f, encrypted, signed, sessionId: readU32le(p, 6), seq: readU32le(p, 10), payload };
}

/** §13.29: AES-CBC-128 with a random IV first, the plaintext padded with 1, 2, 3… and the pad length. */
export function encryptAes(key: Uint8Array, plain: Uint8Array, iv: Uint8Array = new Uint8Array(randomBytes(16))): Uint8Array {
  const padLen = (16 - ((plain.length + 1) % 16)) % 16;
  const padded = new Uint8Array(plain.length + padLen + 1);
  padded.set(plain, 0);
  for (let i = 0; i < padLen; i++) padded[plain.length + i] = i + 1;
  padded[padded.length - 1] = padLen;
  const c = createCipheriv("aes-128-cbc", key, iv).setAutoPadding(false);
  const out = new Uint8Array(16 + padded.length);
  out.set(iv, 0);
  out.set(new Uint8Array(Buffer.concat([c.update(padded), c.final()])), 16);
  return out;
}

export function decryptAes(key: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (data.length < 32 || data.length % 16 !== 0) return undefined;
  const d = createDecipheriv("aes-128-cbc", key, data.subarray(0, 16)).setAutoPadding(false);
  const plain = new Uint8Array(Buffer.concat([d.update(data.subarray(16)), d.final()]));
  const padLen = plain[plain.length - 1]!;
  if (padLen > 15 || padLen + 1 > plain.length) return undefined;
  return plain.subarray(0, plain.length - 1 - padLen);
}

/** Open Session Request (§13.17): the console's session ID, the maximum privilege, one suite's three algorithms. */
export function openSessionRequest(tag: number, consoleSid: number, suite: CipherSuite, priv: number): Uint8Array {
  return Uint8Array.from([
    tag, priv, 0, 0, ...u32le(consoleSid),
    0x00, 0, 0, 0x08, suite.auth, 0, 0, 0,
    0x01, 0, 0, 0x08, suite.integrity, 0, 0, 0,
    0x02, 0, 0, 0x08, suite.crypt, 0, 0, 0,
  ]);
}

export interface OpenSessionResponse {
  tag: number;
  status: number;
  consoleSid: number;
  bmcSid: number;
  /** The algorithms the BMC chose (its answer's three payloads). */
  auth: number;
  integrity: number;
  crypt: number;
}

export function parseOpenSessionResponse(b: Uint8Array): OpenSessionResponse | undefined {
  if (b.length < 2) return undefined;
  if (b[1] !== 0) return { tag: b[0]!, status: b[1]!, consoleSid: b.length >= 8 ? readU32le(b, 4) : 0, bmcSid: 0, auth: -1, integrity: -1, crypt: -1 };
  if (b.length < 36) return undefined;
  return { tag: b[0]!, status: 0, consoleSid: readU32le(b, 4), bmcSid: readU32le(b, 8), auth: b[16]! & 0x3f, integrity: b[24]! & 0x3f, crypt: b[32]! & 0x3f };
}

/** The values both sides hash during RAKP. */
export interface Rakp {
  suite: CipherSuite;
  consoleSid: number;
  bmcSid: number;
  /** Rm: the console's random number. */
  consoleRandom: Uint8Array;
  /** The role byte as sent in RAKP 1 (privilege and lookup bit). */
  role: number;
  user: Uint8Array;
  /** Kuid: the user's password, 20 bytes at most (§13.31). */
  password: Uint8Array;
}

export function newRakp(suite: CipherSuite, consoleSid: number, bmcSid: number, user: string, password: string, priv: number = PRIV.admin): Rakp {
  const u = new TextEncoder().encode(user);
  const k = new TextEncoder().encode(password);
  if (u.length > 16) throw new RangeError("an IPMI user name is 16 bytes at most");
  if (k.length > 20) throw new RangeError("an IPMI 2.0 password is 20 bytes at most");
  return { suite, consoleSid, bmcSid, consoleRandom: new Uint8Array(randomBytes(16)), role: priv | NAME_ONLY_LOOKUP, user: u, password: k };
}

/** RAKP Message 1 (§13.20). */
export function rakp1(tag: number, r: Rakp): Uint8Array {
  return Uint8Array.from([tag, 0, 0, 0, ...u32le(r.bmcSid), ...r.consoleRandom, r.role, 0, 0, r.user.length, ...r.user]);
}

export interface Rakp2 {
  tag: number;
  status: number;
  consoleSid: number;
  bmcRandom: Uint8Array;
  bmcGuid: Uint8Array;
  code: Uint8Array;
}

export function parseRakp2(b: Uint8Array): Rakp2 | undefined {
  if (b.length < 2) return undefined;
  if (b[1] !== 0) return { tag: b[0]!, status: b[1]!, consoleSid: 0, bmcRandom: new Uint8Array(), bmcGuid: new Uint8Array(), code: new Uint8Array() };
  if (b.length < 40) return undefined;
  return { tag: b[0]!, status: 0, consoleSid: readU32le(b, 4), bmcRandom: b.slice(8, 24), bmcGuid: b.slice(24, 40), code: b.slice(40) };
}

const nameBytes = (r: Rakp) => Uint8Array.from([r.role, r.user.length, ...r.user]);

/** RAKP 2's key exchange code, as the BMC should have made it with the same password (§13.21). */
export function rakp2Expected(r: Rakp, m2: Rakp2): Uint8Array {
  if (r.suite.auth === 0) return new Uint8Array();
  return hmac(hashOf(r.suite.auth), r.password, u32le(r.consoleSid), u32le(r.bmcSid), r.consoleRandom, m2.bmcRandom, m2.bmcGuid, nameBytes(r));
}

export function rakp2Matches(r: Rakp, m2: Rakp2): boolean {
  const want = rakp2Expected(r, m2);
  return want.length === m2.code.length && (want.length === 0 || timingSafeEqual(want, m2.code));
}

/** RAKP Message 3 (§13.22), status 0: the console proves it knows the password. */
export function rakp3(tag: number, r: Rakp, m2: Rakp2): Uint8Array {
  const code = r.suite.auth === 0 ? new Uint8Array() : hmac(hashOf(r.suite.auth), r.password, m2.bmcRandom, u32le(r.consoleSid), nameBytes(r));
  return Uint8Array.from([tag, 0, 0, 0, ...u32le(r.bmcSid), ...code]);
}

/** The session keys (§13.31, §13.32): SIK from both randoms and the name, then K1 and K2 from SIK. */
export function sessionKeys(r: Rakp, m2: Rakp2, kg?: Uint8Array): SessionKeys & { sik: Uint8Array } {
  const alg = hashOf(r.suite.auth);
  if (r.suite.auth === 0) return { suite: r.suite, sik: new Uint8Array(), k1: new Uint8Array(20).fill(1), k2: new Uint8Array(20).fill(2) };
  const sik = hmac(alg, kg && kg.some((x) => x !== 0) ? kg : r.password, r.consoleRandom, m2.bmcRandom, nameBytes(r));
  return { suite: r.suite, sik, k1: hmac(alg, sik, new Uint8Array(20).fill(1)), k2: hmac(alg, sik, new Uint8Array(20).fill(2)) };
}

export interface Rakp4 {
  tag: number;
  status: number;
  consoleSid: number;
  check: Uint8Array;
}

export function parseRakp4(b: Uint8Array): Rakp4 | undefined {
  if (b.length < 2) return undefined;
  if (b[1] !== 0) return { tag: b[0]!, status: b[1]!, consoleSid: 0, check: new Uint8Array() };
  if (b.length < 8) return undefined;
  return { tag: b[0]!, status: 0, consoleSid: readU32le(b, 4), check: b.slice(8) };
}

/** RAKP 4's integrity check value: HMAC(SIK, Rm | SIDc | GUIDc), truncated (§13.23). */
export function rakp4Matches(r: Rakp, m2: Rakp2, sik: Uint8Array, m4: Rakp4): boolean {
  const n = rakp4Bytes(r.suite);
  if (n === 0) return true;
  const want = hmac(hashOf(r.suite.auth), sik, r.consoleRandom, u32le(r.bmcSid), m2.bmcGuid).subarray(0, n);
  return m4.check.length >= n && timingSafeEqual(want, m4.check.subarray(0, n));
}

/** RMCP+ status codes (table 13-15), for the one line a refusal gets. */
export const RAKP_STATUS: Readonly<Record<number, string>> = {
  0x01: "insufficient resources to create a session",
  0x02: "invalid session ID",
  0x03: "invalid payload type",
  0x04: "invalid authentication algorithm",
  0x05: "invalid integrity algorithm",
  0x06: "no matching authentication payload",
  0x07: "no matching integrity payload",
  0x08: "inactive session ID",
  0x09: "invalid role",
  0x0a: "unauthorized role or privilege level requested",
  0x0b: "insufficient resources to create a session at the requested role",
  0x0c: "invalid name length",
  0x0d: "unauthorized name",
  0x0e: "unauthorized GUID",
  0x0f: "invalid integrity check value",
  0x10: "invalid confidentiality algorithm",
  0x11: "no cipher suite match with proposed security algorithms",
  0x12: "illegal or unrecognized parameter",
};

/** Completion codes (table 5-2). */
export const COMPLETION: Readonly<Record<number, string>> = {
  0xc0: "node busy",
  0xc1: "invalid command",
  0xc2: "command invalid for this LUN",
  0xc3: "timeout while processing the command",
  0xc4: "out of space",
  0xc5: "reservation cancelled",
  0xc6: "request data truncated",
  0xc7: "request data length invalid",
  0xc8: "request data field length limit exceeded",
  0xc9: "parameter out of range",
  0xca: "cannot return the number of requested data bytes",
  0xcb: "requested sensor, data or record not present",
  0xcc: "invalid data field in request",
  0xcd: "command illegal for this sensor or record type",
  0xce: "command response could not be provided",
  0xcf: "cannot execute a duplicated request",
  0xd0: "SDR repository in update mode",
  0xd1: "device in firmware update mode",
  0xd2: "BMC initialization in progress",
  0xd3: "destination unavailable",
  0xd4: "insufficient privilege level",
  0xd5: "not supported in the present state",
  0xd6: "parameter is illegal because a subfunction is disabled",
  0xff: "unspecified error",
};

export const completionText = (cc: number) => `0x${cc.toString(16).padStart(2, "0")} (${COMPLETION[cc] ?? "unknown"})`;

/** Parses Get Channel Cipher Suites records (§22.15): the suite IDs the BMC offers. */
export function parseCipherSuiteRecords(data: Uint8Array): number[] {
  const ids: number[] = [];
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0xc0 && i + 1 < data.length) {
      ids.push(data[i + 1]!);
      i++;
    } else if (data[i] === 0xc1 && i + 4 < data.length) {
      ids.push(data[i + 1]!);
      i += 4;
    }
  }
  return ids;
}

/** Chassis boot devices (Set System Boot Options, parameter 5, data 2 bits 5:2). */
export const BOOT_DEVICE = { none: 0x0, pxe: 0x1, disk: 0x2, cd: 0x5, bios: 0x6 } as const;
export type BootDevice = keyof typeof BOOT_DEVICE;

export interface BootFlags {
  valid: boolean;
  persistent: boolean;
  efi: boolean;
  device: BootDevice | `0x${string}`;
}

/** Boot flags (parameter 5): valid, once or persistent, EFI, the device. */
export function bootFlagsBytes(f: { device: BootDevice; persistent: boolean; efi: boolean }): Uint8Array {
  return Uint8Array.from([0x80 | (f.persistent ? 0x40 : 0) | (f.efi ? 0x20 : 0), (BOOT_DEVICE[f.device] << 2) & 0x3c, 0, 0, 0]);
}

export function parseBootFlags(b: Uint8Array): BootFlags | undefined {
  if (b.length < 2) return undefined;
  const dev = (b[1]! >> 2) & 0x0f;
  const name = (Object.keys(BOOT_DEVICE) as BootDevice[]).find((k) => BOOT_DEVICE[k] === dev);
  return { valid: (b[0]! & 0x80) !== 0, persistent: (b[0]! & 0x40) !== 0, efi: (b[0]! & 0x20) !== 0, device: name ?? `0x${dev.toString(16)}` };
}
