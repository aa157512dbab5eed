/**
 * The BSDP responder the DHCP server is handed (it never imports this folder): INFORM[LIST] → ACK[LIST],
 * INFORM[SELECT] → ACK[SELECT] or ACK[FAILED], and for a Mac whose selection is remembered, a BSDP OFFER
 * to its DISCOVER so an N-key boot skips the picker. Rules from Apple's own server (bootpd.tproj/bsdpd.c):
 * reply unicast to ciaddr at the client's reply port (sub-option 5, only below 1024) or 68,
 * from port 67; no reply to an INFORM without ciaddr or with a reply port of 1024 and up; option 54 and
 * option 60 "AAPLBSDPC" in every reply; padded to 300 bytes (the DHCP encoder does it). Pure.
 */
import type { BootClient, BootDecision } from "../boot/types.ts";
import { MessageType, Opt } from "../dhcp/constants.ts";
import { optString, optU8, str, type DhcpPacket } from "../dhcp/packet.ts";
import { baseReply } from "../dhcp/reply.ts";
import type { DhcpRequest, Outcome, Responder } from "../dhcp/responders.ts";
import { formatIPv4 } from "../wire/ipv4.ts";
import type { Mac } from "../wire/mac.ts";
import { BSDP_VENDOR_CLASS, BSDP_VERSIONS, BSDP_VERSION_1_1, BsdpMessage } from "./constants.ts";
import { decodeBsdpOptions, encodeBsdpOptions, imageIdText, type BootImage, type BsdpOptions } from "./options.ts";

/** Which image each Mac chose last (selections.ts keeps them on disk). */
export interface Selections {
  get(mac: Mac): number | undefined;
  set(mac: Mac, imageId: number): void;
  delete(mac: Mac): void;
}

export interface BsdpConfig {
  serverIp: number;
  /** One entry per served image (catalog.ts). */
  images: readonly BootImage[];
  defaultImage: number;
  /** --bsdp-priority */
  priority: number;
  selections: Selections;
  /** The boot policy: what this Mac boots (its TFTP path), or why it gets nothing (not listed, boots from disk). */
  decide: (client: BootClient) => BootDecision;
  /** A Mac spoke BSDP (from `address` when it has one): TFTP caps its blocks at 1460. */
  onMac?: (mac: Mac, address: string | undefined) => void;
  /** Full-DHCP mode: the DHCP server answers DISCOVERs and folds BSDP into them (bsdpOfferExtension). */
  foldIntoOffers: boolean;
}

export function isBsdpClient(p: DhcpPacket): boolean {
  return optString(p, Opt.VendorClass)?.startsWith(BSDP_VENDOR_CLASS) ?? false;
}

export function bsdpResponder(cfg: BsdpConfig): Responder {
  const served = (id: number | undefined) => id !== undefined && cfg.images.some((i) => i.id === id);
  return {
    name: "BSDP",
    protocol: "bsdp",
    handle(req: DhcpRequest): Outcome {
      const p = req.packet;
      if (!isBsdpClient(p)) return undefined;
      const type = optU8(p, Opt.MessageType);
      const mac = req.client.mac;
      if (type === MessageType.Discover) {
        cfg.onMac?.(mac, undefined);
        if (cfg.foldIntoOffers) return undefined; // the DHCP server answers, with BSDP folded in
        const selected = cfg.selections.get(mac);
        if (!served(selected)) return { ignore: "Mac DISCOVER, no remembered selection here (the site's DHCP server answers it)" };
        const d = cfg.decide(req.client);
        if (d.action !== "boot") return { ignore: refusal(d), decision: d };
        const offer = reply(cfg, p, MessageType.Offer, { selectedImage: selected });
        offer.ciaddr = 0;
        offer.yiaddr = 0;
        offer.file = d.file;
        return { answers: [{ packet: offer, note: `BSDP OFFER, ${imageIdText(selected!)} remembered, boot ${d.file}`, decision: d, bsdp: "OFFER" }], mac };
      }
      if (type !== MessageType.Inform) return undefined;
      const opt43 = p.options.get(Opt.VendorSpecific);
      if (!opt43) return { ignore: "BSDP INFORM without option 43" };
      let bsdp: BsdpOptions;
      try {
        bsdp = decodeBsdpOptions(opt43);
      } catch (err) {
        return { ignore: `malformed BSDP options: ${(err as Error).message}` };
      }
      // bsdpd.c: no IP, no reply; a reply port that is not privileged is refused; unknown versions ignored.
      if (p.ciaddr === 0) return { ignore: "INFORM with no IP address (ciaddr 0)" };
      if (bsdp.replyPort !== undefined && bsdp.replyPort >= 1024) return { ignore: `reply port ${bsdp.replyPort} is not below 1024` };
      if (bsdp.version !== undefined && !(BSDP_VERSIONS as readonly number[]).includes(bsdp.version)) return { ignore: `BSDP version 0x${bsdp.version.toString(16)} unknown` };
      cfg.onMac?.(mac, formatIPv4(p.ciaddr));
      // Not listed, or booting from its own disk: the Mac's picker shows nothing from us.
      const d = cfg.decide(req.client);
      if (d.action !== "boot") return { ignore: refusal(d), decision: d };
      const clientPort = bsdp.replyPort;

      if (bsdp.messageType === BsdpMessage.List) {
        const selected = cfg.selections.get(mac);
        const ack = reply(cfg, p, MessageType.Ack, {
          messageType: BsdpMessage.List,
          priority: cfg.priority,
          defaultImage: cfg.defaultImage,
          selectedImage: served(selected) ? selected : undefined,
          // The list only for clients that speak 1.1 (BSDP.doc, sub-option 9).
          images: (bsdp.version ?? BSDP_VERSION_1_1) >= BSDP_VERSION_1_1 ? [...cfg.images] : undefined,
        });
        return { answers: [{ packet: ack, note: `BSDP ACK[LIST], ${cfg.images.length} image(s), default ${imageIdText(cfg.defaultImage)}`, clientPort, decision: d, bsdp: "ACK[LIST]" }], mac };
      }
      if (bsdp.messageType === BsdpMessage.Select) {
        if (bsdp.serverIdentifier === undefined) return { ignore: "INFORM[SELECT] without server identifier" };
        if (bsdp.serverIdentifier !== cfg.serverIp) {
          // bsdpd.c: the client chose another server; forget what we remembered for it.
          cfg.selections.delete(mac);
          return { ignore: `INFORM[SELECT] for server ${formatIPv4(bsdp.serverIdentifier)}` };
        }
        const id = bsdp.selectedImage;
        if (!served(id)) {
          const failed = reply(cfg, p, MessageType.Ack, { messageType: BsdpMessage.Failed });
          return { answers: [{ packet: failed, note: `BSDP ACK[FAILED]: ${id === undefined ? "no image selected" : `${imageIdText(id)} is not served here`}`, clientPort, decision: d, bsdp: "ACK[FAILED]" }], mac };
        }
        cfg.selections.set(mac, id!);
        const ack = reply(cfg, p, MessageType.Ack, { messageType: BsdpMessage.Select, selectedImage: id, machineName: machineName(mac) });
        ack.file = d.file;
        return { answers: [{ packet: ack, note: `BSDP ACK[SELECT] ${imageIdText(id!)}, boot ${d.file}`, clientPort, decision: d, bsdp: "ACK[SELECT]" }], mac };
      }
      return { ignore: `BSDP message type ${bsdp.messageType ?? "(none)"} is not for a server` };
    },
  };
}

/**
 * Full-DHCP mode, the seed recipe's ISC class: the OFFER and ACK to a netbooting Mac carry option 60
 * "AAPLBSDPC", option 43 {8: selected image} (the one it chose last, else the default) and the boot file,
 * so an N-key boot goes straight to it. Handed to the DHCP server as its `extend` hook.
 */
export function bsdpOfferExtension(cfg: BsdpConfig): (req: DhcpPacket, reply: DhcpPacket, client: BootClient) => void {
  return (req, reply, client) => {
    if (!isBsdpClient(req)) return;
    const type = optU8(reply, Opt.MessageType);
    if (type !== MessageType.Offer && type !== MessageType.Ack) return;
    if (optU8(req, Opt.MessageType) === MessageType.Inform) return;
    const d = cfg.decide(client);
    if (d.action !== "boot") return;
    const remembered = cfg.selections.get(client.mac);
    const selected = remembered !== undefined && cfg.images.some((i) => i.id === remembered) ? remembered : cfg.defaultImage;
    reply.options.set(Opt.VendorClass, str(BSDP_VENDOR_CLASS));
    reply.options.set(Opt.VendorSpecific, encodeBsdpOptions({ selectedImage: selected }));
    reply.siaddr = cfg.serverIp;
    reply.sname = formatIPv4(cfg.serverIp);
    reply.file = d.file;
  };
}

function refusal(d: Exclude<BootDecision, { action: "boot" }>): string {
  return d.action === "local" ? `boots from its own disk: ${d.reason}` : d.reason;
}

// --- internal ---

/** BSDP.doc Table 6: the DHCP reply header, plus hops, secs and ciaddr copied; siaddr and sname = us; 60 "AAPLBSDPC". */
function reply(cfg: BsdpConfig, req: DhcpPacket, type: number, bsdp: BsdpOptions): DhcpPacket {
  const p = baseReply(req, type, cfg.serverIp);
  p.hops = req.hops;
  p.secs = req.secs;
  p.ciaddr = req.ciaddr;
  p.siaddr = cfg.serverIp;
  p.sname = formatIPv4(cfg.serverIp);
  p.options.set(Opt.VendorClass, str(BSDP_VENDOR_CLASS));
  p.options.set(Opt.VendorSpecific, encodeBsdpOptions(bsdp));
  return p;
}

/** BSDP sub-option 130: Apple's server names clients "NetBoot%03d"; ours says which Mac. */
function machineName(mac: Mac): string {
  return `netboot-${mac.replaceAll(":", "").slice(6)}`;
}
