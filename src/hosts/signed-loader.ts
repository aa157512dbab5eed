/**
 * Hosts whose iPXE never started. With UEFI Secure Boot on, the firmware refuses Debian's snponly.efi (it
 * is not signed for it) and the machine moves on to its next boot option or starts over; ESXi's own loader
 * is signed by VMware and runs. So a UEFI PXE client that was sent snponly.efi and then asks DHCP again as
 * firmware (not as iPXE) within LIMITS.hosts.ipxeStartWindowMs, without ever having asked for /boot.ipxe,
 * is marked in the host store and gets the signed loader by TFTP from then on (boot/policy.ts).
 *
 * What was sent and when is followed on the bus (tftp.end of snponly.efi, http.end of the iPXE script);
 * the DHCP request that tells is seen before it is answered (`dhcp`, from the decision path), so that
 * very request already gets the signed loader.
 */
import type { Firmware } from "../boot/types.ts";
import { IPXE_PATH, LIMITS } from "../config.ts";
import type { EventBus } from "../events.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import type { HostStore } from "./store/store.ts";

export const SIGNED_LOADER_REASON = "iPXE never started: Secure Boot? using the signed ESXi loader over TFTP";

export class SignedLoaderWatch {
  readonly #store: HostStore;
  readonly #log: Logger;
  /** snponly.efi sent to this MAC, when (a finished TFTP transfer); not yet started. */
  readonly #pending = new Map<Mac, number>();
  readonly #off: () => void;

  constructor(opts: { store: HostStore; bus: EventBus; log: Logger }) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#off = opts.bus.subscribe((e) => {
      if (!e.mac) return;
      if (e.type === "tftp.end" && e.outcome === "sent" && e.kind === "nbp" && e.file.replace(/^\/+/, "").toLowerCase() === IPXE_PATH.efi) this.ipxeSent(e.mac);
      if (e.type === "http.end" && e.kind === "script") this.ipxeStarted(e.mac);
    });
  }

  close(): void {
    this.#off();
  }

  /** snponly.efi was sent to this MAC. */
  ipxeSent(mac: Mac, now = Date.now()): void {
    if (!this.#store.get(mac)?.signedLoader) this.#pending.set(mac, now);
  }

  /** iPXE is alive on this MAC: it asked DHCP as iPXE or fetched /boot.ipxe. */
  ipxeStarted(mac: Mac): void {
    this.#pending.delete(mac);
  }

  /** A DHCP request from this MAC, before it is answered; true when it is the one that marks the host. */
  dhcp(mac: Mac, firmware: Firmware, now = Date.now()): boolean {
    if (firmware === "ipxe") {
      this.#pending.delete(mac);
      return false;
    }
    const sent = this.#pending.get(mac);
    if (sent === undefined || !firmware.startsWith("efi-x64")) return false;
    this.#pending.delete(mac);
    if (now - sent > LIMITS.hosts.ipxeStartWindowMs) return false;
    void this.#store.signedLoader(mac, SIGNED_LOADER_REASON);
    this.#log.warn(`${mac}: ${SIGNED_LOADER_REASON} (remembered in ${this.#store.where})`);
    return true;
  }

  /** The reason this MAC gets the signed loader, when it does. */
  reason(mac: Mac): string | undefined {
    return this.#store.get(mac)?.signedLoader?.reason;
  }
}
