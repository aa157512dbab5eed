/**
 * Side by side with the seed recipe: ISC dhcpd (Debian's isc-dhcp-server) running the BSDP class of
 * lamw/netboot-esxi's sample-dhcpd.conf (research §1.8) on one link, netboot on another link with the same
 * addresses; the same INFORM[LIST] and INFORM[SELECT] go to both, and the answers are compared field by field.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BsdpMessage } from "../../src/bsdp/constants.ts";
import { Opt } from "../../src/dhcp/constants.ts";
import { optIp, optString, optU8 } from "../../src/dhcp/packet.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import { bsdpOf, fromUs, informList, informSelect, peer, type Reply } from "../helpers/bsdp-mac.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";

for (const t of ["ip", "dhcpd"]) requireTool(t);
requireRoot();
const iso = makeEsxiIso();
const SERVER = "10.233.0.1";
const MAC_IP = "10.233.0.50";

const colonHex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
const idBytes = (id: number) => [id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff];

/**
 * The seed's class, verbatim apart from what must match this run: the image id and name (the seed's
 * 0x81000089 "The-Image" → netboot's id and boot.cfg name), next-server and the filename (the seed's
 * "snponly.efi" at the TFTP root → netboot's "ipxe/snponly.efi").
 */
function seedDhcpdConf(id: number, name: string): string {
  const nameBytes = [...new TextEncoder().encode(name)];
  const entry = [...idBytes(id), nameBytes.length, ...nameBytes];
  return `ddns-update-style none;
authoritative;
default-lease-time 600;
max-lease-time 600;
subnet 10.233.0.0 netmask 255.255.255.0 {
  range 10.233.0.100 10.233.0.150;
}
class "netboot" {
    match if substring (option vendor-class-identifier, 0, 9) = "AAPLBSDPC";
    option dhcp-parameter-request-list 1,3,17,43,60;

    if (option dhcp-message-type = 1) {
        option vendor-class-identifier "AAPLBSDPC";
        option vendor-encapsulated-options
            08:04:${colonHex(idBytes(id))};
    } elsif (option dhcp-message-type = 8) {
        option vendor-class-identifier "AAPLBSDPC";
        if (substring(option vendor-encapsulated-options, 0, 3) = 01:01:01) {
            log(debug, "bsdp_msgtype_list");
            option vendor-encapsulated-options
                01:01:01:
                04:02:
                    80:00:
                07:04:
                    ${colonHex(idBytes(id))}:
                09:${colonHex([entry.length])}:
                    ${colonHex(entry)};
        } else {
            log(debug, "bspd_msgtype_select");
            option vendor-encapsulated-options
                01:01:02:
                08:04:
                    ${colonHex(idBytes(id))}:
                82:${colonHex([nameBytes.length])}:
                    ${colonHex(nameBytes)};

            if (substring(option vendor-class-identifier, 10, 4) = "i386") {
                next-server ${SERVER};
                filename "ipxe/snponly.efi";
            }
        }
    }
}
`;
}

describe("netboot and the seed recipe's ISC dhcpd class answer a Mac alike", () => {
  let lanN: Lan;
  let lanI: Lan;
  let srv: Served;
  let dhcpd: ReturnType<typeof Bun.spawn>;
  let image = 0;
  let name = "";
  beforeAll(async () => {
    // Two links with the same addresses: netboot on one, ISC dhcpd on the other, the same Mac on each.
    lanN = createLan(233, [{ name: "srv", ip: SERVER }, { name: "mac", ip: MAC_IP }]);
    lanI = createLan(233, [{ name: "isc", ip: SERVER }, { name: "mac", ip: MAC_IP }]);
    // The Mac broadcasts its INFORMs to 255.255.255.255: that needs a route out of lan0.
    for (const lan of [lanN, lanI]) lan.exec("mac", ["ip", "route", "add", "default", "dev", "lan0"]);
    srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "proxy", "--state-dir", tempDir(), "-v"], { ns: lanN.nodes.srv!.ns });
    // The id and name netboot gives its image; the ISC class is written with them, as a user of the seed would.
    const [r] = await peer(lanN, "mac", 68, [informList(MAC_IP)]);
    const list = bsdpOf(fromUs(r!, SERVER)[0]!.packet);
    image = list.defaultImage!;
    name = list.images![0]!.name;
    const dir = tempDir("dhcpd-");
    writeFileSync(join(dir, "dhcpd.conf"), seedDhcpdConf(image, name));
    writeFileSync(join(dir, "dhcpd.leases"), "");
    dhcpd = Bun.spawn(["ip", "netns", "exec", lanI.nodes.isc!.ns, "dhcpd", "-4", "-f", "-d", "-cf", join(dir, "dhcpd.conf"), "-lf", join(dir, "dhcpd.leases"), "-pf", join(dir, "dhcpd.pid"), "lan0"], { stdout: "ignore", stderr: "pipe" });
    await Bun.sleep(1500);
    if (dhcpd.exitCode !== null) throw new Error(`dhcpd exited: ${await new Response(dhcpd.stderr as ReadableStream).text()}`);
  }, 90_000);
  afterAll(async () => {
    if (dhcpd && dhcpd.exitCode === null) dhcpd.kill("SIGTERM");
    await dhcpd?.exited;
    await srv?.stop();
    lanN?.destroy();
    lanI?.destroy();
  });

  const both = async (packet: Uint8Array): Promise<{ ours: Reply; isc: Reply }> => {
    const [[n], [i]] = await Promise.all([peer(lanN, "mac", 68, [packet]), peer(lanI, "mac", 68, [packet])]);
    const ours = fromUs(n!, SERVER);
    const isc = fromUs(i!, SERVER);
    expect(ours).toHaveLength(1);
    expect(isc).toHaveLength(1);
    return { ours: ours[0]!, isc: isc[0]! };
  };

  test("INFORM[LIST]: same message type, priority, default image and image list, to the same place", async () => {
    const { ours, isc } = await both(informList(MAC_IP));
    for (const r of [ours, isc]) {
      expect(optU8(r.packet, Opt.MessageType)).toBe(5); // ACK
      expect(optString(r.packet, Opt.VendorClass)).toBe("AAPLBSDPC");
      expect(formatIPv4(optIp(r.packet, Opt.ServerIdentifier)!)).toBe(SERVER);
      expect(formatIPv4(r.packet.ciaddr)).toBe(MAC_IP);
      expect(r.packet.yiaddr).toBe(0);
    }
    // Option 43 agrees byte for byte: the seed's hex is what netboot encodes.
    expect(Buffer.from(ours.packet.options.get(Opt.VendorSpecific)!).toString("hex")).toBe(Buffer.from(isc.packet.options.get(Opt.VendorSpecific)!).toString("hex"));
    expect(bsdpOf(ours.packet)).toEqual({ messageType: BsdpMessage.List, priority: 0x8000, defaultImage: image, images: [{ id: image, name }] });
    // Differences, each expected:
    // - siaddr/sname: netboot names itself in both (BSDP.doc Table 6); ISC leaves them empty outside SELECT.
    expect(formatIPv4(ours.packet.siaddr)).toBe(SERVER);
    expect(isc.packet.siaddr).toBe(0);
  }, 30_000);

  test("INFORM[SELECT]: same message type, selected image and boot file", async () => {
    const { ours, isc } = await both(informSelect(MAC_IP, SERVER, image));
    const o = bsdpOf(ours.packet);
    const i = bsdpOf(isc.packet);
    expect(o.messageType).toBe(BsdpMessage.Select);
    expect(i.messageType).toBe(BsdpMessage.Select);
    expect(o.selectedImage).toBe(image);
    expect(i.selectedImage).toBe(image);
    expect(ours.packet.file).toBe("ipxe/snponly.efi");
    expect(isc.packet.file).toBe("ipxe/snponly.efi");
    expect(formatIPv4(ours.packet.siaddr)).toBe(SERVER);
    expect(formatIPv4(isc.packet.siaddr)).toBe(SERVER);
    // Difference: the machine name (sub-option 130). The seed hard-codes the image's name; netboot names
    // the Mac after its MAC (Apple's server: "NetBoot%03d"). Firmware that boots iPXE does not use it.
    expect(i.machineName).toBe(name);
    expect(o.machineName).toBe("netboot-c2a1b0");
  }, 30_000);

  test("where they differ by design: a SELECT of an unknown image, and a reply port above 1023", async () => {
    // ISC's static class answers ACK[SELECT] for any image; netboot answers ACK[FAILED] (BSDP.doc Table 8).
    const unknown = await both(informSelect(MAC_IP, SERVER, 0x81000fff));
    expect(bsdpOf(unknown.isc.packet).messageType).toBe(BsdpMessage.Select);
    expect(bsdpOf(unknown.ours.packet).messageType).toBe(BsdpMessage.Failed);
    // A client asking for an unprivileged reply port: Apple's server (and netboot) stay silent; ISC cannot
    // read sub-option 5 and answers at 68 anyway.
    const [[n], [i]] = await Promise.all([peer(lanN, "mac", 68, [informList(MAC_IP, 2000)]), peer(lanI, "mac", 68, [informList(MAC_IP, 2000)])]);
    expect(fromUs(n!, SERVER)).toHaveLength(0);
    expect(fromUs(i!, SERVER)).toHaveLength(1);
  }, 30_000);
});
