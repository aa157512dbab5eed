/**
 * What the kernel may refuse a TFTP server: on macOS a datagram over 9,216 bytes fails with EMSGSIZE and a
 * connected socket gets ENOBUFS when the interface pushes back (xnu udp_usrreq.c); a throw inside a Bun
 * UDP handler ends the process. Each refusal ends at most its own transfer; the server goes on.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { guardSend, openUdp, UdpSendError, type UdpOptions, type UdpSocket } from "../../src/net/udp.ts";
import { platformMaxBlksize } from "../../src/tftp/negotiate.ts";
import { tftpRead } from "../../src/tftp/client.ts";
import { Opcode } from "../../src/tftp/constants.ts";
import { encodeTftpPacket } from "../../src/tftp/packet.ts";
import { startTftpServer, type TftpServerHandle } from "../../src/tftp/server.ts";
import { createBootFiles } from "../../src/boot/files.ts";
import { loadImage } from "../../src/boot/image.ts";
import { openTree } from "../../src/files/open.ts";
import { memoryLogger } from "../../src/log.ts";
import { sampleIso } from "../helpers/app.ts";

const errnoError = (code: string) => Object.assign(new Error(`${code}: refused, send`), { code });

/** Real sockets whose sends fail as macOS's would, for the transfers the test picks. */
function failingSockets(plan: (n: number) => string | undefined) {
  let n = 0;
  return async (o: UdpOptions): Promise<UdpSocket> => {
    const real = await openUdp(o);
    const code = plan(n++);
    let thrown = 0;
    const fail = <T>(ok: () => T, notSent: T): T =>
      // ENOBUFS passes after two refusals (the interface drained); the others never do.
      code && (code !== "ENOBUFS" || thrown++ < 2) ? guardSend(() => { throw errnoError(code); }, notSent) : ok();
    return {
      ...real,
      send: (d, p, a) => fail(() => real.send(d, p, a), false),
      sendMany: (ps, p, a) => fail(() => real.sendMany(ps, p, a), 0),
    };
  };
}

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await Bun.sleep(20);
}

let server: TftpServerHandle | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(opts: { plan?: (n: number) => string | undefined; platform?: string }) {
  const tree = await openTree(sampleIso);
  const image = await loadImage(tree, "esxi");
  const log = memoryLogger();
  const events: Array<{ outcome: string; reason: string | undefined; file: string }> = [];
  server = await startTftpServer({
    files: createBootFiles({ images: [image], httpBase: "http://127.0.0.1" }),
    host: "127.0.0.1",
    port: 0,
    log,
    engine: "event-loop",
    platform: opts.platform,
    openSocket: opts.plan ? failingSockets(opts.plan) : undefined,
    events: (e) => void (e.type === "tftp.end" && events.push({ outcome: e.outcome, reason: e.reason, file: e.file })),
  });
  return { port: server.port, log, events };
}

describe("send errors end one transfer, never the server", () => {
  test("guardSend: ENOBUFS and EAGAIN are 'not sent', EMSGSIZE and EHOSTUNREACH are errors", () => {
    for (const code of ["ENOBUFS", "EAGAIN"]) expect(guardSend(() => { throw errnoError(code); }, false)).toBe(false);
    for (const code of ["EMSGSIZE", "EHOSTUNREACH", "ENETDOWN"]) {
      expect(() => guardSend(() => { throw errnoError(code); }, false)).toThrow(UdpSendError);
    }
  });

  test.each(["EMSGSIZE", "EHOSTUNREACH", "ENETDOWN"])("%s on one transfer: it fails with the reason, the next transfer is served", async (code) => {
    const { port, events } = await start({ plan: (n) => (n === 0 ? code : undefined) });
    await expect(tftpRead("esxi/B.B00", { server: "127.0.0.1", port, timeoutMs: 300, retries: 0 })).rejects.toThrow(/no answer/);
    expect(events[0]).toMatchObject({ outcome: "failed", reason: expect.stringContaining(`send failed: ${code}`) });
    const ok = await tftpRead("esxi/B.B00", { server: "127.0.0.1", port });
    expect(ok.bytes.length).toBe(65536);
    await until(() => events.length === 2);
    expect(events[1]).toMatchObject({ outcome: "sent", file: "esxi/B.B00" });
  });

  test("ENOBUFS (the interface pushed back) is a lost packet: retransmission finishes the transfer", async () => {
    const { port, events } = await start({ plan: () => "ENOBUFS" });
    const r = await tftpRead("esxi/B.B00", { server: "127.0.0.1", port, blksize: 1468, windowsize: 4 });
    expect(r.bytes.length).toBe(65536);
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ outcome: "sent" });
  });

  test("a client that closes its port mid-transfer: the ICMP 'port unreachable' ends that transfer, nothing else", async () => {
    const { port, events } = await start({});
    let got = 0;
    const c = await openUdp({ address: "127.0.0.1", port: 0, service: "test", onMessage: () => void got++ });
    c.send(encodeTftpPacket({ op: Opcode.RRQ, filename: "esxi/B.B00", mode: "octet", options: new Map() }), port, "127.0.0.1");
    await until(() => got > 0);
    c.close();
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ outcome: "failed", reason: "the client's port is closed (ICMP port unreachable)" });
    expect((await tftpRead("esxi/B.B00", { server: "127.0.0.1", port })).bytes.length).toBe(65536);
  });

  test("a UDP handler that throws does not end the process; the socket goes on", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const s = await openUdp({
      address: "127.0.0.1",
      port: 0,
      service: "test",
      onMessage: () => {
        calls++;
        throw new Error("handler bug");
      },
      onHandlerError: (e) => errors.push(e),
    });
    const c = await openUdp({ address: "127.0.0.1", port: 0, service: "test", onMessage: () => {} });
    c.send(new Uint8Array([1]), s.port, "127.0.0.1");
    c.send(new Uint8Array([2]), s.port, "127.0.0.1");
    for (let i = 0; i < 50 && calls < 2; i++) await Bun.sleep(10);
    expect(calls).toBe(2);
    expect(errors).toHaveLength(2);
    s.close();
    c.close();
  });
});

describe("blksize on macOS", () => {
  test("never more than 9,212 on darwin (a 9,216-byte datagram limit), whatever the client asks", async () => {
    expect(platformMaxBlksize("darwin")).toBe(9212);
    expect(platformMaxBlksize("linux")).toBe(65464);
    const { port } = await start({ platform: "darwin" });
    const r = await tftpRead("esxi/B.B00", { server: "127.0.0.1", port, blksize: 65464 });
    expect(r.oack?.get("blksize")).toBe("9212");
    expect(r.bytes.length).toBe(65536);
  });
});
