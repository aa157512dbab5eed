/**
 * Clients that hang up: HTTP clients that close their connection mid-body and TFTP clients that vanish
 * mid-transfer (they acknowledge a few blocks, then never again), against `netboot serve` on loopback.
 * Afterwards its open file descriptors are back to the start figure (± 5) and its RSS within 10 MB of it,
 * both read from /proc after a warm-up of complete downloads.
 * NETBOOT_ABORTS (default 100 of each) sets the count; `npm run bench -- hardening` runs 1000.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { Opcode } from "../../src/tftp/constants.ts";
import { decodeTftpPacket, encodeTftpPacket } from "../../src/tftp/packet.ts";
import { freePort } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { tempDir } from "../helpers/tools.ts";
import { udpPeer } from "../helpers/udp.ts";

const N = Number(process.env.NETBOOT_ABORTS ?? 100);
// Vanishing TFTP clients at once. RSS keeps the high-water mark of running transfers (1000 in waves of 400
// leave about 16 MB, 2000 in waves of 400 about 17 MB: it follows the concurrency, not the count).
const WAVE = Number(process.env.NETBOOT_ABORT_WAVE ?? 100);
const iso = makeEsxiIso({ bigBytes: 32 << 20 });
let srv: Served;
let http = 0;
let tftp = 0;

const fds = () => readdirSync(`/proc/${srv.proc.pid}/fd`).length;
const rssMb = () => Number(readFileSync(`/proc/${srv.proc.pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;

beforeAll(async () => {
  http = await freePort();
  tftp = await freePort();
  srv = await serve([iso, "--ip", "127.0.0.1", "--http-port", String(http), "--tftp-port", String(tftp), "--dhcp", "off", "--no-bsdp", "--no-live", "--cache-mem", "0", "--state-dir", tempDir("aborted-state-")], {});
});
afterAll(() => srv?.stop());

/** Reads `bytes` of the body of GET path, then drops the connection. */
async function hangUp(path: string, bytes: number): Promise<number> {
  let got = 0;
  let stop: () => void = () => {};
  const enough = new Promise<void>((r) => (stop = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port: http,
    socket: {
      data(_s, d) {
        got += d.length;
        if (got >= bytes) stop();
      },
      close: () => stop(),
      error: () => stop(),
    },
  });
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await Promise.race([enough, Bun.sleep(10_000)]);
  sock.terminate();
  return got;
}

/**
 * An RRQ from `address`, three blocks acknowledged, then silence: the server must give the transfer up.
 * With `whole`, every block is acknowledged (a complete download of `file`).
 */
async function vanish(address: string, file = "esxi/BIG.V00", whole = false): Promise<boolean> {
  const peer = await udpPeer(address);
  // Like any client, the last packet is sent again when nothing comes back (hundreds of RRQs at once may overflow
  // the server's receive queue): up to 5 times, a second apart.
  let last = { data: encodeTftpPacket({ op: Opcode.RRQ, filename: file, mode: "octet", options: new Map([["blksize", "1468"]]) }), port: tftp };
  const next = async () => {
    for (let i = 0; i < 6; i++) {
      if (i) peer.send(last.data, last.port, "127.0.0.1");
      const d = await peer.maybe(1000);
      if (d) return d;
    }
    return undefined;
  };
  const send = (data: Uint8Array, port: number) => {
    last = { data, port };
    peer.send(data, port, "127.0.0.1");
  };
  try {
    send(last.data, tftp);
    let d = await next();
    if (!d) return false;
    let pkt = decodeTftpPacket(d.data);
    if (pkt.op === Opcode.OACK) send(encodeTftpPacket({ op: Opcode.ACK, block: 0 }), d.port);
    for (let acked = 0; whole || acked < 3; ) {
      d = await next();
      if (!d) return false;
      pkt = decodeTftpPacket(d.data);
      if (pkt.op !== Opcode.DATA) return false;
      send(encodeTftpPacket({ op: Opcode.ACK, block: pkt.block }), d.port);
      acked = pkt.block;
      if (pkt.data.length < 1468) return true;
    }
    return true;
  } finally {
    peer.close();
  }
}

async function settle(until: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !until()) await Bun.sleep(250);
}

test(`${N} HTTP clients closing mid-body and ${N} TFTP clients vanishing mid-transfer: fds and RSS back to the start`, async () => {
  // Warm-up: complete downloads over both protocols, so lazily made buffers and workers exist already.
  for (let i = 0; i < 3; i++) expect(await hangUp("/esxi/BIG.V00", 32 << 20)).toBeGreaterThanOrEqual(32 << 20);
  for (let i = 0; i < 3; i++) expect(await vanish("127.0.0.1", "esxi/B.B00", true)).toBe(true);
  await Bun.sleep(500);
  const start = { fds: fds(), rss: rssMb() };

  let cut = 0;
  for (let i = 0; i < N; i += 50) {
    const got = await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => hangUp("/esxi/BIG.V00", 256 * 1024)));
    cut += got.filter((g) => g >= 256 * 1024 && g < 32 << 20).length;
  }
  expect(cut).toBe(N);
  // TFTP from many loopback addresses, 4 per address (the cap is 16, and an RRQ sent again may start a
  // second transfer), WAVE at a time (the cap is 512 in all).
  let vanished = 0;
  for (let i = 0; i < N; i += WAVE) {
    const wave = Array.from({ length: Math.min(WAVE, N - i) }, (_, j) => vanish(`127.0.${1 + Math.floor((i + j) / 4 / 250)}.${2 + (Math.floor((i + j) / 4) % 250)}`));
    vanished += (await Promise.all(wave)).filter(Boolean).length;
    // Each is given up after ten timeouts in a row: about 10 s from the 10 ms floor, more when the burst
    // measured longer round trips (the timeout starts from the measured one and doubles up to 8 s each).
    await settle(() => fds() <= start.fds + 5, 90_000);
  }
  expect(vanished).toBe(N);
  await Bun.sleep(1000);
  const end = { fds: fds(), rss: rssMb() };
  console.error(`[aborted] ${N} HTTP + ${N} TFTP hang-ups: fds ${start.fds} → ${end.fds}, RSS ${start.rss.toFixed(1)} → ${end.rss.toFixed(1)} MB`);
  expect(Math.abs(end.fds - start.fds)).toBeLessThanOrEqual(5);
  expect(end.rss - start.rss).toBeLessThan(10);
  // And it still serves.
  expect(await hangUp("/esxi/B.B00", 300_000)).toBeGreaterThanOrEqual(300_000);
}, 120_000 + N * 300);

