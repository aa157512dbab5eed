/**
 * Apple's Boot Service Discovery Protocol (BSDP.doc 1.0.8, bootplib/bsdp.h in apple-oss-distributions/bootp):
 * DHCP option 43 sub-options, message types and image id layout.
 */

/** Option 60 a Mac sends ("AAPLBSDPC/i386/iMac14,3") and every reply carries, exactly. */
export const BSDP_VENDOR_CLASS = "AAPLBSDPC";

/** Sub-option codes inside option 43 (bsdp.h enum bsdptag_*). */
export const BsdpTag = {
  MessageType: 1, // u8
  Version: 2, // u16: 0x0101 = 1.1
  ServerIdentifier: 3, // IPv4 (client, in SELECT)
  ServerPriority: 4, // u16, higher wins
  ReplyPort: 5, // u16, must be < 1024
  BootImageListPath: 6, // unused
  DefaultBootImage: 7, // image id
  SelectedBootImage: 8, // image id
  BootImageList: 9, // { id(4) namelen(1) name }*
  NetBoot10Firmware: 10, // flag
  AttributesFilterList: 11, // u16 list
  MaxMessageSize: 12, // u16
  ShadowMountPath: 128,
  ShadowFilePath: 129,
  MachineName: 130, // string
} as const;

export const BsdpMessage = { List: 1, Select: 2, Failed: 3 } as const;
export type BsdpMessage = (typeof BsdpMessage)[keyof typeof BsdpMessage];

/** bsdp.h: BSDP_VERSION_0_0, 1_0, 1_1. Clients with any other version are ignored, as Apple's server does. */
export const BSDP_VERSIONS = [0x0000, 0x0100, 0x0101] as const;
export const BSDP_VERSION_1_1 = 0x0101;

/** boot_image_id: byte 0 bit 7 = install image, bits 6..0 = kind (1 = Mac OS X); bytes 2-3 = index. */
export const IMAGE_INSTALL = 0x80;
export const IMAGE_KIND_MACOSX = 1;
/** Indexes 1..4095 are local to this server; 4096 and up are "global" (load-balanced) ids. */
export const MAX_LOCAL_INDEX = 4095;

/** bsdp.h BSDP_IMAGE_NAME_MAX: 255 - 2*2 - 5. */
export const IMAGE_NAME_MAX = 246;
