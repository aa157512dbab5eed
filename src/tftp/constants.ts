/** TFTP constants (RFC 1350, option extension RFC 2347, blksize 2348, timeout/tsize 2349, windowsize 7440). */
import { LIMITS, RANGES } from "../config.ts";

/** RFC 1350 §5 and RFC 2347: opcodes. */
export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** RFC 1350 appendix, RFC 2347: error codes. */
export const ErrorCode = {
  Undefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTid: 5,
  FileExists: 6,
  NoSuchUser: 7,
  /** RFC 2347: option negotiation refused (by the client, answering our OACK). */
  OptionRefused: 8,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const DEFAULT_BLKSIZE = 512;
/** RFC 2348: "valid values range between 8 and 65464 octets, inclusive". */
export const MIN_BLKSIZE = RANGES.tftpBlksize.min;
export const MAX_BLKSIZE = RANGES.tftpBlksize.max;
/** RFC 2349: timeout in seconds, 1 to 255. */
export const MIN_TIMEOUT = 1;
export const MAX_TIMEOUT = 255;
/** RFC 7440: windowsize 1 to 65535. We grant at most this many blocks in flight. */
export const MAX_WINDOWSIZE = LIMITS.tftp.maxWindowsize;
/** RFC 2347: the request packet (with options) must fit in 512 bytes. */
export const MAX_REQUEST = 512;
