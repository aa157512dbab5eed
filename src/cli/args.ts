/** Argument definitions shared by the commands, and the pure translation from parsed args to config. */
import type { ArgsDef } from "citty";
import type { ServeConfig } from "../config.ts";
import { validateServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { defaultAddress } from "../net/interfaces.ts";
import { logArgs } from "./common.ts";

export const sourceArg = {
  source: { type: "positional", required: true, description: "ESXi installer ISO file", valueHint: "ISO" },
} as const satisfies ArgsDef;

export const serveArgs = {
  ...sourceArg,
  ip: { type: "string", description: "Address clients use to reach this server (default: first non-loopback IPv4)", valueHint: "ADDR" },
  bind: { type: "string", description: "Address to listen on (default: the --ip address; 0.0.0.0 for all)", valueHint: "ADDR" },
  "http-port": { type: "string", default: "80", description: "HTTP port", valueHint: "N" },
  name: { type: "string", description: "Image name in URLs (default: from the ISO file name)", valueHint: "NAME" },
  tftp: { type: "boolean", default: true, description: "Serve TFTP (the same files as HTTP)", negativeDescription: "Do not serve TFTP" },
  "tftp-port": { type: "string", default: "69", description: "TFTP port", valueHint: "N" },
  "tftp-max-blksize": { type: "string", default: "65464", description: "Largest TFTP blksize granted (RFC 2348)", valueHint: "N" },
  "tftp-max-windowsize": { type: "string", default: "64", description: "Largest TFTP windowsize granted (RFC 7440)", valueHint: "N" },
  "cache-mem": { type: "string", default: "512", description: "MiB of memory for hot files (whole files up to a quarter of it; 0: off)", valueHint: "MIB" },
  ks: { type: "string", description: "Kickstart file: served at /NAME/01-<mac>/ks.cfg and put into kernelopt as ks=…", valueHint: "FILE" },
  "keep-cdromboot": { type: "boolean", description: "Keep cdromBoot in kernelopt (dropped by default for network installs)" },
  kernelopt: { type: "string", description: "Extra kernel options appended to kernelopt (e.g. serial console)", valueHint: "OPTS" },
  ...logArgs,
} as const satisfies ArgsDef;

export interface ServeArgsParsed {
  source: string;
  ip?: string | undefined;
  bind?: string | undefined;
  "http-port"?: string | undefined;
  "cache-mem"?: string | undefined;
  tftp?: boolean | undefined;
  "tftp-port"?: string | undefined;
  "tftp-max-blksize"?: string | undefined;
  "tftp-max-windowsize"?: string | undefined;
  name?: string | undefined;
  ks?: string | undefined;
  "keep-cdromboot"?: boolean | undefined;
  kernelopt?: string | undefined;
}

export function parseIntArg(v: string | undefined, flag: string, fallback: number): number {
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new ConfigError("E_ARG", `${flag}: ${JSON.stringify(v)} is not a number`);
  return Number(v);
}

/** Parsed `serve` args → validated config. Pure apart from asking which addresses this machine has. */
export function serveConfigFromArgs(args: ServeArgsParsed, findAddress = defaultAddress): ServeConfig {
  const ip = args.ip ?? findAddress()?.address;
  if (!ip) throw new ConfigError("E_NO_ADDRESS", "this machine has no non-loopback IPv4 address; pass --ip");
  return validateServeConfig({
    source: args.source,
    name: args.name,
    ip,
    bind: args.bind ?? ip,
    http: { port: parseIntArg(args["http-port"], "--http-port", 80) },
    cacheMem: parseIntArg(args["cache-mem"], "--cache-mem", 512) * 1024 * 1024,
    tftp: {
      enabled: args.tftp ?? true,
      port: parseIntArg(args["tftp-port"], "--tftp-port", 69),
      maxBlksize: parseIntArg(args["tftp-max-blksize"], "--tftp-max-blksize", 65464),
      maxWindowsize: parseIntArg(args["tftp-max-windowsize"], "--tftp-max-windowsize", 64),
    },
    boot: { ks: args.ks, keepCdromBoot: args["keep-cdromboot"] ?? false, extraKernelopt: args.kernelopt },
  });
}
