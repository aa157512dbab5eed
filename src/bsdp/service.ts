/**
 * BSDP for this run: the Macs' picker (one entry per image, catalog.ts), the responder the DHCP server is
 * handed first, and, in full-DHCP mode, the hook that folds a Mac's choice into its OFFER and ACK.
 */
import type { BootFiles } from "../boot/files.ts";
import type { BootImage } from "../boot/image.ts";
import type { BootClient, BootDecision } from "../boot/types.ts";
import type { ServeConfig } from "../config.ts";
import type { Responder } from "../dhcp/responders.ts";
import type { DhcpPacket } from "../dhcp/packet.ts";
import type { Logger } from "../log.ts";
import type { Mac } from "../wire/mac.ts";
import { bsdpCatalog } from "./catalog.ts";
import type { BootImage as PickerEntry } from "./options.ts";
import { bsdpOfferExtension, bsdpResponder, type Selections } from "./responder.ts";

export interface Bsdp {
  /** What Macs see in their picker. */
  readonly entries: readonly PickerEntry[];
  readonly responder: Responder;
  /** For the DHCP server's OFFER and ACK (full-DHCP mode). */
  readonly extension: (req: DhcpPacket, reply: DhcpPacket, client: BootClient) => void;
  /** The image a picker id names. */
  imageOf(id: number): string | undefined;
  /** Says what Macs see (and how many choices are remembered, where), and warns when what they are told to boot is not served. */
  describe(files: BootFiles, log: Logger, remembered: { count: number; where: string }): Promise<void>;
}

export function bsdpService(o: {
  images: readonly BootImage[];
  serverIp: number;
  config: ServeConfig["bsdp"];
  selections: Selections;
  decide: (client: BootClient) => BootDecision;
  /** A Mac spoke BSDP (from `address` when it has one). */
  onMac: (mac: Mac, address: string | undefined) => void;
  foldIntoOffers: boolean;
}): Bsdp {
  const entries = bsdpCatalog(o.images.map((i) => ({ name: i.name, label: i.esxi?.displayName ?? i.name })));
  const cfg = { serverIp: o.serverIp, images: entries, defaultImage: entries[0]!.id, priority: o.config.priority, selections: o.selections, decide: o.decide, onMac: o.onMac, foldIntoOffers: o.foldIntoOffers };
  return {
    entries,
    responder: bsdpResponder(cfg),
    extension: bsdpOfferExtension(cfg),
    imageOf: (id) => o.images[entries.findIndex((e) => e.id === id)]?.name,
    async describe(files, log, remembered) {
      const found = await files.resolve(o.config.bootFile.split("/"));
      if (found.result !== "file") log.warn(`BSDP: Macs are told to boot ${o.config.bootFile}, which is not served (${found.result === "missing" ? found.reason : "not a file"}); see --mac-bootfile`);
      log.info(`BSDP: Macs see ${entries.map((b) => `"${b.name}"`).join(", ")}, priority ${o.config.priority}, boot ${o.config.bootFile}; ${remembered.count} remembered selection(s) in ${remembered.where}`);
    },
  };
}
