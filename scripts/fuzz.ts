#!/usr/bin/env bun
/**
 * In-process fuzzing of the decoders that see what any machine on the link sends: DHCP (and what the
 * servers read from a decoded packet: the client's kind, its MAC, the log line, re-encoding), BSDP's
 * option 43, TFTP, and boot.cfg (from images anyone can download). Seeds are real packets (the golden
 * fixtures) and real boot.cfgs; each case mutates one: bit flips, truncation, extension, bytes set to
 * 0x00/0xff (option lengths that lie), option 52 overload, an option 43 nested in itself, splices of two
 * seeds, absurd TFTP option values. Seeded xorshift: the same seed and count give the same cases.
 * A decoder may refuse a case only with a typed error (NetbootError); anything else is a finding.
 *
 *   npm run fuzz -- [--count 1000000] [--seed 1] [--target dhcp,bsdp,tftp,bootcfg]
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { getBootCfgValue, parseBootCfg, splitModules } from "../src/boot/esxi/bootcfg.ts";
import { decodeBsdpOptions, encodeBsdpOptions } from "../src/bsdp/options.ts";
import { bootClientFromDhcp } from "../src/dhcp/client.ts";
import { formatDhcpPacket } from "../src/dhcp/format.ts";
import { clientMac, decodeDhcpPacket, encodeDhcpPacket } from "../src/dhcp/packet.ts";
import { NetbootError } from "../src/errors.ts";
import { decodeTftpPacket, encodeTftpPacket } from "../src/tftp/packet.ts";
import { fromHex } from "../src/wire/bytes.ts";

const fixtures = join(import.meta.dir, "..", "test", "fixtures");

export interface FuzzResult {
  target: string;
  cases: number;
  /** Cases the decoder accepted (the rest were refused with a typed error). */
  accepted: number;
  /** Untyped exceptions: [case number, message]; reproduce with the same seed and count. */
  findings: Array<[number, string]>;
  seconds: number;
}

/** xorshift32: seeded, reproducible (the fuzzers share it). */
export class Rng {
  #x: number;
  constructor(seed: number) {
    this.#x = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x;
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
}

const hex = (p: string) => fromHex(readFileSync(p, "utf8").split("\n").map((l) => l.replace(/#.*$/, "")).join(" "));

function seeds(target: string): Uint8Array[] {
  if (target === "dhcp") {
    const dir = join(fixtures, "dhcp");
    const bsdp = join(fixtures, "bsdp");
    return [...readdirSync(dir).filter((f) => f.endsWith(".hex")).map((f) => hex(join(dir, f))), ...["inform-list.hex", "inform-select.hex"].map((f) => hex(join(bsdp, f)))];
  }
  if (target === "bsdp") {
    const dir = join(fixtures, "bsdp");
    return readdirSync(dir).filter((f) => f.endsWith(".opt43.hex")).map((f) => hex(join(dir, f)));
  }
  if (target === "tftp") {
    const enc = (p: Parameters<typeof encodeTftpPacket>[0]) => encodeTftpPacket(p);
    return [
      enc({ op: 1, filename: "esxi/b.b00", mode: "octet", options: new Map([["blksize", "1468"], ["tsize", "0"], ["windowsize", "4"], ["timeout", "5"]]) }),
      enc({ op: 1, filename: "http://10.0.0.1/esxi/01-aa-bb-cc-dd-ee-ff/boot.cfg", mode: "netascii", options: new Map() }),
      enc({ op: 4, block: 7 }),
      enc({ op: 5, code: 8, message: "option refused" }),
      enc({ op: 6, options: new Map([["blksize", "65464"], ["tsize", "123456789"]]) }),
      enc({ op: 3, block: 65535, data: new Uint8Array(100).fill(7) }),
    ];
  }
  const dir = join(fixtures, "esxi");
  return readdirSync(dir).filter((f) => /^boot\.cfg\.[\d.]+[-\w]*$/.test(f)).map((f) => new Uint8Array(readFileSync(join(dir, f))));
}

const insert = (b: Uint8Array, at: number, extra: Uint8Array) => {
  const out = new Uint8Array(b.length + extra.length);
  out.set(b.subarray(0, at));
  out.set(extra, at);
  out.set(b.subarray(at), at + extra.length);
  return out;
};

function mutate(rng: Rng, seed: Uint8Array, other: Uint8Array, target: string): Uint8Array {
  let b = new Uint8Array(seed);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(Math.max(1, b.length));
    switch (rng.int(9)) {
      case 0: // bit flips
        for (let k = 1 + rng.int(8); k > 0; k--) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 1: // truncation
        b = b.slice(0, rng.int(b.length + 1));
        break;
      case 2: {
        // random bytes appended or inserted
        b = insert(b, at, new Uint8Array(1 + rng.int(64)).map(() => rng.int(256)));
        break;
      }
      case 3: // a length that lies
        if (b.length) b[at] = rng.int(2) ? 0xff : 0x00;
        break;
      case 4: {
        // option 52 overload (DHCP), or a number field at its edge (TFTP block, BSDP lengths)
        if (target === "dhcp" && b.length > 243) b.set([52, 1, 1 + rng.int(3)], 240);
        else if (b.length > 3) b.set([0xff, 0xff], rng.int(b.length - 1));
        break;
      }
      case 5: {
        // splice with another seed
        const cut = rng.int(other.length + 1);
        const out = new Uint8Array(at + other.length - cut);
        out.set(b.subarray(0, at));
        out.set(other.subarray(cut), at);
        b = out;
        break;
      }
      case 6: {
        // an option nested in itself: option 43 (DHCP) / BSDP sub-option whose value is the whole thing
        if (b.length < 200) {
          const out = new Uint8Array(b.length + 2);
          out[0] = target === "dhcp" ? 43 : 1 + rng.int(20);
          out[1] = Math.min(255, b.length);
          out.set(b, 2);
          if (target !== "dhcp") b = out;
          else if (b.length > 244) b = new Uint8Array([...b.subarray(0, 240), 43, 255, ...b.subarray(240)]);
        }
        break;
      }
      case 7: {
        // absurd numbers as text (TFTP option values, boot.cfg values)
        const text = ["99999999999999999999", "-1", "0", "NaN", "1e308", "0x10", "\u0000", "%00"][rng.int(8)]!;
        b = insert(b, at, new TextEncoder().encode(text));
        break;
      }
      default: // a random byte anywhere
        if (b.length) b[at] = rng.int(256);
    }
  }
  return b;
}

function exercise(target: string, bytes: Uint8Array): boolean {
  switch (target) {
    case "dhcp": {
      const p = decodeDhcpPacket(bytes);
      bootClientFromDhcp(p);
      clientMac(p);
      formatDhcpPacket(p);
      encodeDhcpPacket(p);
      return true;
    }
    case "bsdp":
      encodeBsdpOptions(decodeBsdpOptions(bytes));
      return true;
    case "tftp":
      encodeTftpPacket(decodeTftpPacket(bytes));
      return true;
    default: {
      const cfg = parseBootCfg(new TextDecoder().decode(bytes));
      splitModules(getBootCfgValue(cfg, "modules") ?? "");
      getBootCfgValue(cfg, "kernel");
      return true;
    }
  }
}

/** `also`: one more check per accepted case (the test hands in one that throws, to prove findings are seen). */
/** The mutated cases of one target, seeded: the same seed gives the same cases (the wire fuzzer sends them). */
export function* cases(target: string, count: number, seed = 1): Generator<Uint8Array> {
  const rng = new Rng(seed ^ [...target].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7));
  const pool = seeds(target);
  if (!pool.length) throw new Error(`no seeds for ${target}`);
  for (let i = 0; i < count; i++) yield mutate(rng, pool[rng.int(pool.length)]!, pool[rng.int(pool.length)]!, target);
}

export function fuzz(target: string, count: number, seed = 1, also?: (bytes: Uint8Array) => void): FuzzResult {
  const t0 = performance.now();
  let accepted = 0;
  const findings: Array<[number, string]> = [];
  let i = -1;
  for (const bytes of cases(target, count, seed)) {
    i++;
    try {
      if (exercise(target, bytes)) {
        accepted++;
        also?.(bytes);
      }
    } catch (err) {
      if (err instanceof NetbootError) continue;
      if (findings.length < 20) findings.push([i, `${(err as Error)?.name}: ${(err as Error)?.message} (${Buffer.from(bytes.subarray(0, 48)).toString("hex")}…)`]);
    }
  }
  return { target, cases: count, accepted, findings, seconds: (performance.now() - t0) / 1000 };
}

export const TARGETS = ["dhcp", "bsdp", "tftp", "bootcfg"] as const;

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const value = (f: string) => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const count = Number(value("--count") ?? 1_000_000);
  const seed = Number(value("--seed") ?? 1);
  const targets = value("--target")?.split(",") ?? [...TARGETS];
  let bad = 0;
  for (const t of targets) {
    const r = fuzz(t, count, seed);
    bad += r.findings.length;
    console.log(`${t}: ${r.cases} cases, ${r.accepted} accepted, ${r.cases - r.accepted - r.findings.length} refused with a typed error, ${r.findings.length} untyped exceptions, ${r.seconds.toFixed(1)} s`);
    for (const [i, m] of r.findings) console.log(`  case ${i}: ${m}`);
  }
  process.exit(bad ? 1 : 0);
}
