/** Identifier normalisation: what a name in an ISO 9660 directory means to a person or to mboot. */

/**
 * ECMA-119 §7.5: file identifiers carry a ";N" version and, for names without an extension, a
 * trailing "." ("README.;1"). Both are dropped, as every OS that mounts an ISO does.
 */
export function normalizeIdentifier(ident: string): string {
  let s = ident;
  const semi = s.lastIndexOf(";");
  if (semi >= 0 && /^\d*$/.test(s.slice(semi + 1))) s = s.slice(0, semi);
  if (s.endsWith(".") && s.length > 1) s = s.slice(0, -1);
  return s;
}

/** Key for case-insensitive lookup: ESXi's boot.cfg names "/b.b00" while the ISO holds "B.B00;1". */
export function lookupKey(name: string): string {
  return normalizeIdentifier(name).toLowerCase();
}

/** Splits a path on "/" (and "\" from firmware that uses DOS separators); drops empty and "." parts. */
export function splitPath(path: string): string[] {
  return path.split(/[/\\]+/).filter((p) => p !== "" && p !== ".");
}
