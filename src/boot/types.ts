/** The protocol-neutral view of a client and the one answer the boot policy gives every protocol. */
import type { Mac } from "../wire/mac.ts";
import type { BootImage } from "./image.ts";

/** What firmware a client runs, as far as choosing a bootloader goes. */
export type Firmware =
  | "bios" // x86 BIOS PXE (option 93 = 0)
  | "efi-x64" // x86-64 UEFI PXE (93 = 7 or 9)
  | "efi-x64-http" // x86-64 UEFI HTTP boot (vendor class HTTPClient, 93 = 16)
  | "efi-arm64" // ARM64 UEFI PXE (93 = 11)
  | "efi-arm64-http" // ARM64 UEFI HTTP boot (93 = 19)
  | "efi-ia32" // 32-bit UEFI (93 = 6): ESXi has no loader for it
  | "ipxe" // iPXE (user class "iPXE" or option 175): it takes a script over HTTP
  | "apple" // Intel Mac firmware speaking BSDP
  | "unknown";

export interface BootClient {
  mac: Mac;
  /** RFC 4578 option 93, first value. */
  arch: number | undefined;
  /** Option 60 as sent ("PXEClient:Arch:00007:UNDI:003000", "HTTPClient:…", "AAPLBSDPC/i386/iMac14,3"). */
  vendorClass: string | undefined;
  /** Option 77 entries (RFC 3004), e.g. ["iPXE"]. */
  userClass: readonly string[];
  /** Option 175 present (iPXE's own encapsulated options). */
  ipxeOptions: boolean;
  /** RFC 4578 option 97, as a GUID string, when sent. */
  uuid: string | undefined;
  /** Arrived through a DHCP relay (giaddr set). */
  relayed: boolean;
}

/**
 * Why a request gets no boot answer: not a network-boot request at all (a plain DHCP client), refused by
 * the host list, no image served, the image or the server lacks what this firmware needs, or a firmware
 * ESXi has no loader for.
 */
export type Decline = "not-netboot" | "refused" | "no-image" | "unbootable" | "unsupported";

/** What the policy answered a machine, as one code: the screen, the table and the page show it. */
export type Verdict = "boot" | "local" | Decline;

export type BootDecision =
  | {
      action: "boot";
      firmware: Firmware;
      image: BootImage;
      /** How the client fetches `file`: a TFTP path, or an http URL. */
      transport: "tftp" | "http";
      /** TFTP path ("ipxe/snponly.efi") or full URL ("http://10.0.0.1/esxi/mboot.efi"). */
      file: string;
      /** What option 60 of the reply says: PXE clients want "PXEClient", UEFI HTTP boot "HTTPClient". */
      vendorClass: "PXEClient" | "HTTPClient";
      /** A line for the log: which row of the policy decided. */
      why: string;
    }
  /** No boot answer; `declined` why, as a code (the reason says it in words). */
  | { action: "ignore"; firmware: Firmware; reason: string; declined: Decline }
  /** Boot from its own disk: no boot answer, and an iPXE that asks gets a script that exits. */
  | { action: "local"; firmware: Firmware; reason: string };
