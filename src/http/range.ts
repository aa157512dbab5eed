/** HTTP Range requests (RFC 9110 §14): parse a single byte range and resolve it against a size. Pure. */

export type RangeResult =
  /** No usable Range header (absent, not "bytes", malformed, or several ranges): send the whole file. */
  | { kind: "full" }
  | { kind: "partial"; start: number; end: number }
  | { kind: "unsatisfiable" };

/**
 * RFC 9110 §14.1.2: "bytes=first-last", "bytes=first-", "bytes=-suffix". A syntactically invalid header
 * is ignored (§14.2: "a server MAY ignore the Range header field"); several ranges are answered with the
 * whole file, which the RFC allows. `end` is exclusive.
 */
export function resolveRange(header: string | null | undefined, size: number): RangeResult {
  if (!header) return { kind: "full" };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: "full" };
  const specs = m[1]!.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (specs.length !== 1) return { kind: "full" };
  const spec = /^(\d*)\s*-\s*(\d*)$/.exec(specs[0]!);
  if (!spec) return { kind: "full" };
  const [, a, b] = spec;
  if (a === "" && b === "") return { kind: "full" };
  if (a === "") {
    // Suffix range: the last N bytes. "-0" can never be satisfied.
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - n), end: size };
  }
  const first = Number(a);
  const last = b === "" ? size - 1 : Number(b);
  if (b !== "" && last < first) return { kind: "full" }; // invalid: ignore the header
  if (first >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", start: first, end: Math.min(last, size - 1) + 1 };
}

/** RFC 9110 §13.1.5: If-Range holds an entity tag or a date; the range applies only when it still matches. */
export function ifRangeMatches(ifRange: string | null | undefined, etag: string, mtime: Date | undefined): boolean {
  if (!ifRange) return true;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith("W/")) return v === etag; // weak tags never match (strong comparison)
  const t = Date.parse(v);
  return mtime !== undefined && !Number.isNaN(t) && Math.floor(mtime.getTime() / 1000) * 1000 <= t;
}

/** RFC 9110 §13.1.2 If-None-Match (weak comparison): "*" or any listed tag. */
export function noneMatch(header: string | null | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  const strip = (t: string) => t.trim().replace(/^W\//, "");
  return header.split(",").some((t) => strip(t) === strip(etag));
}
