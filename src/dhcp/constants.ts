/** DHCP constants: ports, BOOTP fields, message types and option codes (RFC 2131, 2132, 3004, 4578, 3046). */

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** PXE spec 2.1: boot server (proxyDHCP "BINL") port. */
export const PXE_PORT = 4011;

/** RFC 2131 §2: BOOTP header (236 bytes), then the magic cookie. */
export const BOOTP_HEADER = 236;
export const MAGIC_COOKIE = Uint8Array.of(99, 130, 83, 99);
/** RFC 951 / RFC 1542: replies are padded to the 300-byte BOOTP minimum; some PXE ROMs insist. */
export const MIN_PACKET = 300;

export const Op = { Request: 1, Reply: 2 } as const;
export type Op = (typeof Op)[keyof typeof Op];

/** RFC 2131 §2: the broadcast bit of `flags`. */
export const FLAG_BROADCAST = 0x8000;

/** RFC 2132 §9.6: DHCP message types (option 53). */
export const MessageType = { Discover: 1, Offer: 2, Request: 3, Decline: 4, Ack: 5, Nak: 6, Release: 7, Inform: 8 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const messageTypeName = (t: number | undefined): string =>
  (Object.entries(MessageType).find(([, v]) => v === t)?.[0] ?? `type ${t}`).toUpperCase();

/** Option codes used here (RFC 2132 unless noted); the value type is in the comment. */
export const Opt = {
  Pad: 0,
  SubnetMask: 1, // IPv4
  Router: 3, // IPv4 list
  DomainServer: 6, // IPv4 list
  HostName: 12, // string
  DomainName: 15, // string
  BroadcastAddress: 28, // IPv4
  VendorSpecific: 43, // bytes (PXE: RFC 4578 §2.2 / PXE 2.1; Apple BSDP)
  RequestedAddress: 50, // IPv4
  LeaseTime: 51, // u32 seconds
  Overload: 52, // u8: 1 file, 2 sname, 3 both
  MessageType: 53, // u8
  ServerIdentifier: 54, // IPv4
  ParameterRequestList: 55, // u8 list
  Message: 56, // string
  MaxMessageSize: 57, // u16
  RenewalTime: 58, // u32 (T1)
  RebindingTime: 59, // u32 (T2)
  VendorClass: 60, // string ("PXEClient:Arch:00007:UNDI:003000", "HTTPClient…", "AAPLBSDPC/i386/…")
  ClientIdentifier: 61, // bytes
  TftpServerName: 66, // string
  BootfileName: 67, // string
  UserClass: 77, // RFC 3004: length-prefixed strings (iPXE sends plain "iPXE")
  RelayAgentInfo: 82, // RFC 3046: echoed back unchanged
  ClientArch: 93, // RFC 4578: u16 list
  ClientNdi: 94, // RFC 4578: type, major, minor
  ClientUuid: 97, // RFC 4578: type 0 + 16-byte GUID
  Ipxe: 175, // iPXE encapsulated options (175.176 = no-pxedhcp)
  End: 255,
} as const;

/** RFC 4578 §2.1 architecture types: the boot policy's table (boot/arch.ts). */
export { Arch } from "../boot/arch.ts";

/** iPXE's encapsulated option 175.176: "no-pxedhcp", do not wait for ProxyDHCP offers. */
export const IPXE_NO_PXEDHCP = 176;
