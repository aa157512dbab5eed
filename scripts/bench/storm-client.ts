/**
 * The boot storm's clients, run inside the client namespace by scripts/bench/storm.ts:
 *   bun storm-client.ts --iface IF --server IP --clients N --out FILE --sizes JSON [--name NAME]
 * All N start at once and each walks as a UEFI PXE machine does: DHCP (DISCOVER, OFFER, REQUEST, ACK, with
 * its own MAC; from then on it uses the leased address, which the namespace holds as a whole local range,
 * `ip route add local POOL dev lo`, so no machine waits for an `ip addr add`), TFTP of the boot file
 * the OFFER names (blksize 1468, windowsize 4 as edk2), HTTP of its per-MAC boot.cfg (Content-Length
 * required), then every kernel and module that boot.cfg lists, by curl on one keep-alive connection from
 * its own address, each checked against its Content-Length. Each client notes how long its DHCP answers
 * and its first TFTP DATA took. The probe that asks the small things during the storm is another process
 * in another namespace (test/helpers/small-probe.ts). Writes { startedAt, clients: [...], lagMs } to FILE.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { MessageType } from "../../src/dhcp/constants.ts";
import { tftpRead } from "../../src/tftp/client.ts";
import { openDhcpAsker } from "../../test/helpers/dhcp-asker.ts";
import { argReader, lagMeter } from "../../test/helpers/measuring.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import type { Mac } from "../../src/wire/mac.ts";

const argv = process.argv.slice(2);
const arg = argReader(argv);
const iface = arg("iface");
const server = arg("server");
const clients = Number(arg("clients", "200"));
const name = arg("name", "esxi");
const out = arg("out");
const bulkOther = argv.includes("--bulk-other");

const dhcp = await openDhcpAsker(iface);
/** The answer, and how long the attempt that got it waited; ten attempts, as a machine retries. */
const ask = async (mac: Mac, type: number, xid: number, want: number, requested?: string, serverId?: string) => {
  const r = await dhcp.ask(mac, type, xid, want, { requested, serverId, attempts: 10, timeoutMs: 1000, backoffMs: 500 });
  if (!r) throw new Error(`no answer to DHCP ${type === MessageType.Discover ? "DISCOVER" : "REQUEST"}`);
  return r;
};

function curlModules(from: string, urls: string[], sizes: number[]): Promise<{ bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const args = ["-s", "--interface", from, "-w", "%{http_code} %{size_download} %header{content-length}\\n", ...urls.flatMap((u) => ["-o", "/dev/null", u])];
    // --bulk-other: this process runs at real-time priority (the machines' DHCP and TFTP); the bulk does not.
    const p = bulkOther ? spawn("chrt", ["-o", "0", "curl", ...args], { stdio: ["ignore", "pipe", "pipe"] }) : spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
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
/** The clients' clock in Date.now() terms, so the probe's records (another process) line up with theirs. */
const startedAt = Date.now();
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
    r.phase = "tftp";
    const boot = await tftpRead(offer.file ?? "ipxe/snponly.efi", { server, blksize: 1468, windowsize: 4, bind: ip, timeoutMs: 1000, retries: 10 });
    r.tftpBytes = boot.bytes.length;
    r.tftpFirstDataMs = Math.round(boot.firstDataMs * 10) / 10;
    r.tftpMs = since();
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

// The clients' own event loop is in every figure measured here (200 machines share this process): how late
// a 10 ms timer fires is noted beside them, so that what the server made them wait can be told apart.
const lag = lagMeter();

const results = await Promise.all(Array.from({ length: clients }, (_, i) => walk(i)));
writeFileSync(out, JSON.stringify({ startedAt, clients: results, lagMs: lag.stop() }));
process.exit(0);
