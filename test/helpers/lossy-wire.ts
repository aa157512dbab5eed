#!/usr/bin/env bun
/**
 * A lossy wire for tests: forwards Ethernet frames between two interfaces (AF_PACKET, raw) and drops and
 * reorders some of them. This kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set), so the impairment
 * `tc qdisc … netem loss 20% reorder` would give is done here, in the namespace between client and server.
 * Seeded, so a failing run can be repeated.
 *
 *   bun test/helpers/lossy-wire.ts IF_A IF_B LOSS REORDER SEED     (LOSS, REORDER in 0..1)
 */
import { dlopen } from "bun:ffi";
import { readFileSync } from "node:fs";

const [ifA, ifB, lossArg, reorderArg, seedArg] = process.argv.slice(2);
if (!ifA || !ifB) throw new Error("usage: lossy-wire.ts IF_A IF_B LOSS REORDER SEED");
const loss = Number(lossArg ?? 0.2);
const reorder = Number(reorderArg ?? 0.25);
let seed = Number(seedArg ?? 1) >>> 0 || 1;
const random = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 0x100000000;
};

const L = dlopen("libc.so.6", {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  recvfrom: { args: ["i32", "ptr", "u64", "i32", "ptr", "ptr"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
}).symbols;

const AF_PACKET = 17;
const SOCK_RAW = 3;
const ETH_P_ALL_BE = 0x0300; // htons(0x0003)
const PACKET_OUTGOING = 4;

function open(iface: string): number {
  const fd = L.socket(AF_PACKET, SOCK_RAW, ETH_P_ALL_BE);
  if (fd < 0) throw new Error("socket(AF_PACKET) failed (root?)");
  const ifindex = Number(readFileSync(`/sys/class/net/${iface}/ifindex`, "utf8"));
  const sll = new DataView(new ArrayBuffer(20));
  sll.setUint16(0, AF_PACKET, true);
  sll.setUint16(2, 0x0003, false);
  sll.setInt32(4, ifindex, true);
  if (L.bind(fd, new Uint8Array(sll.buffer), 20) !== 0) throw new Error(`bind to ${iface} failed`);
  return fd;
}

const fds = [open(ifA), open(ifB)];
const pfd = new Int32Array(new ArrayBuffer(16));
pfd[0] = fds[0]!;
pfd[1] = 1;
pfd[2] = fds[1]!;
pfd[3] = 1;
const buf = new Uint8Array(new ArrayBuffer(65536));
const from = new Uint8Array(new ArrayBuffer(20));
const fromLen = new Uint32Array(new ArrayBuffer(4));
/** A frame held back to be reordered, per direction, and when it was held. Held at most HOLD_MS. */
const held: Array<Uint8Array | undefined> = [undefined, undefined];
const heldAt = [0, 0];
const HOLD_MS = 2;

// Runs until killed (SIGKILL: the loop never returns to the event loop, so no signal handler would run).

for (;;) {
  const holding = held[0] !== undefined || held[1] !== undefined;
  const n = L.poll(pfd, 2, holding ? 1 : 200);
  // A held frame goes out after the next frame in its direction, or after HOLD_MS (as netem's reorder
  // sends some packets at once and delays the rest a little).
  const now = performance.now();
  for (const side of [0, 1]) {
    const h = held[side];
    if (h && now - heldAt[side]! >= HOLD_MS) {
      L.send(fds[1 - side]!, h, h.length, 0);
      held[side] = undefined;
    }
  }
  if (n <= 0) continue;
  for (const side of [0, 1]) {
    if (!(pfd[side * 2 + 1]! >>> 16)) continue;
    fromLen[0] = 20;
    const len = L.recvfrom(fds[side]!, buf, buf.length, 0x40, from, fromLen);
    if (len <= 0) continue;
    if (from[10] === PACKET_OUTGOING) continue; // our own forwarded frames, seen leaving this interface
    if (random() < loss) {
      continue;
    }
    const frame = buf.slice(0, len);
    const out = fds[1 - side]!;
    if (!held[side] && random() < reorder) {
      held[side] = frame; // goes out after the next frame in this direction, or after HOLD_MS
      heldAt[side] = now;
      continue;
    }
    L.send(out, frame, frame.length, 0);
    const h = held[side];
    if (h) {
      L.send(out, h, h.length, 0);
      held[side] = undefined;
    }
  }
}
