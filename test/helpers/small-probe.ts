/**
 * The small answers, asked again and again from a namespace of their own while something else loads the
 * server (the storm bench, test/e2e/storm.test.ts):
 *   bun test/helpers/small-probe.ts --iface IF --server IP --from IP --out FILE [--every 100] [--name esxi]
 * Every --every ms, until SIGTERM: a DHCP DISCOVER then REQUEST from one of 16 probe MACs (the wait for
 * OFFER and for ACK, each from its own send, as a client's clock restarts with each retransmission), a
 * TFTP read of the boot file as edk2 asks for it (the wait for its first DATA), and /boot.ipxe and
 * /NAME/boot.cfg by HTTP (the wait for the first byte). On SIGTERM it lets the probes in flight finish
 * and writes { probes: [{ at, what, ms, error? }], lagMs } to FILE; lagMs is how late its own 10 ms timer
 * fired, so a figure inflated by this process itself can be told apart.
 */
import { writeFileSync } from "node:fs";
import { MessageType } from "../../src/dhcp/constants.ts";
import { tftpRead } from "../../src/tftp/client.ts";
import { openDhcpAsker } from "./dhcp-asker.ts";
import { argReader, lagMeter, percentile } from "./measuring.ts";
import { formatIPv4 } from "../../src/wire/ipv4.ts";
import type { Mac } from "../../src/wire/mac.ts";

export type ProbeWhat = "dhcp-offer" | "dhcp-ack" | "tftp-first-data" | "boot.ipxe-ttfb" | "boot.cfg-ttfb";
export interface ProbeRecord {
  /** When the probe began (Date.now(), so that it lines up with other processes' records). */
  at: number;
  what: ProbeWhat;
  /** Milliseconds waited; -1 when no answer came. */
  ms: number;
  error?: string;
}
export interface ProbeResults {
  probes: ProbeRecord[];
  lagMs: number[];
}

/** p-th percentile (nearest rank) of the answered probes of one kind, and how many there were. */
export function probeFigure(r: ProbeResults, what: ProbeWhat, p: number): { ms: number; answered: number; failed: number } | undefined {
  const all = r.probes.filter((x) => x.what === what);
  const ok = all.filter((x) => x.ms >= 0).map((x) => x.ms);
  if (ok.length === 0) return undefined;
  return { ms: percentile(ok, p), answered: ok.length, failed: all.length - ok.length };
}

if (import.meta.main) await main();

async function main(): Promise<void> {
  const arg = argReader(process.argv.slice(2));
  const iface = arg("iface");
  const server = arg("server");
  const from = arg("from");
  const out = arg("out");
  const every = Number(arg("every", "100"));
  const name = arg("name", "esxi");
  const bootFile = arg("boot-file", "ipxe/snponly.efi");

  const dhcp = await openDhcpAsker(iface);
  /** One exchange: the answer and how long it took, or undefined after 2 s (a probe does not retry). */
  const ask = (mac: Mac, type: number, xid: number, want: number, requested?: string, serverId?: string) => dhcp.ask(mac, type, xid, want, { requested, serverId, timeoutMs: 2000 });

  const probes: ProbeRecord[] = [];
  const probe = async (n: number): Promise<void> => {
    const mac = ["02", "5c", "00", "00", "00", (n % 16).toString(16).padStart(2, "0")].join(":") as Mac;
    const xid = (0x5c000000 + n) >>> 0;
    const at = Date.now();
    const note = (what: ProbeWhat, ms: number, error?: string) => probes.push({ at, what, ms: Math.round(ms * 10) / 10, ...(error ? { error } : {}) });
    await Promise.all([
      (async () => {
        const offer = await ask(mac, MessageType.Discover, xid, MessageType.Offer);
        if (!offer) return note("dhcp-offer", -1, "no OFFER within 2 s");
        note("dhcp-offer", offer.ms);
        const ack = await ask(mac, MessageType.Request, xid, MessageType.Ack, formatIPv4(offer.yiaddr), offer.serverId !== undefined ? formatIPv4(offer.serverId) : undefined);
        note("dhcp-ack", ack ? ack.ms : -1, ack ? undefined : "no ACK within 2 s");
      })(),
      tftpRead(bootFile, { server, blksize: 1468, windowsize: 4, bind: from, timeoutMs: 1000, retries: 5 }).then(
        (r) => note("tftp-first-data", r.firstDataMs),
        (err: Error) => note("tftp-first-data", -1, err.message),
      ),
      ...(["boot.ipxe-ttfb", "boot.cfg-ttfb"] as const).map(async (what) => {
        const t = performance.now();
        try {
          const res = await fetch(`http://${server}${what === "boot.ipxe-ttfb" ? "/boot.ipxe" : `/${name}/boot.cfg`}`);
          const ms = performance.now() - t;
          await res.arrayBuffer();
          note(what, ms, res.status === 200 ? undefined : `status ${res.status}`);
        } catch (err) {
          note(what, -1, (err as Error).message);
        }
      }),
    ]);
  };

  const lag = lagMeter();

  let running = true;
  process.on("SIGTERM", () => (running = false));
  const inFlight: Array<Promise<void>> = [];
  for (let n = 0; running; n++) {
    inFlight.push(probe(n));
    await new Promise((r) => setTimeout(r, every));
  }
  await Promise.all(inFlight);
  dhcp.close();
  writeFileSync(out, JSON.stringify({ probes, lagMs: lag.stop() } satisfies ProbeResults));
  process.exit(0);
}
