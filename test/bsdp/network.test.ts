/**
 * A scripted Mac in network namespaces: its DHCP address (from netboot in server mode, or from dnsmasq with
 * netboot as proxyDHCP), INFORM[LIST], INFORM[SELECT], TFTP of the boot file with blksize capped at 1460,
 * then iPXE's DHCP getting boot.ipxe. The INFORMs are the hand-made fixtures (test/fixtures/bsdp), the
 * address comes from busybox udhcpc, the iPXE DISCOVER is one captured from real iPXE, and every reply is
 * read back by tshark's BSDP dissector.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BsdpMessage } from "../../src/bsdp/constants.ts";
import { Opt } from "../../src/dhcp/constants.ts";
import { optU8 } from "../../src/dhcp/packet.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import { cleanDissection, startCapture, tsharkFields, type Capture } from "../helpers/capture.ts";
import { startDnsmasq, udhcpc, type Daemon } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { MAC, MODEL, bsdpOf, fromUs, informList, informSelect, ipxeDiscover, macDiscover, peer } from "../helpers/bsdp-mac.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, sha256, tempDir } from "../helpers/tools.ts";

for (const t of ["ip", "busybox", "tcpdump", "tshark", "dnsmasq", "atftp", "curl"]) requireTool(t);
requireRoot();
const iso = makeEsxiIso();

/** udhcpc with the Mac's vendor class; then the address is put on the interface as the firmware would. */
async function macGetsAddress(lan: Lan, node: string): Promise<Record<string, string>> {
  const lease = await udhcpc(lan, node, ["-V", MODEL]);
  if (!lease.ip) throw new Error("the Mac got no address");
  lan.exec(node, ["ip", "addr", "add", `${lease.ip}/24`, "dev", "lan0"]);
  lan.exec(node, ["ip", "route", "add", "default", "dev", "lan0"]);
  return lease;
}

/** atftp asks for blksize 8192; returns the OACK's options as tshark reads them, and the file's hash. */
async function tftpGet(lan: Lan, node: string, server: string, cap: Capture, file: string): Promise<{ blksize: string; sha: string }> {
  const out = join(tempDir("atftp-"), "file");
  const r = lan.exec(node, ["atftp", "--option", "blksize 8192", "--get", "-r", file, "-l", out, server]);
  if (r.code !== 0) throw new Error(`atftp: ${r.err}`);
  await Bun.sleep(300);
  const rows = tsharkFields(cap.file, `tftp.opcode == 6 && ip.dst == ${lan.nodes[node]!.ip}`, ["tftp.option.name", "tftp.option.value"]);
  const last = rows[rows.length - 1];
  if (!last) throw new Error(`no OACK to ${node} in the capture`);
  const names = last[0]!.split(",");
  const values = last[1]!.split(",");
  return { blksize: values[names.indexOf("blksize")]!, sha: sha256(new Uint8Array(readFileSync(out))) };
}

function httpSha(lan: Lan, node: string, url: string): string {
  const out = join(tempDir("curl-"), "f");
  const r = lan.exec(node, ["curl", "-sSf", "-o", out, url]);
  if (r.code !== 0) throw new Error(`curl ${url}: ${r.err}`);
  return sha256(new Uint8Array(readFileSync(out)));
}

/** The Mac's path after it has an address: LIST, SELECT, TFTP of the boot file, iPXE's DHCP. */
async function macBoots(lan: Lan, server: string, srv: Served, cap: Capture, mode: "server" | "proxy"): Promise<number> {
  const ip = lan.nodes.mac!.ip;
  // INFORM[LIST] → ACK[LIST], unicast to the Mac's address at port 68, from 67
  const [listReplies] = await peer(lan, "mac", 68, [informList(ip)]);
  const [ackList] = fromUs(listReplies!, server);
  expect(ackList).toBeDefined();
  const list = bsdpOf(ackList!.packet);
  expect(list.messageType).toBe(BsdpMessage.List);
  expect(list.images).toHaveLength(1);
  expect(list.images![0]!.name).toBe("ESXi 8.0.2 (22380479)");
  expect(list.defaultImage).toBe(list.images![0]!.id);
  const image = list.defaultImage!;

  // INFORM[SELECT] → ACK[SELECT] with the boot file; an unknown image → ACK[FAILED]
  const [selectReplies, failedReplies] = await peer(lan, "mac", 68, [informSelect(ip, server, image), informSelect(ip, server, 0x81000fff)]);
  const ackSelect = fromUs(selectReplies!, server)[0]!.packet;
  expect(bsdpOf(ackSelect)).toMatchObject({ messageType: BsdpMessage.Select, selectedImage: image });
  expect(ackSelect.file).toBe("ipxe/snponly.efi");
  expect(formatIPv4(ackSelect.siaddr)).toBe(server);
  expect(bsdpOf(fromUs(failedReplies!, server)[0]!.packet).messageType).toBe(BsdpMessage.Failed);

  // A reply port below 1024 is honoured; 1024 and up gets nothing (Apple's rule).
  const [port993] = await peer(lan, "mac", 993, [informList(ip, 993)]);
  expect(fromUs(port993!, server)).toHaveLength(1);
  const [port1024] = await peer(lan, "mac", 1024, [informList(ip, 1024)], 1000);
  expect(fromUs(port1024!, server)).toHaveLength(0);

  // TFTP of the boot file: the Mac asks 8192, gets 1460; the bytes are those served over HTTP.
  const tftp = await tftpGet(lan, "mac", server, cap, "ipxe/snponly.efi");
  expect(tftp.blksize).toBe("1460");
  expect(tftp.sha).toBe(httpSha(lan, "mac", `http://${server}/ipxe/snponly.efi`));
  expect(srv.log()).toMatch(new RegExp(`${ip.replaceAll(".", "\\.")}:\\d+ RRQ ipxe/snponly\\.efi: \\d+ bytes, blksize 1460`));

  // iPXE (snponly.efi) on the Mac does DHCP: it is told to fetch boot.ipxe.
  const [ipxeReplies] = await peer(lan, "mac", 68, [ipxeDiscover()]);
  const offer = fromUs(ipxeReplies!, server)[0]!.packet;
  expect(offer.file).toBe(`http://${server}/boot.ipxe`);
  if (mode === "proxy") expect(offer.yiaddr).toBe(0);
  else expect(offer.yiaddr).not.toBe(0);

  // tshark reads every field of the three BSDP answers as intended, with no malformed mark.
  await cap.stop();
  cleanDissection(cap.file, `ip.src == ${server} && dhcp`);
  const rows = tsharkFields(cap.file, `ip.src == ${server} && dhcp.option.vendor.bsdp.message_type`, [
    "ip.dst", "udp.dstport", "dhcp.option.vendor_class_id", "dhcp.option.dhcp_server_id", "dhcp.option.vendor.bsdp.message_type",
    "dhcp.option.vendor.bsdp.server_priority", "dhcp.option.vendor.bsdp.default_boot_image_id", "dhcp.option.vendor.bsdp.selected_boot_image_id",
    "dhcp.option.vendor.bsdp.boot_image.name", "dhcp.file",
  ]);
  const hexId = `0x${image.toString(16).padStart(8, "0")}`;
  expect(rows).toEqual([
    [ip, "68", "AAPLBSDPC", server, "1", "32768", hexId, "", "ESXi 8.0.2 (22380479)", ""],
    [ip, "68", "AAPLBSDPC", server, "2", "", "", hexId, "", "ipxe/snponly.efi"],
    [ip, "68", "AAPLBSDPC", server, "3", "", "", "", "", ""],
    [ip, "993", "AAPLBSDPC", server, "1", "32768", hexId, hexId, "ESXi 8.0.2 (22380479)", ""],
  ]);
  return image;
}

describe("a Mac on a link netboot owns (--dhcp server)", () => {
  let lan: Lan;
  let srv: Served;
  let cap: Capture;
  const state = tempDir("bsdp-state-");
  beforeAll(async () => {
    lan = createLan(231, [{ name: "srv" }, { name: "mac", ip: null, mac: MAC }]);
    cap = await startCapture(lan.nodes.mac!.ns, "lan0", "udp");
    srv = await serve([iso, "--iface", "lan0", "--name", "esxi", "--dhcp", "server", "--force", "--state-dir", state, "--pool", "10.231.0.50-10.231.0.60", "-v"], { ns: lan.nodes.srv!.ns });
  }, 60_000);
  afterAll(async () => {
    await cap?.stop();
    await srv?.stop();
    lan?.destroy();
  });

  test("its DISCOVER gets the seed recipe's folded offer; LIST, SELECT, TFTP capped at 1460, iPXE gets boot.ipxe", async () => {
    const lease = await macGetsAddress(lan, "mac");
    expect(lease.serverid).toBe("10.231.0.1");
    lan.nodes.mac!.ip = lease.ip!;
    // The OFFER udhcpc took carried the BSDP answer: AAPLBSDPC, option 43 {8: the image}, the boot file.
    const offer = tsharkFields(cap.file, "dhcp.option.dhcp == 2", ["dhcp.option.vendor_class_id", "dhcp.option.vendor.bsdp.selected_boot_image_id", "dhcp.file", "dhcp.ip.server"]);
    expect(offer[0]).toEqual(["AAPLBSDPC", expect.stringMatching(/^0x8100/), "ipxe/snponly.efi", "10.231.0.1"]);
    await macBoots(lan, "10.231.0.1", srv, cap, "server");
    expect(srv.log()).toContain("BSDP ACK[SELECT]");
    // The Mac's choice is in the host store (its journal until the next snapshot).
    expect(readFileSync(join(state, "hosts.journal"), "utf8")).toMatch(new RegExp(`"mac":"${MAC}","op":"bsdp","image":\\d+`));
  }, 120_000);
});

describe("a Mac beside the site's DHCP server (dnsmasq; netboot --dhcp proxy)", () => {
  let lan: Lan;
  let dnsmasq: Daemon;
  const state = tempDir("bsdp-state-");
  let chosen = 0;
  const args = (mode: string) => [iso, "--iface", "lan0", "--name", "esxi", "--dhcp", mode, "--state-dir", state, "-v"];
  beforeAll(async () => {
    lan = createLan(232, [{ name: "srv" }, { name: "site" }, { name: "mac", ip: null, mac: MAC }, { name: "pc" }]);
    dnsmasq = await startDnsmasq(lan, "site", 100, 150);
  }, 60_000);
  afterAll(async () => {
    await dnsmasq?.stop();
    lan?.destroy();
  });

  test("address from dnsmasq; LIST, SELECT, TFTP capped at 1460, iPXE gets boot.ipxe from the proxy", async () => {
    const srv = await serve(args("proxy"), { ns: lan.nodes.srv!.ns });
    const cap = await startCapture(lan.nodes.mac!.ns, "lan0", "udp");
    try {
      const lease = await macGetsAddress(lan, "mac");
      expect(lease.serverid).toBe("10.232.0.2");
      lan.nodes.mac!.ip = lease.ip!;
      // Before the Mac chose anything, netboot left its DISCOVER to dnsmasq.
      expect(srv.log()).toMatch(/DISCOVER: ignored by BSDP: Mac DISCOVER, no remembered selection/);
      chosen = await macBoots(lan, "10.232.0.1", srv, cap, "proxy");
      // A PC asking the same file keeps its 8192-byte blocks: the cap is for Macs only.
      const pcCap = await startCapture(lan.nodes.pc!.ns, "lan0", "udp");
      expect((await tftpGet(lan, "pc", "10.232.0.1", pcCap, "ipxe/snponly.efi")).blksize).toBe("8192");
      await pcCap.stop();
    } finally {
      await cap.stop();
      await srv.stop();
    }
  }, 120_000);

  test("after a restart, the Mac's next DISCOVER gets the BSDP OFFER (yiaddr 0, sub-option 8) for what it chose", async () => {
    const srv = await serve(args("proxy"), { ns: lan.nodes.srv!.ns });
    try {
      expect(srv.log()).toMatch(/1 remembered selection\(s\)/);
      const [replies] = await peer(lan, "mac", 68, [macDiscover()]);
      const ours = fromUs(replies!, "10.232.0.1");
      expect(ours).toHaveLength(1);
      const offer = ours[0]!.packet;
      expect(optU8(offer, Opt.MessageType)).toBe(2);
      expect(offer.yiaddr).toBe(0);
      expect(offer.file).toBe("ipxe/snponly.efi");
      expect(bsdpOf(offer)).toEqual({ selectedImage: chosen });
      // dnsmasq offered the address, as before.
      expect(fromUs(replies!, "10.232.0.2").some((r) => r.packet.yiaddr !== 0)).toBe(true);
    } finally {
      await srv.stop();
    }
  }, 60_000);

  test("--dhcp off with --iface: BSDP alone (LIST answered), no PXE answers, no port 4011", async () => {
    const srv = await serve(args("off"), { ns: lan.nodes.srv!.ns });
    try {
      expect(srv.log()).toMatch(/BSDP only \(no DHCP\) on lan0 .*port 67(?! and)/);
      const [list, ipxe] = await peer(lan, "mac", 68, [informList(lan.nodes.mac!.ip), ipxeDiscover()]);
      expect(bsdpOf(fromUs(list!, "10.232.0.1")[0]!.packet).messageType).toBe(BsdpMessage.List);
      expect(fromUs(ipxe!, "10.232.0.1")).toHaveLength(0);
    } finally {
      await srv.stop();
    }
  }, 60_000);

  test("--no-bsdp: the Mac's INFORM gets no answer from netboot", async () => {
    const srv = await serve([...args("proxy"), "--no-bsdp"], { ns: lan.nodes.srv!.ns });
    try {
      const [list] = await peer(lan, "mac", 68, [informList(lan.nodes.mac!.ip)]);
      expect(fromUs(list!, "10.232.0.1")).toHaveLength(0);
      expect(srv.log()).not.toContain("BSDP");
    } finally {
      await srv.stop();
    }
  }, 60_000);
});
