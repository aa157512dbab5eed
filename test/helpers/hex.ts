/** Annotated hex fixtures: bytes in hex, "#" starts a comment. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex } from "../../src/wire/bytes.ts";
import { fixtures } from "./golden.ts";

export function readHexFixture(rel: string): Uint8Array {
  const text = readFileSync(join(fixtures, rel), "utf8");
  return fromHex(text.split("\n").map((l) => l.replace(/#.*$/, "")).join(" "));
}

/** The same bytes at a non-zero offset of a larger buffer, as node:dgram hands out pooled buffers. */
export function sliced(bytes: Uint8Array, pad = 37): Uint8Array {
  const big = new Uint8Array(bytes.length + pad * 2).fill(0xaa);
  big.set(bytes, pad);
  return big.subarray(pad, pad + bytes.length);
}
