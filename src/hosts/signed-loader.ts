/**
 * Hosts whose iPXE never started. With UEFI Secure Boot on, the firmware refuses Debian's snponly.efi (it
 * is not signed for it) and the machine moves on to its next boot option or starts over; ESXi's own loader
 * is signed by VMware and runs. So a UEFI PXE client that was sent snponly.efi and then asks DHCP again as
 * firmware (not as iPXE) within two minutes, without ever having asked for /boot.ipxe, is remembered in
 * STATE_DIR/signed-loader.json and gets the signed loader by TFTP from then on (boot/policy.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Firmware } from "../boot/types.ts";
import type { Logger } from "../log.ts";
import { ensureStateDir, writeFileAtomic } from "../state/atomic.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";

/** How long after snponly.efi went out a firmware DHCP request still means "iPXE never started". */
export const IPXE_START_WINDOW_MS = 120_000;

export const SIGNED_LOADER_REASON = "iPXE never started: Secure Boot? using the signed ESXi loader over TFTP";

export interface SignedLoaderMemory {
  readonly path: string;
  /** snponly.efi was sent to this MAC (a finished TFTP transfer). */
  ipxeSent(mac: Mac, now?: number): void;
  /** iPXE is alive on this MAC: it asked DHCP as iPXE or fetched /boot.ipxe. */
  ipxeStarted(mac: Mac): void;
  /** A DHCP request from this MAC; true when it is the one that marks the host. */
  dhcp(mac: Mac, firmware: Firmware, now?: number): boolean;
  /** The reason this MAC gets the signed loader, when it does. */
  reason(mac: Mac): string | undefined;
  forget(mac: Mac): void;
}

interface FileShape {
  version: 1;
  hosts: Record<string, { since: string; reason: string }>;
}

export function openSignedLoaderMemory(dir: string, log: Logger): SignedLoaderMemory {
  const path = join(dir, "signed-loader.json");
  const marked = new Map<Mac, { since: string; reason: string }>();
  const pending = new Map<Mac, number>();
  if (existsSync(path)) {
    try {
      const data = JSON.parse(readFileSync(path, "utf8")) as Partial<FileShape>;
      for (const [m, v] of Object.entries(data.hosts ?? {})) {
        const mac = tryParseMac(m);
        if (mac && typeof v?.reason === "string") marked.set(mac, { since: String(v.since ?? ""), reason: v.reason });
      }
    } catch (err) {
      log.warn(`${path} is unreadable (${(err as Error).message}); starting without remembered Secure Boot hosts`);
    }
  }
  const save = () => {
    ensureStateDir(dir);
    writeFileAtomic(path, JSON.stringify({ version: 1, hosts: Object.fromEntries(marked) } satisfies FileShape, null, 1));
  };
  return {
    path,
    ipxeSent(mac, now = Date.now()) {
      if (!marked.has(mac)) pending.set(mac, now);
    },
    ipxeStarted(mac) {
      pending.delete(mac);
    },
    dhcp(mac, firmware, now = Date.now()) {
      if (firmware === "ipxe") {
        pending.delete(mac);
        return false;
      }
      const sent = pending.get(mac);
      if (sent === undefined || !firmware.startsWith("efi-x64")) return false;
      pending.delete(mac);
      if (now - sent > IPXE_START_WINDOW_MS) return false;
      marked.set(mac, { since: new Date(now).toISOString(), reason: SIGNED_LOADER_REASON });
      save();
      log.warn(`${mac}: ${SIGNED_LOADER_REASON} (remembered in ${path})`);
      return true;
    },
    reason: (mac) => marked.get(mac)?.reason,
    forget(mac) {
      pending.delete(mac);
      if (marked.delete(mac)) save();
    },
  };
}
