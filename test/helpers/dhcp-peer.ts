/**
 * A scripted DHCP/BSDP client, run inside a test namespace (`ip netns exec NS bun dhcp-peer.ts`): binds
 * UDP PORT (68, or a BSDP reply port), sends each packet of the script (hex, built by the test from hand-made
 * or captured fixtures) to 255.255.255.255:67 and collects every datagram that arrives within its wait.
 * stdin: JSON {port, steps: [{hex, waitMs}]}; stdout: JSON [[{from, port, hex}]] per step.
 */
import { createSocket } from "node:dgram";

interface Script {
  port: number;
  to?: string;
  steps: Array<{ hex: string; waitMs: number }>;
}

const script = JSON.parse(await new Response(Bun.stdin.stream()).text()) as Script;
const sock = createSocket({ type: "udp4", reuseAddr: true });
await new Promise<void>((resolve, reject) => {
  sock.once("error", reject);
  sock.bind(script.port, "0.0.0.0", () => resolve());
});
sock.setBroadcast(true);
let current: Array<{ from: string; port: number; hex: string }> = [];
sock.on("message", (msg, rinfo) => current.push({ from: rinfo.address, port: rinfo.port, hex: Buffer.from(msg).toString("hex") }));
const out: (typeof current)[] = [];
for (const step of script.steps) {
  current = [];
  await new Promise<void>((resolve, reject) => sock.send(Buffer.from(step.hex, "hex"), 67, script.to ?? "255.255.255.255", (err) => (err ? reject(err) : resolve())));
  await Bun.sleep(step.waitMs);
  out.push(current);
}
sock.close();
process.stdout.write(JSON.stringify(out));
