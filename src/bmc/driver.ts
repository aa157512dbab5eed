/**
 * One way to drive a machine, whatever its BMC speaks: power, the next boot once, the media. Redfish,
 * IPMI and Wake-on-LAN each implement it (redfish.ts, ipmi.ts, wol.ts); `netboot power` and `netboot
 * reinstall` only see this. No secret crosses it: `name` is the BMC's address, never its credentials.
 */

/** Where the next boot goes: the network by PXE, UEFI HTTP boot of a URL, the virtual CD, the disk. */
export type BootTarget = "pxe" | "http" | "cd" | "disk";
export const BOOT_TARGETS: readonly BootTarget[] = ["pxe", "http", "cd", "disk"];

export type PowerState = "on" | "off" | "unknown";
export type PowerOp = "on" | "off" | "cycle";

/** What the BMC says the next boot is, read back after setting it (it may keep only part of it). */
export interface BootSetting {
  /** The target it kept, in netboot's words where it maps, else the BMC's own word. */
  target: string;
  /** Next boot only (true), every boot (false), or not said (undefined). */
  once: boolean | undefined;
  /** UEFI (true), legacy BIOS (false), or not said. */
  uefi: boolean | undefined;
  uri?: string | undefined;
  /** The BMC's own words or bytes, for the one line and the report. */
  raw: string;
}

export interface Driver {
  readonly kind: "redfish" | "ipmi" | "wol";
  /** "Redfish https://10.0.0.5", "IPMI 10.0.0.6:623": where, never who. */
  readonly name: string;
  /** Requests sent to the BMC so far (the report's round trips). */
  readonly roundTrips: number;
  /** The BMC's last answer, in words (the report's "BMC said"). */
  readonly lastAnswer: string;
  powerState(): Promise<PowerState>;
  power(op: PowerOp): Promise<void>;
  /** Sets the next boot once, then reads it back; `uri` for http (the machine's own ISO), `media` for cd. */
  setBootOnce(target: BootTarget, opts?: { uri?: string | undefined }): Promise<BootSetting>;
  readBoot(): Promise<BootSetting>;
  /** Back to the machine's own boot order. */
  clearBoot(): Promise<void>;
  /** Virtual media (Redfish): insert an ISO by URL, eject it. Undefined where the BMC has none. */
  insertMedia?(url: string): Promise<void>;
  ejectMedia?(): Promise<void>;
  close(): Promise<void>;
}

/** The line said when a BMC kept less than was asked: what it kept, in its own words. */
export function describeKept(asked: { target: BootTarget; uri?: string | undefined }, kept: BootSetting): string | undefined {
  const missing: string[] = [];
  if (kept.target !== asked.target) missing.push(`the target (asked ${asked.target}, kept ${kept.target})`);
  if (kept.once === false) missing.push("next boot only (it kept every boot)");
  else if (kept.once === undefined) missing.push("next boot only (not said)");
  if (kept.uefi === false) missing.push("UEFI (it kept legacy BIOS)");
  else if (kept.uefi === undefined) missing.push("UEFI (not said)");
  if (asked.uri && kept.uri !== undefined && kept.uri !== asked.uri) missing.push(`the URI (kept ${kept.uri || "none"})`);
  return missing.length ? `kept ${kept.raw}: not ${missing.join(", ")}` : undefined;
}
