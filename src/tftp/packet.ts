/** TFTP packet codec (RFC 1350, 2347–2349, 7440): bytes ⇄ typed packets, no I/O. */
import { PacketError } from "../errors.ts";
import { ByteReader, ByteWriter } from "../wire/bytes.ts";
import { MAX_REQUEST, Opcode } from "./constants.ts";

export type TftpPacket =
  | { op: typeof Opcode.RRQ | typeof Opcode.WRQ; filename: string; mode: string; options: Map<string, string> }
  | { op: typeof Opcode.DATA; block: number; data: Uint8Array }
  | { op: typeof Opcode.ACK; block: number }
  | { op: typeof Opcode.ERROR; code: number; message: string }
  | { op: typeof Opcode.OACK; options: Map<string, string> };

const latin1 = new TextDecoder("latin1");

export function decodeTftpPacket(bytes: Uint8Array): TftpPacket {
  const r = new ByteReader(bytes, "tftp packet");
  const op = r.u16("opcode");
  switch (op) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      if (bytes.length > MAX_REQUEST) throw new PacketError("E_TFTP_REQUEST", `request of ${bytes.length} bytes (limit ${MAX_REQUEST})`);
      const strings = cStrings(r.rest(), "request");
      if (strings.length < 2) throw new PacketError("E_TFTP_REQUEST", "request lacks filename or mode");
      const [filename, mode, ...opts] = strings as [string, string, ...string[]];
      if (filename === "") throw new PacketError("E_TFTP_REQUEST", "empty filename");
      return { op, filename, mode: mode.toLowerCase(), options: optionMap(opts) };
    }
    case Opcode.DATA:
      return { op, block: r.u16("block"), data: r.rest() };
    case Opcode.ACK:
      return { op, block: r.u16("block") };
    case Opcode.ERROR: {
      const code = r.u16("error code");
      const rest = r.rest();
      const end = rest.indexOf(0);
      return { op, code, message: latin1.decode(end < 0 ? rest : rest.subarray(0, end)) };
    }
    case Opcode.OACK:
      return { op, options: optionMap(cStrings(r.rest(), "oack")) };
    default:
      throw new PacketError("E_TFTP_OPCODE", `unknown opcode ${op}`);
  }
}

export function encodeTftpPacket(p: TftpPacket): Uint8Array {
  const w = new ByteWriter(p.op === Opcode.DATA ? p.data.length + 4 : 64);
  w.u16(p.op);
  switch (p.op) {
    case Opcode.RRQ:
    case Opcode.WRQ:
      w.bytes(cString(p.filename)).bytes(cString(p.mode));
      for (const [k, v] of p.options) w.bytes(cString(k)).bytes(cString(v));
      break;
    case Opcode.DATA:
      w.u16(p.block).bytes(p.data);
      break;
    case Opcode.ACK:
      w.u16(p.block);
      break;
    case Opcode.ERROR:
      w.u16(p.code).bytes(cString(p.message));
      break;
    case Opcode.OACK:
      for (const [k, v] of p.options) w.bytes(cString(k)).bytes(cString(v));
      break;
  }
  return w.finish();
}

/** A DATA packet written into a fresh buffer: 4-byte header, then the payload copied once. */
export function dataPacket(block: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = 0;
  out[1] = Opcode.DATA;
  out[2] = (block >>> 8) & 0xff;
  out[3] = block & 0xff;
  out.set(payload, 4);
  return out;
}

export function errorPacket(code: number, message: string): Uint8Array {
  return encodeTftpPacket({ op: Opcode.ERROR, code, message });
}

// --- internal ---

/** NUL-terminated strings; the last one must be terminated too (RFC 1350 §5). */
function cStrings(b: Uint8Array, what: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0) {
      out.push(latin1.decode(b.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start !== b.length) throw new PacketError("E_TFTP_STRING", `${what}: last string is not NUL-terminated`);
  return out;
}

/** RFC 2347: option names are case-insensitive; a dangling name without value is dropped. */
function optionMap(parts: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const k = parts[i]!.toLowerCase();
    if (!m.has(k)) m.set(k, parts[i + 1]!);
  }
  return m;
}

function cString(s: string): Uint8Array {
  const out = new Uint8Array(s.length + 1);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}
