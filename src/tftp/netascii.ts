/** RFC 1350 / RFC 764 netascii: CR LF for a line end, CR NUL for a bare CR. Pure. */

/** Converts local text (LF line ends) to netascii. Existing CR LF pairs are kept as they are. */
export function toNetascii(bytes: Uint8Array): Uint8Array {
  let extra = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) extra++;
    else if (c === 0x0d && bytes[i + 1] !== 0x0a) extra++;
  }
  if (extra === 0) return bytes;
  const out = new Uint8Array(bytes.length + extra);
  let o = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (c === 0x0d && bytes[i + 1] !== 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else out[o++] = c;
  }
  return out;
}
