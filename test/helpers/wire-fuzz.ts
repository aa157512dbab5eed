/**
 * The over-the-wire fuzzer, run inside a client namespace (`ip netns exec NS bun test/helpers/wire-fuzz.ts
 * --server IP --count N [--seed S] [--rate R]`): the seeded cases of scripts/fuzz.ts (mutated DHCP and BSDP
 * packets, TFTP packets) from one address, DHCP ones broadcast to 67 and unicast to 67 and 4011, TFTP ones
 * to 69, R a second (default 10,000). Whatever comes back is read and dropped. Prints one JSON line.
 */
import { cases } from "../../scripts/fuzz.ts";
import { bindSocketToDevice } from "../../src/net/device.ts";
import { openUdp } from "../../src/net/udp.ts";

const argv = process.argv.slice(2);
const arg = (n: string, d: string) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1]! : d;
};
const server = arg("server", "");
const count = Number(arg("count", "100000"));
const seed = Number(arg("seed", "1"));
const rate = Number(arg("rate", "10000"));
const iface = arg("iface", "lan0");

let answers = 0;
const onMessage = () => void answers++;
// DHCP from port 68 (as a client) and TFTP from an ordinary port, both tied to the link.
const dhcp = await openUdp({ address: "0.0.0.0", port: 68, service: "fuzz", onMessage });
const tftp = await openUdp({ address: "0.0.0.0", port: 0, service: "fuzz", onMessage });
for (const s of [dhcp, tftp]) {
  const b = await bindSocketToDevice(s.fd, iface);
  if (!b.ok) throw new Error(`bind to ${iface}: ${b.why}`);
}
dhcp.setBroadcast(true);

// Three in four DHCP/BSDP (the seeds hold both), one in four TFTP.
const dhcpCases = cases("dhcp", Math.ceil((count * 3) / 4), seed);
const tftpCases = cases("tftp", Math.ceil(count / 4), seed);
const t0 = performance.now();
let sent = 0;
for (let i = 0; i < count; i++) {
  if (i % 4 === 3) {
    const c = tftpCases.next();
    if (!c.done) tftp.send(c.value, 69, server);
  } else {
    const c = dhcpCases.next();
    if (!c.done) {
      const k = i % 3;
      dhcp.send(c.value, k === 2 ? 4011 : 67, k === 0 ? "255.255.255.255" : server);
    }
  }
  sent++;
  // Paced in bursts of 100.
  if (i % 100 === 99) {
    const due = t0 + (sent / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
  }
}
await Bun.sleep(1000);
console.log(JSON.stringify({ sent, answers, seconds: (performance.now() - t0) / 1000 }));
process.exit(0);
