/** What `netboot serve` runs with: one object, per-service sections, validated in one place. */
import { ConfigError } from "./errors.ts";
import { isValidImageName } from "./boot/image.ts";
import { formatIPv4, parseIPv4 } from "./wire/ipv4.ts";

export interface ServeConfig {
  /** ISO file (later also a directory, URL or zip). */
  source: string;
  /** Image name in URLs; derived from the source when absent. */
  name: string | undefined;
  /** Address clients are told to use (boot.cfg prefix, DHCP siaddr). */
  ip: string;
  /** Address the HTTP/TFTP sockets listen on. */
  bind: string;
  http: { port: number };
  tftp: {
    enabled: boolean;
    port: number;
    /** Largest blksize granted (RFC 2348 allows up to 65464; Mac firmware needs 1460 or less). */
    maxBlksize: number;
    /** Largest RFC 7440 windowsize granted. */
    maxWindowsize: number;
  };
  /** Bytes of hot small files kept in memory (0: none); see files/cache.ts. */
  cacheMem: number;
  boot: {
    /** Kickstart file served at NAME/01-<mac>/ks.cfg and put into kernelopt. */
    ks: string | undefined;
    keepCdromBoot: boolean;
    extraKernelopt: string | undefined;
  };
}

export function validatePort(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError("E_PORT", `${what}: ${n} is not a port number (0-65535)`);
  return n;
}

export function validateServeConfig(c: ServeConfig): ServeConfig {
  if (!c.source) throw new ConfigError("E_SOURCE", "no image source given (an ESXi ISO file)");
  if (c.name !== undefined && !isValidImageName(c.name)) {
    throw new ConfigError("E_NAME", `--name ${JSON.stringify(c.name)}: use letters, digits, ".", "_" and "-" (and not a 01-<mac> name)`);
  }
  c.ip = formatIPv4(parseIPv4(c.ip, "--ip address"));
  c.bind = formatIPv4(parseIPv4(c.bind, "--bind address"));
  validatePort(c.http.port, "--http-port");
  validatePort(c.tftp.port, "--tftp-port");
  if (!Number.isInteger(c.tftp.maxBlksize) || c.tftp.maxBlksize < 8 || c.tftp.maxBlksize > 65464) {
    throw new ConfigError("E_BLKSIZE", `--tftp-max-blksize: ${c.tftp.maxBlksize} is outside 8..65464 (RFC 2348)`);
  }
  if (!Number.isInteger(c.tftp.maxWindowsize) || c.tftp.maxWindowsize < 1 || c.tftp.maxWindowsize > 65535) {
    throw new ConfigError("E_WINDOWSIZE", `--tftp-max-windowsize: ${c.tftp.maxWindowsize} is outside 1..65535 (RFC 7440)`);
  }
  if (!Number.isInteger(c.cacheMem) || c.cacheMem < 0) throw new ConfigError("E_CACHE", `--cache-mem: ${c.cacheMem} is not a size`);
  return c;
}

/** "http://10.0.0.1" or "http://10.0.0.1:8080": what goes in front of every URL we hand out. */
export function httpBase(ip: string, port: number): string {
  return port === 80 ? `http://${ip}` : `http://${ip}:${port}`;
}
