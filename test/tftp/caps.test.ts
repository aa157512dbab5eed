/**
 * The TFTP caps: one client address holds at most 16 transfers (a looping client or a fuzzer sending RRQs
 * into the void cannot take every slot); past it, error 0 "server busy, try again", while other clients
 * and the transfers already running go on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ErrorCode, Opcode } from "../../src/tftp/constants.ts";
import { decodeTftpPacket, encodeTftpPacket } from "../../src/tftp/packet.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { udpPeer, type UdpPeer } from "../helpers/udp.ts";

const iso = makeEsxiIso();
const rrq = (filename: string) => encodeTftpPacket({ op: Opcode.RRQ, filename, mode: "octet", options: new Map() });
const abort = (peer: UdpPeer, port: number) => peer.send(encodeTftpPacket({ op: Opcode.ERROR, code: ErrorCode.Undefined, message: "test done" }), port, "127.0.0.1");

for (const engine of ["worker", "event-loop"] as const) {
  describe(`TFTP caps (${engine} engine)`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp({ source: iso, tftp: { enabled: true, port: 0 } }, { tftpEngine: engine });
    });
    afterAll(() => app.close());

    test("16 transfers per address; the 17th is refused busy, another address is served, a slot freed is taken again", async () => {
      const port = app.tftp!.port;
      const stray = await udpPeer("127.0.0.2");
      const other = await udpPeer("127.0.0.3");
      const held: number[] = [];
      try {
        // Sixteen RRQs whose DATA 1 is never acknowledged: each holds a transfer.
        for (let i = 0; i < 16; i++) {
          stray.send(rrq("esxi/B.B00"), port, "127.0.0.1");
          const d = await stray.next();
          expect(decodeTftpPacket(d.data)).toMatchObject({ op: Opcode.DATA, block: 1 });
          held.push(d.port);
        }
        stray.send(rrq("esxi/B.B00"), port, "127.0.0.1");
        let reply = await stray.next();
        // Retransmissions of the held transfers may come first: skip to the answer from the request port's reply.
        while (held.includes(reply.port)) reply = await stray.next();
        expect(decodeTftpPacket(reply.data)).toMatchObject({ op: Opcode.ERROR, code: ErrorCode.Undefined, message: "server busy, try again" });
        // A second refusal within the second is counted, not logged.
        stray.send(rrq("esxi/B.B00"), port, "127.0.0.1");
        do reply = await stray.next();
        while (held.includes(reply.port));
        expect(decodeTftpPacket(reply.data)).toMatchObject({ op: Opcode.ERROR, message: "server busy, try again" });
        expect(app.logs.filter((l) => /refused .*"server busy"/.test(l.msg)).map((l) => l.msg)).toEqual([`refused 1 request from 127.0.0.2 ("server busy"): 16 transfers already running for one address`]);
        // Another client is not affected.
        other.send(rrq("esxi/B.B00"), port, "127.0.0.1");
        const d = await other.next();
        expect(decodeTftpPacket(d.data)).toMatchObject({ op: Opcode.DATA, block: 1 });
        abort(other, d.port);
        // One of the sixteen ends: its slot is free again.
        abort(stray, held.shift()!);
        await Bun.sleep(100);
        stray.send(rrq("esxi/B.B00"), port, "127.0.0.1");
        let again = await stray.next();
        while (held.includes(again.port)) again = await stray.next();
        expect(decodeTftpPacket(again.data)).toMatchObject({ op: Opcode.DATA, block: 1 });
        held.push(again.port);
      } finally {
        for (const p of held) abort(stray, p);
        await Bun.sleep(50);
        stray.close();
        other.close();
      }
    });
  });
}

describe("past the cap on all transfers, a request waits for a slot (a rack powered on at once is not refused)", () => {
  test("two slots, three machines: the third is served when one ends, without a 'server busy' and without sending again", async () => {
    const { startTftpServer } = await import("../../src/tftp/server.ts");
    const { createBootFiles } = await import("../../src/boot/files.ts");
    const { loadImage } = await import("../../src/boot/image.ts");
    const { openTree } = await import("../../src/files/open.ts");
    const { memoryLogger } = await import("../../src/log.ts");
    const image = await loadImage(await openTree(iso), "esxi");
    const log = memoryLogger();
    const server = await startTftpServer({ files: createBootFiles({ images: [image], httpBase: "http://127.0.0.1" }), host: "127.0.0.1", port: 0, log, maxTransfers: 2 });
    const peers = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4"].map((a) => udpPeer(a)));
    try {
      const [a, b, c] = peers as [UdpPeer, UdpPeer, UdpPeer];
      a.send(rrq("esxi/B.B00"), server.port, "127.0.0.1");
      const da = await a.next();
      b.send(rrq("esxi/B.B00"), server.port, "127.0.0.1");
      const db = await b.next();
      expect([decodeTftpPacket(da.data), decodeTftpPacket(db.data)]).toMatchObject([{ op: Opcode.DATA, block: 1 }, { op: Opcode.DATA, block: 1 }]);
      // The third waits: nothing comes back, and its retransmission keeps its one place in the queue.
      c.send(rrq("esxi/B.B00"), server.port, "127.0.0.1");
      c.send(rrq("esxi/B.B00"), server.port, "127.0.0.1");
      await expect(Promise.race([c.next(), Bun.sleep(300).then(() => "nothing")])).resolves.toBe("nothing");
      expect(log.lines.filter((l) => /wait for a slot/.test(l.msg)).map((l) => l.msg)).toEqual([`1 request from 1 address wait for a slot: 2 transfers running`]);
      // One ends: the waiting one is served at once.
      abort(a, da.port);
      const dc = await c.next();
      expect(decodeTftpPacket(dc.data)).toMatchObject({ op: Opcode.DATA, block: 1 });
      abort(b, db.port);
      abort(c, dc.port);
      // Only the one transfer started for the third machine (its duplicate RRQ started nothing).
      await expect(Promise.race([c.next(), Bun.sleep(300).then(() => "nothing")])).resolves.toBe("nothing");
    } finally {
      for (const p of peers) p.close();
      await server.close();
    }
  });
});
