/** Bounds-checked byte cursors over Uint8Array. Always honour byteOffset: dgram hands out pooled buffers. */
import { PacketError } from "../errors.ts";

export class ByteReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos: number;
  readonly #what: string;

  constructor(bytes: Uint8Array, what = "packet", pos = 0) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = pos;
    this.#what = what;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.bytes.length) {
      throw new PacketError("E_TRUNCATED", `${this.#what} truncated: ${field} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
    }
  }

  u8(field = "u8"): number {
    this.need(1, field);
    return this.view.getUint8(this.pos++);
  }

  u16(field = "u16"): number {
    this.need(2, field);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field = "u32"): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A view (no copy) of the next n bytes. */
  take(n: number, field = "bytes"): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number, field = "skip"): void {
    this.need(n, field);
    this.pos += n;
  }

  rest(): Uint8Array {
    return this.take(this.remaining);
  }
}

export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  length = 0;

  constructor(capacity = 512) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #grow(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#grow(1);
    this.#view.setUint8(this.length++, v);
    return this;
  }

  u16(v: number): this {
    this.#grow(2);
    this.#view.setUint16(this.length, v);
    this.length += 2;
    return this;
  }

  u32(v: number): this {
    this.#grow(4);
    this.#view.setUint32(this.length, v >>> 0);
    this.length += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  zeros(n: number): this {
    this.#grow(n);
    this.#buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }

  /** Fixed-width field: bytes truncated or zero-padded to n. */
  fixed(b: Uint8Array, n: number): this {
    const part = b.subarray(0, n);
    this.bytes(part);
    return this.zeros(n - part.length);
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export function ascii(s: string): Uint8Array {
  return encoder.encode(s);
}

export function text(b: Uint8Array): string {
  return decoder.decode(b);
}

/** Bytes up to the first NUL, as text (BOOTP sname/file fields). */
export function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return text(end < 0 ? b : b.subarray(0, end));
}

export function toHex(b: Uint8Array, sep = ""): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(sep);
}

export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/[\s:.-]/g, "");
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new PacketError("E_HEX", `not hex: ${s.slice(0, 40)}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
