/** tcpdump captures inside test namespaces, and tshark (Wireshark's dissectors) to read them. */
import { join } from "node:path";
import { tempDir } from "./tools.ts";

export interface Capture {
  file: string;
  stop(): Promise<void>;
}

/**
 * tcpdump in namespace `ns` on `ifname` until stop(). --immediate-mode: without it libpcap hands packets
 * over in blocks, once a second, and a capture stopped sooner holds none. -Z root: the file stays writable.
 */
export async function startCapture(ns: string, ifname: string, filter = "udp port 67 or udp port 68"): Promise<Capture> {
  const file = join(tempDir("pcap-"), "capture.pcap");
  const p = Bun.spawn(["ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", ifname, "-U", "-w", file, filter], { stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(1000); // tcpdump needs a moment before it captures
  return {
    file,
    async stop() {
      await Bun.sleep(300);
      if (p.exitCode === null) p.kill("SIGTERM");
      await p.exited;
    },
  };
}

export function tshark(args: string[]): string {
  const r = Bun.spawnSync(["tshark", ...args], { stdout: "pipe", stderr: "pipe" });
  return r.stdout.toString();
}

/** `tshark -T fields` rows, split on "|". */
export function tsharkFields(file: string, filter: string, fields: string[]): string[][] {
  const out = tshark(["-r", file, "-Y", filter, "-T", "fields", "-E", "separator=|", ...fields.flatMap((f) => ["-e", f])]);
  return out
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.split("|"));
}

/** The verbose dissection of the packets `filter` selects; fails the test if any is malformed or flagged as an error. */
export function cleanDissection(file: string, filter: string): string {
  const text = tshark(["-r", file, "-Y", filter, "-V"]);
  if (!text.includes("Dynamic Host Configuration Protocol")) throw new Error(`tshark found no DHCP packet for ${filter} in ${file}`);
  const bad = /Malformed|Expert Info \(Error/.exec(text);
  if (bad) throw new Error(`tshark flags a packet: ${text.slice(Math.max(0, bad.index - 2000), bad.index + 200)}`);
  return text;
}
