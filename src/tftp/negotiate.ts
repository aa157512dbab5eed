/** Option negotiation (RFC 2347): what the client asked, what we grant, and the OACK that says so. Pure. */
import { LIMITS } from "../config.ts";
import { DEFAULT_BLKSIZE, MAX_BLKSIZE, MAX_TIMEOUT, MAX_WINDOWSIZE, MIN_BLKSIZE, MIN_TIMEOUT } from "./constants.ts";

export interface Granted {
  blksize: number;
  windowsize: number;
  /** Seconds, when the client asked for one (RFC 2349); our own adaptive timer otherwise. */
  timeout: number | undefined;
  /** Options to put in the OACK, in the client's order; empty means "no OACK, send DATA 1". */
  oack: Map<string, string>;
}

/**
 * The largest blksize this platform's UDP sockets can send: macOS caps a datagram at 9,216 bytes by default
 * (xnu bsd/netinet/udp_usrreq.c, udp_sendspace; a larger send fails with EMSGSIZE), which leaves 9,212
 * after TFTP's 4-byte header. Linux sends up to the RFC 2348 maximum.
 */
export function platformMaxBlksize(platform: string): number {
  return platform === "darwin" ? LIMITS.tftp.darwinMaxDatagram - 4 : MAX_BLKSIZE;
}

/**
 * tftpblksize= for a boot.cfg the loader reads over TFTP: LIMITS.tftp.bootCfgBlksize, or less where
 * --tftp-max-blksize or the platform says so; none when TFTP is off.
 */
export function bootCfgBlksize(tftp: { enabled: boolean; maxBlksize: number }, platform: string = process.platform): number | undefined {
  return tftp.enabled ? Math.min(tftp.maxBlksize, LIMITS.tftp.bootCfgBlksize, platformMaxBlksize(platform)) : undefined;
}

export interface Limits {
  /** --tftp-max-blksize, and lower for clients known to need it (Mac firmware: 1460). */
  maxBlksize: number;
  maxWindowsize?: number;
}

/**
 * RFC 2347: the server acknowledges the options it accepts and silently drops the others.
 * blksize above our limit is lowered to the limit (RFC 2348 lets the server answer a smaller value);
 * values that are not numbers or out of range are treated as not asked for. tsize in a RRQ is 0 and we
 * answer the real size (RFC 2349).
 */
export function negotiate(requested: ReadonlyMap<string, string>, size: number, limits: Limits): Granted {
  const oack = new Map<string, string>();
  let blksize = DEFAULT_BLKSIZE;
  let windowsize = 1;
  let timeout: number | undefined;
  const maxWin = Math.max(1, Math.min(limits.maxWindowsize ?? MAX_WINDOWSIZE, 65535));
  const maxBlk = Math.max(MIN_BLKSIZE, Math.min(limits.maxBlksize, MAX_BLKSIZE));
  for (const [name, value] of requested) {
    const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
    switch (name) {
      case "blksize":
        if (n >= MIN_BLKSIZE && n <= MAX_BLKSIZE) {
          blksize = Math.min(n, maxBlk);
          oack.set("blksize", String(blksize));
        }
        break;
      case "tsize":
        // curl (7.88) rejects an OACK with "tsize 0" as invalid and aborts; for an empty file the option is
        // left out, which RFC 2347 allows, and the client sees the size from the single empty block.
        if (Number.isFinite(n) && size > 0) oack.set("tsize", String(size));
        break;
      case "timeout":
        if (n >= MIN_TIMEOUT && n <= MAX_TIMEOUT) {
          timeout = n;
          oack.set("timeout", String(n));
        }
        break;
      case "windowsize":
        if (n >= 1 && n <= 65535) {
          windowsize = Math.min(n, maxWin);
          oack.set("windowsize", String(windowsize));
        }
        break;
      default:
        break; // unknown options are ignored (RFC 2347)
    }
  }
  return { blksize, windowsize, timeout, oack };
}
