/** BSDP option 43 codec: sub-option TLVs, image ids and the boot image list. Pure. */
import { PacketError } from "../errors.ts";
import { ipv4FromBytes, ipv4ToBytes } from "../wire/ipv4.ts";
import { BsdpTag, IMAGE_INSTALL, IMAGE_KIND_MACOSX, IMAGE_NAME_MAX } from "./constants.ts";

export interface BootImage {
  id: number;
  name: string;
}

export interface BsdpOptions {
  messageType?: number | undefined;
  version?: number | undefined;
  serverIdentifier?: number | undefined;
  priority?: number | undefined;
  replyPort?: number | undefined;
  defaultImage?: number | undefined;
  selectedImage?: number | undefined;
  images?: BootImage[] | undefined;
  maxMessageSize?: number | undefined;
  machineName?: string | undefined;
  /** Sub-options not listed above, kept as they came. */
  other?: Array<[number, Uint8Array]> | undefined;
}

const utf8 = new TextDecoder("utf-8");
const enc = new TextEncoder();

/** "Install, Mac OS X, index N" (0x81 00 NN NN): how the seed recipe and most servers describe an image. */
export function installImageId(index: number): number {
  return (((IMAGE_INSTALL | IMAGE_KIND_MACOSX) << 24) | (index & 0xffff)) >>> 0;
}

export function imageIndex(id: number): number {
  return id & 0xffff;
}

export function imageIdText(id: number): string {
  const kinds = ["Mac OS 9", "Mac OS X", "Mac OS X Server", "Hardware Diagnostics"];
  const kind = (id >>> 24) & 0x7f;
  return `[${imageIndex(id)}] ${(id >>> 24) & IMAGE_INSTALL ? "install" : "boot"} ${kinds[kind] ?? `kind ${kind}`} image`;
}

/** Decodes the (joined) option 43 of a BSDP packet. Any order, unknown tags kept. */
export function decodeBsdpOptions(v: Uint8Array): BsdpOptions {
  const o: BsdpOptions = {};
  let i = 0;
  while (i < v.length) {
    const tag = v[i]!;
    if (tag === 0) {
      i++;
      continue;
    }
    if (tag === 255) break;
    if (i + 1 >= v.length) throw new PacketError("E_BSDP_TRUNCATED", `bsdp sub-option ${tag} has no length byte`);
    const len = v[i + 1]!;
    if (i + 2 + len > v.length) throw new PacketError("E_BSDP_TRUNCATED", `bsdp sub-option ${tag} claims ${len} bytes, only ${v.length - i - 2} left`);
    const d = v.subarray(i + 2, i + 2 + len);
    const need = (n: number) => {
      if (d.length !== n) throw new PacketError("E_BSDP_LENGTH", `bsdp sub-option ${tag}: length ${d.length}, want ${n}`);
    };
    const u16 = () => (need(2), (d[0]! << 8) | d[1]!);
    const u32 = () => (need(4), ipv4FromBytes(d));
    switch (tag) {
      case BsdpTag.MessageType:
        need(1);
        o.messageType = d[0];
        break;
      case BsdpTag.Version:
        o.version = u16();
        break;
      case BsdpTag.ServerIdentifier:
        o.serverIdentifier = u32();
        break;
      case BsdpTag.ServerPriority:
        o.priority = u16();
        break;
      case BsdpTag.ReplyPort:
        o.replyPort = u16();
        break;
      case BsdpTag.DefaultBootImage:
        o.defaultImage = u32();
        break;
      case BsdpTag.SelectedBootImage:
        o.selectedImage = u32();
        break;
      case BsdpTag.BootImageList:
        // Several list sub-options (one per option 43 instance when the list is long) add up.
        o.images = [...(o.images ?? []), ...decodeImageList(d)];
        break;
      case BsdpTag.MaxMessageSize:
        o.maxMessageSize = u16();
        break;
      case BsdpTag.MachineName:
        o.machineName = utf8.decode(d);
        break;
      default:
        (o.other ??= []).push([tag, d.slice()]);
    }
    i += 2 + len;
  }
  return o;
}

/**
 * Encodes sub-options in the order Apple's server writes them. The image list is cut into several list
 * sub-options that each fit an option 43 instance (bsdpd.c does this), so that the DHCP encoder can put
 * them in separate instances without cutting one in half.
 */
export function encodeBsdpOptions(o: BsdpOptions): Uint8Array {
  const parts: number[] = [];
  const put = (tag: number, data: Uint8Array) => {
    parts.push(tag, data.length, ...data);
  };
  const u16 = (v: number) => Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
  if (o.messageType !== undefined) put(BsdpTag.MessageType, Uint8Array.of(o.messageType));
  if (o.version !== undefined) put(BsdpTag.Version, u16(o.version));
  if (o.serverIdentifier !== undefined) put(BsdpTag.ServerIdentifier, ipv4ToBytes(o.serverIdentifier));
  if (o.priority !== undefined) put(BsdpTag.ServerPriority, u16(o.priority));
  if (o.replyPort !== undefined) put(BsdpTag.ReplyPort, u16(o.replyPort));
  if (o.defaultImage !== undefined) put(BsdpTag.DefaultBootImage, ipv4ToBytes(o.defaultImage));
  if (o.selectedImage !== undefined) put(BsdpTag.SelectedBootImage, ipv4ToBytes(o.selectedImage));
  if (o.images !== undefined) for (const chunk of imageListChunks(o.images)) put(BsdpTag.BootImageList, chunk);
  if (o.maxMessageSize !== undefined) put(BsdpTag.MaxMessageSize, u16(o.maxMessageSize));
  if (o.machineName !== undefined) put(BsdpTag.MachineName, utf8Prefix(o.machineName, 255));
  for (const [tag, d] of o.other ?? []) put(tag, d);
  return Uint8Array.from(parts);
}

// --- internal ---

function decodeImageList(d: Uint8Array): BootImage[] {
  const out: BootImage[] = [];
  let i = 0;
  while (i < d.length) {
    if (i + 5 > d.length) throw new PacketError("E_BSDP_IMAGE", `bsdp image list: entry at ${i} is cut short`);
    const id = ipv4FromBytes(d, i);
    const n = d[i + 4]!;
    if (i + 5 + n > d.length) throw new PacketError("E_BSDP_IMAGE", `bsdp image list: name of ${n} bytes at ${i} runs past the list`);
    out.push({ id, name: utf8.decode(d.subarray(i + 5, i + 5 + n)) });
    i += 5 + n;
  }
  return out;
}

/** Image list entries packed into chunks of at most 253 bytes (a 255-byte sub-option), entries never split. */
function imageListChunks(images: readonly BootImage[]): Uint8Array[] {
  const chunks: number[][] = [[]];
  for (const img of images) {
    const name = utf8Prefix(img.name, IMAGE_NAME_MAX);
    const entry = [...ipv4ToBytes(img.id), name.length, ...name];
    if (chunks[chunks.length - 1]!.length + entry.length > 253) chunks.push([]);
    chunks[chunks.length - 1]!.push(...entry);
  }
  return chunks.map((c) => Uint8Array.from(c));
}

/** At most `max` bytes of UTF-8, never ending inside a character. */
function utf8Prefix(s: string, max: number): Uint8Array {
  const b = enc.encode(s);
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}
