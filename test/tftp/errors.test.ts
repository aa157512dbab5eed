/** Error paths, hostile names, garbage and refused options; also netascii through tftp-hpa's default mode. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, Opcode } from "../../src/tftp/constants.ts";
import { decodeTftpPacket, encodeTftpPacket } from "../../src/tftp/packet.ts";
import type { TransferEvent } from "../../src/tftp/server.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";
import { udpPeer } from "../helpers/udp.ts";

requireTool("tftp");
const iso = makeEsxiIso();
/** Ends a transfer the test started and walked away from, so it does not keep retransmitting into later tests. */
const abort = (peer: { send(d: Uint8Array, port: number): void }, port: number) =>
  peer.send(encodeTftpPacket({ op: Opcode.ERROR, code: ErrorCode.Undefined, message: "test done" }), port);
const rrq = (filename: string, options: Record<string, string> = {}, mode = "octet") =>
  encodeTftpPacket({ op: Opcode.RRQ, filename, mode, options: new Map(Object.entries(options)) });

for (const engine of ["worker", "event-loop"] as const) {
  describe(`TFTP errors (${engine} engine)`, () => {
    let app: TestApp;
    const events: Array<Pick<TransferEvent, "client" | "file" | "outcome" | "bytes" | "reason">> = [];
    beforeAll(async () => {
      app = await startTestApp({ source: iso, tftp: { enabled: true, port: 0 } }, { tftpEngine: engine, onTftpTransfer: (e) => events.push(e) });
    });
    afterAll(() => app.close());
    const port = () => app.tftp!.port;

    const expectError = async (packet: Uint8Array, code: number) => {
      const peer = await udpPeer();
      try {
        peer.send(packet, port());
        const reply = decodeTftpPacket((await peer.next()).data);
        expect(reply).toMatchObject({ op: Opcode.ERROR, code });
        return reply;
      } finally {
        peer.close();
      }
    };

    test("WRQ: error 2, access violation (read-only server)", async () => {
      await expectError(encodeTftpPacket({ op: Opcode.WRQ, filename: "esxi/x", mode: "octet", options: new Map() }), ErrorCode.AccessViolation);
      const dir = tempDir();
      writeFileSync(join(dir, "up"), "data");
      const p = Bun.spawn(["tftp", "127.0.0.1", String(port()), "-m", "binary", "-c", "put", join(dir, "up"), "esxi/up"], { stdout: "pipe", stderr: "pipe" });
      const out = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
      await p.exited;
      expect(out).toMatch(/Error code 2/);
    });

    test("missing file: error 1", async () => {
      await expectError(rrq("esxi/NOPE.V00"), ErrorCode.FileNotFound);
      await expectError(rrq("no-such-image/b.b00"), ErrorCode.FileNotFound);
      await expectError(rrq("esxi/EFI"), ErrorCode.FileNotFound); // a directory
    });

    test.each(["esxi/../../etc/passwd", "../etc/passwd", "esxi\\..\\..\\etc\\passwd", "/esxi/EFI/../../../x"])("escape %p: error 2", async (name) => {
      await expectError(rrq(name), ErrorCode.AccessViolation);
    });

    test("unsupported mode: error 4", async () => {
      await expectError(rrq("esxi/B.B00", {}, "mail"), ErrorCode.IllegalOperation);
    });

    test("garbage to port 69 and to a transfer's port changes nothing", async () => {
      const junk = [new Uint8Array([0]), new Uint8Array([0, 99, 1, 2]), new Uint8Array(600).fill(0x41), new Uint8Array([0, 1, 0x61])];
      const peer = await udpPeer();
      try {
        for (const j of junk) peer.send(j, port());
        expect(await peer.maybe(300)).toBeUndefined(); // dropped silently
        // A real transfer, lock-step, with junk thrown at its port half way.
        peer.send(rrq("esxi/B.B00"), port());
        let got = 0;
        let expectBlock = 1;
        for (;;) {
          const d = await peer.next();
          const p = decodeTftpPacket(d.data);
          if (p.op !== Opcode.DATA) throw new Error(`unexpected ${JSON.stringify(p)}`);
          if (p.block !== (expectBlock & 0xffff)) continue; // a retransmission
          got += p.data.length;
          if (expectBlock === 50) for (const j of junk) peer.send(j, d.port);
          peer.send(encodeTftpPacket({ op: Opcode.ACK, block: p.block }), d.port);
          expectBlock++;
          if (p.data.length < 512) break;
        }
        expect(got).toBe(300_000);
      } finally {
        peer.close();
      }
    });

    test("an OACK the client refuses (error 8) ends the transfer cleanly", async () => {
      const peer = await udpPeer();
      try {
        peer.send(rrq("esxi/B.B00", { blksize: "1468", tsize: "0" }), port());
        const d = await peer.next();
        expect(decodeTftpPacket(d.data)).toEqual({ op: Opcode.OACK, options: new Map([["blksize", "1468"], ["tsize", "300000"]]) });
        peer.send(encodeTftpPacket({ op: Opcode.ERROR, code: ErrorCode.OptionRefused, message: "no thanks" }), d.port);
        expect(await peer.maybe(1500)).toBeUndefined(); // nothing more is sent
        await Bun.sleep(100);
        const e = events.find((x) => x.client.endsWith(`:${peer.port}`));
        expect(e).toMatchObject({ outcome: "refused", file: "esxi/B.B00" });
      } finally {
        peer.close();
      }
    });

    test("duplicate ACKs never cause duplicate DATA (no Sorcerer's Apprentice)", async () => {
      const peer = await udpPeer();
      try {
        peer.send(rrq("esxi/B.B00"), port());
        const d1 = await peer.next();
        const ack1 = encodeTftpPacket({ op: Opcode.ACK, block: 1 });
        peer.send(ack1, d1.port);
        peer.send(ack1, d1.port);
        peer.send(ack1, d1.port);
        const d2 = decodeTftpPacket((await peer.next()).data);
        expect(d2).toMatchObject({ op: Opcode.DATA, block: 2 });
        // DATA 2 acknowledged at once, inside any timeout (10 ms at the least): the packets before DATA 3 are
        // what the three ACKs of block 1 caused, and that is no second DATA 2.
        peer.send(encodeTftpPacket({ op: Opcode.ACK, block: 2 }), d1.port);
        const before: number[] = [];
        for (;;) {
          const p = decodeTftpPacket((await peer.next()).data) as { op: number; block?: number };
          if (p.op === Opcode.DATA && p.block === 3) break;
          before.push(p.block ?? -1);
        }
        expect(before).toEqual([]);
        abort(peer, d1.port);
      } finally {
        peer.close();
      }
    });

    test("a client that stops answering gets retransmissions, then the transfer is given up", async () => {
      const peer = await udpPeer();
      try {
        peer.send(rrq("esxi/B.B00"), port());
        const first = await peer.next();
        const again = await peer.next(2000); // same block, resent after the timeout
        expect(decodeTftpPacket(again.data)).toEqual(decodeTftpPacket(first.data));
        expect(again.port).toBe(first.port);
        abort(peer, first.port);
      } finally {
        peer.close();
      }
    });

    test("netascii (tftp-hpa's default mode) is converted, and the client gets the text back", async () => {
      const dir = tempDir();
      const p = Bun.spawn(["tftp", "127.0.0.1", String(port()), "-c", "get", "esxi/boot.cfg", join(dir, "boot.cfg")], { stdout: "pipe", stderr: "pipe" });
      expect(await p.exited).toBe(0);
      const text = readFileSync(join(dir, "boot.cfg"), "utf8");
      expect(text).toContain("prefix=esxi\n");
      expect(text).not.toContain("\r");
    });
  });
}
