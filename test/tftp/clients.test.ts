/** The TFTP server against clients nobody here wrote: tftp-hpa, atftp, curl, busybox. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TransferEvent } from "../../src/tftp/server.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { waitFor } from "../helpers/cli.ts";
import { requireTool, sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";

for (const t of ["tftp", "atftp", "curl", "busybox", "xorriso"]) requireTool(t);

const iso = makeEsxiIso({ bigBytes: 33 * 1024 * 1024 + 12345 });
const listing = xorrisoListing(iso);
const files = [...listing].filter(([p, e]) => e.type === "file" && !/boot\.cfg$/i.test(p) && !p.startsWith("/BIG"));

type Fetch = (remote: string, local: string, port: number) => Promise<number>;
const spawnRc = async (argv: string[], timeoutMs = 60_000) => {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), timeoutMs);
  const rc = await p.exited;
  clearTimeout(timer);
  return rc;
};

/** Each client, with its default and a large block size. */
const clients: Array<[string, Fetch]> = [
  ["tftp-hpa (512, no options)", (r, l, port) => spawnRc(["tftp", "127.0.0.1", String(port), "-m", "binary", "-c", "get", r, l])],
  ["atftp default", (r, l, port) => spawnRc(["atftp", "-g", "-r", r, "-l", l, "127.0.0.1", String(port)])],
  ["atftp blksize 1468 windowsize 8", (r, l, port) => spawnRc(["atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r", r, "-l", l, "127.0.0.1", String(port)])],
  ["atftp blksize 65464 windowsize 4", (r, l, port) => spawnRc(["atftp", "--option", "blksize 65464", "--option", "windowsize 4", "-g", "-r", r, "-l", l, "127.0.0.1", String(port)])],
  ["curl default", (r, l, port) => spawnRc(["curl", "-sf", "-o", l, `tftp://127.0.0.1:${port}/${r}`])],
  ["curl --tftp-blksize 8192", (r, l, port) => spawnRc(["curl", "-sf", "--tftp-blksize", "8192", "-o", l, `tftp://127.0.0.1:${port}/${r}`])],
  ["busybox default", (r, l, port) => spawnRc(["busybox", "tftp", "-g", "-r", r, "-l", l, "127.0.0.1", String(port)])],
  ["busybox -b 1468", (r, l, port) => spawnRc(["busybox", "tftp", "-b", "1468", "-g", "-r", r, "-l", l, "127.0.0.1", String(port)])],
];

const engines = [
  ["worker engine (Bun, Linux)", { tftpEngine: "worker" as const }],
  ["event-loop engine (Bun sockets)", { tftpEngine: "event-loop" as const }],
  ["event-loop engine (node:dgram)", { tftpEngine: "event-loop" as const, udpRuntime: "node" as const }],
] as const;

for (const [engineName, hooks] of engines) {
  describe(`TFTP, ${engineName}`, () => {
    let app: TestApp;
    const events: Array<Pick<TransferEvent, "client" | "file" | "outcome" | "bytes" | "reason">> = [];
    beforeAll(async () => {
      app = await startTestApp({ source: iso, cacheMem: 64 << 20, tftp: { enabled: true, port: 0 } }, { ...hooks, onTftpTransfer: (e) => events.push(e) });
    });
    afterAll(() => app.close());
    const port = () => app.tftp!.port;

    for (const [clientName, fetch] of clients) {
      test(`${clientName}: every file of the image, byte-exact`, async () => {
        const dir = tempDir("tftp-get-");
        for (const [path, e] of files) {
          const local = join(dir, path.replaceAll("/", "_"));
          const remote = `esxi${path.toLowerCase()}`;
          const rc = await fetch(remote, local, port());
          expect({ path, rc }).toEqual({ path, rc: 0 });
          expect({ path, sha: sha256(readFileSync(local)) }).toEqual({ path, sha: e.sha256! });
        }
      }, 120_000);
    }

    test("block numbers roll over: 33 MiB at blksize 512 (tftp-hpa) and 1468 (curl)", async () => {
      const want = listing.get("/BIG.V00")!;
      const dir = tempDir("tftp-big-");
      expect(await spawnRc(["tftp", "127.0.0.1", String(port()), "-m", "binary", "-c", "get", "esxi/BIG.V00", join(dir, "a")], 180_000)).toBe(0);
      expect(sha256(readFileSync(join(dir, "a")))).toBe(want.sha256!);
      expect(await spawnRc(["curl", "-sf", "--tftp-blksize", "1468", "-o", join(dir, "b"), `tftp://127.0.0.1:${port()}/esxi/BIG.V00`], 180_000)).toBe(0);
      expect(sha256(readFileSync(join(dir, "b")))).toBe(want.sha256!);
      // The end of a transfer is reported once the server saw the last ACK, which may be after the client exits.
      const big = () => events.filter((e) => e.file === "esxi/BIG.V00" && e.outcome === "sent");
      await waitFor(() => big().length === 2, 5000, "both transfers reported");
      expect(big().every((e) => e.bytes === want.size)).toBe(true);
    }, 240_000);

    test("the same names as HTTP: mboot.efi, rewritten boot.cfg (also per MAC), leading / and \\ accepted", async () => {
      const dir = tempDir("tftp-names-");
      const get = async (remote: string) => {
        const local = join(dir, "f");
        const rc = await spawnRc(["curl", "-sf", "-o", local, `tftp://127.0.0.1:${port()}/${remote}`]);
        return rc === 0 ? readFileSync(local) : undefined;
      };
      expect(sha256((await get("esxi/mboot.efi"))!)).toBe(listing.get("/EFI/BOOT/BOOTX64.EFI")!.sha256!);
      for (const p of ["esxi/boot.cfg", "esxi/efi/boot/boot.cfg", "esxi/efi/boot/01-52-54-00-12-34-56/boot.cfg", "01-52-54-00-12-34-56/boot.cfg"]) {
        // Read over TFTP, so TFTP paths: the loader sends whatever it builds to the TFTP server.
        const text = (await get(p))?.toString();
        expect(text).toMatch(/^prefix=esxi$/m);
        expect(text).toMatch(/^tftpblksize=\d+$/m);
        expect(text).toContain("kernel=b.b00");
      }
      // tftp-hpa sends the name as given; a leading "/" or DOS separators are accepted.
      for (const remote of ["/esxi/B.B00", "\\esxi\\EFI\\BOOT\\BOOTX64.EFI"]) {
        const local = join(dir, "g");
        expect(await spawnRc(["tftp", "127.0.0.1", String(port()), "-m", "binary", "-c", "get", remote, local])).toBe(0);
      }
    });

    test("log lines at start and end: client, file, bytes, blksize, windowsize, seconds, retransmits", () => {
      const start = app.logs.find((l) => / RRQ esxi\/k\.b00: \d+ bytes, blksize \d+, windowsize \d+/.test(l.msg));
      expect(start).toBeDefined();
      const end = app.logs.find((l) => /^sent esxi\/k\.b00 to 127\.0\.0\.1:\d+: \d+ bytes, blksize \d+, windowsize \d+, [\d.]+ s, \d+ retransmits/.test(l.msg));
      expect(end).toBeDefined();
    });
  });
}
