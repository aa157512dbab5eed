/** The BSDP responder as a pure function: hand-built INFORMs in, replies checked against BSDP.doc Tables 6-8. */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BsdpMessage } from "../../src/bsdp/constants.ts";
import { decodeBsdpOptions, installImageId } from "../../src/bsdp/options.ts";
import { bsdpOfferExtension, bsdpResponder, type BsdpConfig } from "../../src/bsdp/responder.ts";
import { openSelectionStore } from "../../src/bsdp/selections.ts";
import { bootClientFromDhcp } from "../../src/dhcp/client.ts";
import { MessageType, Opt } from "../../src/dhcp/constants.ts";
import { LeasePool } from "../../src/dhcp/leases.ts";
import { decodeDhcpPacket, encodeDhcpPacket, optIp, optString, optU8, type DhcpPacket } from "../../src/dhcp/packet.ts";
import { serverResponder, type DhcpAnswer, type Outcome, type Responder } from "../../src/dhcp/responders.ts";
import { formatIPv4, parseIPv4, subnetOf } from "../../src/wire/ipv4.ts";
import { readHexFixture } from "../helpers/hex.ts";
import { tempDir } from "../helpers/tools.ts";

const SERVER = parseIPv4("10.213.0.1");
const IMAGE = 0x81000089;
const MAC = "00:3e:e1:c2:a1:b0";

function config(over: Partial<BsdpConfig> = {}): BsdpConfig & { seen: string[] } {
  const seen: string[] = [];
  const map = new Map<string, number>();
  return {
    serverIp: SERVER,
    images: [{ id: IMAGE, name: "ESXi 8.0.2 (22380479)" }],
    defaultImage: IMAGE,
    priority: 0x8000,
    // The boot policy's Mac row, as the app hands it in.
    decide: (c) => ({ action: "boot", firmware: "apple", image: undefined as never, transport: "tftp", file: "ipxe/snponly.efi", vendorClass: "PXEClient", why: `Mac ${c.mac}` }),
    selections: { get: (m) => map.get(m), set: (m, id) => void map.set(m, id), delete: (m) => void map.delete(m) },
    onMac: (mac, address) => void seen.push(`${mac}@${address ?? "-"}`),
    foldIntoOffers: false,
    seen,
    ...over,
  };
}

const run = (r: Responder, p: DhcpPacket): Outcome => r.handle({ packet: p, client: bootClientFromDhcp(p), viaPxePort: false, source: { address: "10.213.0.50", port: 68 } });
function only(o: Outcome): DhcpAnswer {
  if (!o || !("answers" in o) || o.answers.length !== 1) throw new Error(`expected one answer, got ${JSON.stringify(o)}`);
  return o.answers[0]!;
}
const ignored = (o: Outcome) => (o && "ignore" in o ? o.ignore : undefined);
const list = () => decodeDhcpPacket(readHexFixture("bsdp/inform-list.hex"));
const select = () => decodeDhcpPacket(readHexFixture("bsdp/inform-select.hex"));
/** Replaces one BSDP sub-option's value in a decoded INFORM (tests of Apple's refusal rules). */
function withSub(p: DhcpPacket, tag: number, value: number[] | undefined): DhcpPacket {
  const v = p.options.get(Opt.VendorSpecific)!;
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2 + v[i + 1]!) if (v[i] !== tag) out.push(...v.subarray(i, i + 2 + v[i + 1]!));
  if (value) out.push(tag, value.length, ...value);
  p.options.set(Opt.VendorSpecific, Uint8Array.from(out));
  return p;
}

/** BSDP.doc Table 6/7/8 header rules every reply follows. */
function expectBsdpReply(a: DhcpPacket, req: DhcpPacket): void {
  expect(a.op).toBe(2);
  expect(a.xid).toBe(req.xid);
  expect(a.chaddr).toEqual(req.chaddr);
  expect(a.ciaddr).toBe(req.ciaddr);
  expect(a.yiaddr).toBe(0);
  expect(a.siaddr).toBe(SERVER);
  expect(a.sname).toBe("10.213.0.1");
  expect(optU8(a, Opt.MessageType)).toBe(MessageType.Ack);
  expect(optIp(a, Opt.ServerIdentifier)).toBe(SERVER);
  expect(a.options.get(Opt.VendorClass)).toEqual(new TextEncoder().encode("AAPLBSDPC"));
  expect(encodeDhcpPacket(a).length).toBeGreaterThanOrEqual(300);
}

describe("INFORM[LIST] → ACK[LIST]", () => {
  test("priority, default image and the list; sent to the reply port the Mac named", () => {
    const cfg = config();
    const req = list();
    const a = only(run(bsdpResponder(cfg), req));
    expectBsdpReply(a.packet, req);
    expect(a.clientPort).toBe(68);
    expect(a.packet.file).toBe("");
    expect(decodeBsdpOptions(a.packet.options.get(Opt.VendorSpecific)!)).toEqual({
      messageType: BsdpMessage.List,
      priority: 0x8000,
      defaultImage: IMAGE,
      images: [{ id: IMAGE, name: "ESXi 8.0.2 (22380479)" }],
    });
    expect(cfg.seen).toEqual([`${MAC}@10.213.0.50`]);
  });

  test("a reply port below 1024 is used; no reply port means 68 (the server's default)", () => {
    expect(only(run(bsdpResponder(config()), withSub(list(), 5, [0x03, 0xe8]))).clientPort).toBe(1000);
    expect(only(run(bsdpResponder(config()), withSub(list(), 5, undefined))).clientPort).toBeUndefined();
  });

  test("Apple's refusals: reply port 1024 and up, ciaddr 0, an unknown version, no option 43", () => {
    expect(ignored(run(bsdpResponder(config()), withSub(list(), 5, [0x04, 0x00])))).toContain("reply port 1024");
    const noIp = list();
    noIp.ciaddr = 0;
    expect(ignored(run(bsdpResponder(config()), noIp))).toContain("ciaddr 0");
    expect(ignored(run(bsdpResponder(config()), withSub(list(), 2, [0x02, 0x00])))).toContain("version");
    const none = list();
    none.options.delete(Opt.VendorSpecific);
    expect(ignored(run(bsdpResponder(config()), none))).toContain("without option 43");
    expect(ignored(run(bsdpResponder(config()), withSub(list(), 9, [1, 2])))).toContain("malformed");
  });

  test("a version 1.0 client gets no image list (BSDP.doc: sub-option 9 is for 1.1)", () => {
    const o = decodeBsdpOptions(only(run(bsdpResponder(config()), withSub(list(), 2, [1, 0]))).packet.options.get(Opt.VendorSpecific)!);
    expect(o.images).toBeUndefined();
    expect(o.defaultImage).toBe(IMAGE);
  });

  test("a refused Mac (not listed) gets nothing, and not a PXE answer either", () => {
    expect(ignored(run(bsdpResponder(config({ decide: () => ({ action: "ignore", firmware: "apple", reason: "not listed (deny by default)", declined: "refused" }) })), list()))).toBe("not listed (deny by default)");
  });

  test("a Mac that boots from its own disk gets no image list", () => {
    expect(ignored(run(bsdpResponder(config({ decide: () => ({ action: "local", firmware: "apple", reason: "installed" }) })), list()))).toBe("boots from its own disk: installed");
  });

  test("non-BSDP packets are not its business", () => {
    const p = list();
    p.options.set(Opt.VendorClass, new TextEncoder().encode("PXEClient:Arch:00007:UNDI:003016"));
    expect(run(bsdpResponder(config()), p)).toBeUndefined();
  });
});

describe("INFORM[SELECT]", () => {
  test("→ ACK[SELECT] with the boot file, selected image and machine name; the choice is remembered", () => {
    const cfg = config();
    const req = select();
    const a = only(run(bsdpResponder(cfg), req));
    expectBsdpReply(a.packet, req);
    expect(a.packet.file).toBe("ipxe/snponly.efi");
    expect(decodeBsdpOptions(a.packet.options.get(Opt.VendorSpecific)!)).toEqual({ messageType: BsdpMessage.Select, selectedImage: IMAGE, machineName: "netboot-c2a1b0" });
    expect(cfg.selections.get(MAC)).toBe(IMAGE);
    // The next LIST says which image is selected.
    expect(decodeBsdpOptions(only(run(bsdpResponder(cfg), list())).packet.options.get(Opt.VendorSpecific)!).selectedImage).toBe(IMAGE);
  });

  test("an image not served here → ACK[FAILED], empty file, nothing remembered", () => {
    const cfg = config();
    const a = only(run(bsdpResponder(cfg), withSub(select(), 8, [0x81, 0, 0x0f, 0xff])));
    expectBsdpReply(a.packet, select());
    expect(a.packet.file).toBe("");
    expect(decodeBsdpOptions(a.packet.options.get(Opt.VendorSpecific)!)).toEqual({ messageType: BsdpMessage.Failed });
    expect(cfg.selections.get(MAC)).toBeUndefined();
  });

  test("a SELECT naming another server is ignored, and what we remembered for that Mac is forgotten", () => {
    const cfg = config();
    cfg.selections.set(MAC, IMAGE);
    expect(ignored(run(bsdpResponder(cfg), withSub(select(), 3, [10, 213, 0, 9])))).toContain("10.213.0.9");
    expect(cfg.selections.get(MAC)).toBeUndefined();
    expect(ignored(run(bsdpResponder(cfg), withSub(select(), 3, undefined)))).toContain("without server identifier");
  });
});

describe("DISCOVER from a Mac", () => {
  const discover = () => {
    const p = list();
    p.options.set(Opt.MessageType, Uint8Array.of(MessageType.Discover));
    p.options.delete(Opt.VendorSpecific);
    p.ciaddr = 0;
    return p;
  };

  test("beside another DHCP server: a BSDP OFFER (yiaddr 0, sub-option 8) only once the Mac has chosen", () => {
    const cfg = config();
    expect(ignored(run(bsdpResponder(cfg), discover()))).toContain("no remembered selection");
    run(bsdpResponder(cfg), select());
    const a = only(run(bsdpResponder(cfg), discover())).packet;
    expect(optU8(a, Opt.MessageType)).toBe(MessageType.Offer);
    expect(a.yiaddr).toBe(0);
    expect(a.file).toBe("ipxe/snponly.efi");
    expect(optString(a, Opt.VendorClass)).toBe("AAPLBSDPC");
    expect(decodeBsdpOptions(a.options.get(Opt.VendorSpecific)!)).toEqual({ selectedImage: IMAGE });
  });

  test("full DHCP: the server's OFFER carries the BSDP answer, as the seed's ISC class does (default image before any choice)", () => {
    const cfg = config({ foldIntoOffers: true });
    const subnet = subnetOf(SERVER, 24);
    const scoped = {
      pool: new LeasePool({ start: parseIPv4("10.213.0.100"), end: parseIPv4("10.213.0.110"), subnet, exclude: [SERVER], reservations: [], leaseSeconds: 600, offerSeconds: 60, declineSeconds: 600 }),
      net: { subnet, router: undefined, dns: [], domain: undefined },
      relayed: false,
    };
    const server = serverResponder({ serverIp: SERVER, poolFor: () => scoped, decide: () => ({ action: "ignore", firmware: "apple", reason: "policy not asked", declined: "refused" }), extend: bsdpOfferExtension(cfg) });
    const chain = [bsdpResponder(cfg), server];
    const first = (p: DhcpPacket) => {
      for (const r of chain) {
        const o = run(r, p);
        if (o) return o;
      }
      return undefined;
    };
    const offer = only(first(discover())).packet;
    expect(formatIPv4(offer.yiaddr)).toBe("10.213.0.100");
    expect(optString(offer, Opt.VendorClass)).toBe("AAPLBSDPC");
    expect(offer.file).toBe("ipxe/snponly.efi");
    expect(offer.siaddr).toBe(SERVER);
    expect(decodeBsdpOptions(offer.options.get(Opt.VendorSpecific)!)).toEqual({ selectedImage: IMAGE });
    // A PC's offer is untouched.
    const pc = discover();
    pc.options.set(Opt.VendorClass, new TextEncoder().encode("PXEClient:Arch:00007:UNDI:003016"));
    pc.chaddr[5] = 0x01;
    const pcOffer = only(first(pc)).packet;
    expect(pcOffer.options.has(Opt.VendorSpecific)).toBe(false);
    expect(pcOffer.file).toBe("");
  });
});

describe("selection store", () => {
  test("survives a restart; written whole (no temporary file left); a corrupt file is a clear error", () => {
    const dir = tempDir("bsdp-state-");
    const a = openSelectionStore(dir);
    a.set(MAC, IMAGE);
    a.set("52:54:00:00:00:01", installImageId(7));
    a.delete("52:54:00:00:00:01");
    const b = openSelectionStore(dir);
    expect(b.get(MAC)).toBe(IMAGE);
    expect(b.get("52:54:00:00:00:01")).toBeUndefined();
    expect(b.size).toBe(1);
    expect(existsSync(join(dir, "bsdp.json.tmp"))).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, "bsdp.json"), "utf8")).selections[MAC].image).toBe(IMAGE);
    const bad = tempDir("bsdp-state-");
    require("node:fs").writeFileSync(join(bad, "bsdp.json"), "{not json");
    expect(() => openSelectionStore(bad)).toThrow(/bsdp\.json is not a BSDP selection file/);
  });
});
