/** Request paths from the network → safe path parts inside a tree. Nothing here ever leaves the tree. */

export type PathCheck = { ok: true; parts: string[] } | { ok: false; reason: string };

export interface PathRules {
  /** HTTP: %XX escapes are decoded once, per segment; an encoded "/" or "\" is refused. */
  percentDecode: boolean;
  /** TFTP clients (PXE ROMs, Windows) use "\" as a separator; in HTTP a backslash is refused. */
  backslash: "separator" | "refuse";
}

export const httpPathRules: PathRules = { percentDecode: true, backslash: "refuse" };
export const tftpPathRules: PathRules = { percentDecode: false, backslash: "separator" };

/**
 * Splits and checks a request path. Refused: NUL bytes, ".." segments (also as %2e%2e), encoded
 * separators (%2f, %5c), control characters, and literal backslashes where the rules say so.
 * Empty and "." segments are dropped.
 */
export function checkRequestPath(raw: string, rules: PathRules): PathCheck {
  if (raw.includes("\0")) return { ok: false, reason: "NUL byte in path" };
  if (rules.backslash === "refuse" && raw.includes("\\")) return { ok: false, reason: "backslash in path" };
  const rawParts = (rules.backslash === "separator" ? raw.replaceAll("\\", "/") : raw).split("/");
  const parts: string[] = [];
  for (const rawPart of rawParts) {
    let part = rawPart;
    if (rules.percentDecode) {
      if (/%(2f|5c|00)/i.test(part)) return { ok: false, reason: "encoded separator or NUL in path" };
      try {
        part = decodeURIComponent(part);
      } catch {
        return { ok: false, reason: "malformed percent escape in path" };
      }
    }
    // Control characters have no business in a file name and confuse logs.
    if (/[\u0000-\u001f\u007f]/.test(part)) return { ok: false, reason: "control character in path" };
    if (part === "" || part === ".") continue;
    if (part === "..") return { ok: false, reason: "path tries to leave the image (..)" };
    parts.push(part);
  }
  return { ok: true, parts };
}
