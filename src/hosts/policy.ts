/**
 * The boot policy as every protocol asks it: the host's snapshot made from the host book and the store's
 * record in memory (no round trip), then boot/policy.ts's pure decision. One rule is seen here before the
 * decision: a UEFI firmware asking again after snponly.efi never started is marked for the signed loader
 * (signed-loader.ts), so that request itself already gets it.
 */
import type { BootFilesConfig } from "../boot/files.ts";
import { decideBoot, firmwareOf, type HostSnapshot, type PolicyConfig } from "../boot/policy.ts";
import type { BootClient, BootDecision } from "../boot/types.ts";
import type { Mac } from "../wire/mac.ts";
import { LIMITS } from "../config.ts";
import type { HostEntry } from "./book.ts";
import type { SignedLoaderWatch } from "./signed-loader.ts";
import type { HostStore } from "./store/store.ts";

export interface HostPolicyOptions {
  store: HostStore;
  policy: PolicyConfig;
  signed: SignedLoaderWatch;
  /** The image a Mac's picker id names (bsdp/catalog.ts), when BSDP is answered. */
  bsdpImage?: ((id: number) => string | undefined) | undefined;
  /** The hosts come from a lab file, whose image for a host wins over the Mac's own choice. */
  labImages: boolean;
}

export class HostPolicy {
  readonly config: PolicyConfig;
  readonly #o: HostPolicyOptions;

  constructor(o: HostPolicyOptions) {
    this.#o = o;
    this.config = o.policy;
  }

  /** What the boot policy needs to know of this machine now. */
  snapshot(mac: Mac): HostSnapshot {
    const { store } = this.#o;
    const book = store.book;
    const entry = book.lookup(mac);
    const record = store.get(mac);
    let s: HostSnapshot;
    if (!entry) {
      s = book.unlisted === "deny" ? { refused: book.listed ? "not listed (deny by default)" : "not allowed" } : { image: book.fallback.image, kickstart: book.unlisted === "kickstart" && book.fallback.kickstart !== undefined };
    } else if (entry.mode === "local") {
      s = { localBoot: "mode local: boots from its own disk" };
    } else if (record?.phase === "installed") {
      // Boot-once holds while netboot waits for the installed system, in every mode (mode install too: its next install starts after done).
      s = { localBoot: `installed ${new Date(record.reached.installed ?? 0).toISOString()}; waiting for the installed ESXi to answer (verify: ${entry.verify})` };
    } else if (entry.mode === "once" && record?.phase === "done") {
      s = { localBoot: `installed (done ${new Date(record.doneAt ?? 0).toISOString()}); netboot hosts rearm ${mac} to install again` };
    } else {
      s = { image: entry.image, kickstart: entry.kickstart !== undefined, httpBootDisc: entry.via === "iso-url" };
    }
    s.signedLoader = this.#o.signed.reason(mac);
    // A Mac's own choice in its picker names the image, unless the lab file gives the host one.
    const chosen = record?.bsdp?.image;
    const picked = chosen !== undefined ? this.#o.bsdpImage?.(chosen) : undefined;
    if (picked && !(this.#o.labImages && entry)) s.image = picked;
    return s;
  }

  /** The decision for a request; a firmware request is first looked at by the signed-loader rule. */
  decide(client: BootClient): BootDecision {
    this.#o.signed.dhcp(client.mac, firmwareOf(client));
    return decideBoot(client, this.snapshot(client.mac), this.config);
  }

  /** What /boot.ipxe says to an iPXE client with this MAC (or to one whose MAC this server does not know). */
  ipxe(mac: Mac | undefined): BootDecision {
    const client = (m: Mac): BootClient => ({ mac: m, arch: undefined, vendorClass: undefined, userClass: ["iPXE"], ipxeOptions: true, uuid: undefined, relayed: false });
    if (mac) return this.decide(client(mac));
    return decideBoot(client("00:00:00:00:00:00" as Mac), this.#o.store.book.listed ? { refused: "this server does not know the client's MAC" } : {}, this.config);
  }

  /** A host gets its kickstart only while armed: listed (or --allow-any), not local, not done in once mode. */
  armed(mac: Mac): { entry: HostEntry | undefined; why: string | undefined } {
    const snap = this.snapshot(mac);
    const entry = this.#o.store.book.lookup(mac);
    if (snap.refused) return { entry, why: snap.refused };
    if (snap.localBoot) return { entry, why: snap.localBoot };
    if (!snap.kickstart) return { entry, why: "no kickstart for it (interactive install)" };
    return { entry, why: undefined };
  }

  /** Armed: its next network boot installs with its kickstart. */
  isArmed(mac: Mac): boolean {
    return this.armed(mac).why === undefined;
  }

  /** The image this MAC boots: its own, a Mac's choice, else the first. */
  imageOf(mac: Mac | undefined): string | undefined {
    return mac ? this.snapshot(mac).image : undefined;
  }

  /** What the boot namespace asks the policy (boot/files.ts BootFilesConfig). */
  bootFileHooks(): Pick<BootFilesConfig, "hasKickstart" | "ipxeDecision" | "imageFor" | "bootRefusal"> {
    const { images } = this.config;
    return {
      bootRefusal: (mac) => {
        const s = this.snapshot(mac);
        return s.localBoot ?? s.refused;
      },
      hasKickstart: (mac) => (mac ? this.armed(mac).why === undefined : this.#o.store.book.unlisted === "kickstart"),
      ipxeDecision: (mac) => this.ipxe(mac),
      imageFor: (mac) => images.find((i) => i.name === this.imageOf(mac)) ?? images[0],
    };
  }
}

/** The Macs' picker choices (bsdp/responder.ts Selections), kept in the host store; `count` how many are kept. */
export function storeSelections(store: HostStore): { get(mac: Mac): number | undefined; set(mac: Mac, id: number): void; delete(mac: Mac): void; count(): Promise<number> } {
  return {
    get: (mac) => store.get(mac)?.bsdp?.image,
    set: (mac, id) => void store.bsdp(mac, id),
    delete: (mac) => void store.bsdp(mac, null),
    count: async () => (await store.list()).filter((h) => h.record?.bsdp?.image !== undefined).length,
  };
}

/**
 * The largest TFTP block for a machine: Mac firmware (it spoke BSDP) fails with blocks larger than an
 * Ethernet frame's payload allows; undefined: no cap of its own.
 */
export function tftpBlockCap(store: HostStore | undefined, mac: Mac | undefined): number | undefined {
  return mac && store?.get(mac)?.bsdp ? LIMITS.tftp.macFirmwareBlksize : undefined;
}
