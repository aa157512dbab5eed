/** Ethernet MAC addresses: parse the spellings people and firmware use, format the ones protocols need. */
import { ConfigError } from "../errors.ts";
import { toHex } from "./bytes.ts";

/** Canonical form: lowercase, colon separated ("aa:bb:cc:dd:ee:ff"). */
export type Mac = string;

/**
 * Accepts "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff" and the PXELINUX/mboot
 * directory form "01-aa-bb-cc-dd-ee-ff" (hardware type 01 = Ethernet). Returns undefined when it is none of them.
 */
export function tryParseMac(s: string): Mac | undefined {
  let t = s.trim().toLowerCase();
  if (/^01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/.test(t)) t = t.slice(3);
  const hex = t.replace(/[:\-.]/g, "");
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  if (t !== hex && !/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/.test(t) && !/^([0-9a-f]{4}\.){2}[0-9a-f]{4}$/.test(t)) return undefined;
  return hex.match(/../g)!.join(":");
}

export function parseMac(s: string): Mac {
  const m = tryParseMac(s);
  if (!m) throw new ConfigError("E_MAC", `not a MAC address: ${JSON.stringify(s)}`);
  return m;
}

export function macFromBytes(b: Uint8Array): Mac {
  return toHex(b.subarray(0, 6), ":");
}

export function macToBytes(mac: Mac): Uint8Array {
  return Uint8Array.from(mac.split(":").map((x) => parseInt(x, 16)));
}

/** "01-aa-bb-cc-dd-ee-ff": the per-host directory name mboot and PXELINUX look for. */
export function macDirName(mac: Mac): string {
  return `01-${mac.replaceAll(":", "-")}`;
}
