/**
 * The boot storm's clients, run inside the client namespace by scripts/bench/storm.ts:
 *   bun storm-client.ts --iface IF --server IP --clients N --name NAME --out FILE
 * All N start at once and each walks as a UEFI PXE machine does: DHCP (DISCOVER, OFFER, REQUEST, ACK, with
 * its own MAC; the leased address is added to the interface and used from then on), TFTP of the boot file
 * the OFFER names (blksize 1468, windowsize 4 as edk2), HTTP of its per-MAC boot.cfg (Content-Length
 * required), then every kernel and module that boot.cfg lists, by curl on one keep-alive connection from
 * its own address, each checked against its Content-Length. Each client notes how long its DHCP answers
 * and its first TFTP DATA took. Meanwhile a probe asks the small things again every --probe-ms (100) until
 * the last client is done: a DHCP DISCOVER/REQUEST from one of 16 probe MACs, a TFTP read of the boot file
 * (its first DATA), /boot.ipxe and /NAME/boot.cfg by HTTP (their first byte): what a machine arriving in
 * the middle of the storm waits. Writes { clients: [...], probes: [...] } to FILE.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { MessageType, Op, Opt } from "../../src/dhcp/constants.ts";
import { decodeDhcpPacket, encodeDhcpPacket, optIp, optString, optU8 } from "../../src/dhcp/packet.ts";
import { bindSocketToDevice } from "../../src/net/device.ts";
import { openUdp } from "../../src/net/udp.ts";
import { clientPacket } from "../../src/sim/dhcp.ts";
import { tftpRead } from "../../src/tftp/client.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import type { Mac } from "../../src/wire/mac.ts";

const argv = process.argv.slice(2);
const arg = (n: string, d?: string) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1]! : d!;
};
const iface = arg("iface");
const server = arg("server");
const clients = Number(arg("clients", "200"));
const name = arg("name", "esxi");
const out = arg("out");
const probeMs = Number(arg("probe-ms", "100"));

type Reply = { type: number; yiaddr: number; serverId?: number; file?: string };
const waiting = new Map<number, (r: Reply) => void>();
const sock = await openUdp({
  address: "0.0.0.0",
  port: 68,
  service: "DHCP client",
  onMessage: (data) => {
    try {
      const p = decodeDhcpPacket(data);
      if (p.op !== Op.Reply) return;
      waiting.get(p.xid)?.({ type: optU8(p, Opt.MessageType) ?? 0, yiaddr: p.yiaddr, serverId: optIp(p, Opt.ServerIdentifier), file: optString(p, Opt.BootfileName) ?? (p.file || undefined) });
    } catch {}
  },
});
const b = await bindSocketToDevice(sock.fd, iface);
if (!b.ok) throw new Error(`bind ${iface}: ${b.why}`);
sock.setBroadcast(true);

/** The answer, and how long the attempt that got it waited (a retransmission restarts the clock, as a client's does). */
const ask = async (mac: Mac, type: number, xid: number, want: number, requested?: string, serverId?: string): Promise<Reply & { ms: number }> => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const sent = performance.now();
    const got = new Promise<Reply | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), 1000 + attempt * 500);
      waiting.set(xid, (r) => {
        if (r.type !== want && r.type !== MessageType.Nak) return;
        clearTimeout(t);
        resolve(r);
      });
    });
    sock.send(encodeDhcpPacket(clientPacket({ arch: "uefi", asker: "firmware", mac, xid, type, requested, serverId })), 67, "255.255.255.255");
    const r = await got;
    waiting.delete(xid);
    if (r && r.type === want) return { ...r, ms: performance.now() - sent };
    if (r) throw new Error(`NAK to ${type}`);
  }
  throw new Error(`no answer to DHCP ${type === MessageType.Discover ? "DISCOVER" : "REQUEST"}`);
};

function curlModules(from: string, urls: string[], sizes: number[]): Promise<{ bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const args = ["-s", "--interface", from, "-w", "%{http_code} %{size_download} %header{content-length}\\n", ...urls.flatMap((u) => ["-o", "/dev/null", u])];
    const p = spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    p.stdout.on("data", (c) => (text += c));
    p.on("close", (code) => {
      const lines = text.trim().split("\n").map((l) => l.split(" "));
      let bytes = 0;
      for (let i = 0; i < urls.length; i++) {
        const [status, got, length] = lines[i] ?? [];
        if (status !== "200" || Number(got) !== sizes[i] || Number(length) !== sizes[i]) return resolve({ bytes, error: `${urls[i]}: ${status ?? "no answer"} ${got}/${length} of ${sizes[i]} (curl exit ${code})` });
        bytes += Number(got);
      }
      resolve({ bytes });
    });
  });
}

const t0 = performance.now();
const since = () => Math.round(performance.now() - t0);

async function walk(i: number): Promise<Record<string, unknown>> {
  const mac = ["02", "5b", "00", (i >> 16) & 255, (i >> 8) & 255, i & 255].map((x) => (typeof x === "number" ? x.toString(16).padStart(2, "0") : x)).join(":") as Mac;
  const r: Record<string, unknown> = { mac };
  try {
    r.phase = "dhcp";
    const xid = (0x5b000000 + i) >>> 0;
    const offer = await ask(mac, MessageType.Discover, xid, MessageType.Offer);
    const ip = formatIPv4(offer.yiaddr);
    const ack = await ask(mac, MessageType.Request, xid, MessageType.Ack, ip, offer.serverId !== undefined ? formatIPv4(offer.serverId) : undefined);
    r.offerMs = Math.round(offer.ms * 10) / 10;
    r.ackMs = Math.round(ack.ms * 10) / 10;
    r.dhcpMs = since();
    // Not spawnSync: 200 of those block this one event loop for seconds under load, the other clients'
    // TFTP ACKs wait, and the server rightly gives their transfers up (one storm saw 18 such failures).
    await new Promise<void>((resolve) => spawn("ip", ["addr", "add", `${ip}/32`, "dev", iface], { stdio: "ignore" }).on("close", () => resolve()));
    r.phase = "tftp";
    const boot = await tftpRead(offer.file ?? "ipxe/snponly.efi", { server, blksize: 1468, windowsize: 4, bind: ip, timeoutMs: 1000, retries: 10 });
    r.tftpBytes = boot.bytes.length;
    r.tftpFirstDataMs = Math.round(boot.firstDataMs * 10) / 10;
    r.tftpMs = since();
    if (i === 0) probeFrom = ip;
    r.phase = "boot.cfg";
    const cfgStart = performance.now();
    const res = await fetch(`http://${server}/${name}/01-${mac.replaceAll(":", "-")}/boot.cfg`);
    r.bootcfgTtfbMs = Math.round(performance.now() - cfgStart);
    r.bootcfgAtMs = since();
    const length = res.headers.get("content-length");
    const text = await res.text();
    if (res.status !== 200 || length === null || Number(length) !== Buffer.byteLength(text)) throw new Error(`boot.cfg: ${res.status}, Content-Length ${length}`);
    const get = (k: string) => text.match(new RegExp(`^${k}=(.*)$`, "m"))?.[1]?.trim() ?? "";
    const prefix = get("prefix").replace(/\/?$/, "/");
    const files = [get("kernel"), ...get("modules").split("---").map((m) => m.trim().split(/\s+/)[0]!)].filter(Boolean);
    const urls = files.map((f) => prefix + f);
    // The sizes the loader is promised: a HEAD per file would double the requests; curl checks Content-Length itself.
    const sizes = JSON.parse(arg("sizes")) as Record<string, number>;
    r.phase = "modules";
    const got = await curlModules(ip, urls, files.map((f) => sizes[f.toLowerCase()] ?? -1));
    r.httpBytes = got.bytes;
    if (got.error) throw new Error(got.error);
    r.doneMs = since();
    r.ok = true;
  } catch (err) {
    r.ok = false;
    r.error = `${r.phase}: ${(err as Error).message}`;
    r.failedMs = since();
  }
  return r;
}

/** The address the probe's TFTP and HTTP go from (the first client's, once it has one). */
let probeFrom: string | undefined;
let storming = true;
const probes: Array<{ at: number; what: string; ms: number; error?: string }> = [];

async function probe(n: number): Promise<void> {
  const mac = ["02", "5c", "00", "00", "00", (n % 16).toString(16).padStart(2, "0")].join(":") as Mac;
  const xid = (0x5c000000 + n) >>> 0;
  const at = since();
  const note = (what: string, ms: number, error?: string) => probes.push({ at, what, ms: Math.round(ms * 10) / 10, ...(error ? { error } : {}) });
  try {
    const offer = await ask(mac, MessageType.Discover, xid, MessageType.Offer);
    note("dhcp-offer", offer.ms);
    const ack = await ask(mac, MessageType.Request, xid, MessageType.Ack, formatIPv4(offer.yiaddr), offer.serverId !== undefined ? formatIPv4(offer.serverId) : undefined);
    note("dhcp-ack", ack.ms);
  } catch (err) {
    note("dhcp-offer", -1, (err as Error).message);
  }
  if (!probeFrom) return;
  await Promise.all([
    tftpRead(arg("probe-file", "ipxe/snponly.efi"), { server, blksize: 1468, windowsize: 4, bind: probeFrom, timeoutMs: 1000, retries: 10 }).then(
      (r) => note("tftp-first-data", r.firstDataMs),
      (err: Error) => note("tftp-first-data", -1, err.message),
    ),
    ...[`/boot.ipxe`, `/${name}/boot.cfg`].map(async (path) => {
      const t = performance.now();
      try {
        const res = await fetch(`http://${server}${path}`);
        const ms = performance.now() - t;
        await res.arrayBuffer();
        note(path === "/boot.ipxe" ? "boot.ipxe-ttfb" : "boot.cfg-ttfb", ms, res.status === 200 ? undefined : `status ${res.status}`);
      } catch (err) {
        note(path === "/boot.ipxe" ? "boot.ipxe-ttfb" : "boot.cfg-ttfb", -1, (err as Error).message);
      }
    }),
  ]);
}

// The clients' own event loop is in every figure measured here (200 machines share this process): how late
// a 10 ms timer fires is noted beside them, so that what the server made them wait can be told apart.
const lag: number[] = [];
let expectedAt = performance.now() + 10;
const lagTimer = setInterval(() => {
  const now = performance.now();
  lag.push(Math.max(0, now - expectedAt));
  expectedAt = now + 10;
}, 10);

const prober = (async () => {
  const running: Array<Promise<void>> = [];
  for (let n = 0; storming; n++) {
    running.push(probe(n));
    await new Promise((r) => setTimeout(r, probeMs));
  }
  await Promise.all(running);
})();

const results = await Promise.all(Array.from({ length: clients }, (_, i) => walk(i)));
storming = false;
await prober;
clearInterval(lagTimer);
writeFileSync(out, JSON.stringify({ clients: results, probes, lagMs: lag }));
process.exit(0);
