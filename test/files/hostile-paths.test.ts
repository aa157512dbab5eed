/**
 * Hostile paths, generated as a corpus (every encoding of `..` and of the separator under every prefix,
 * absolute paths, drive letters, URLs, NUL, overlong UTF-8, very long names, symlinks that lead out of a
 * directory source), sent as raw bytes (no client to tidy them up) over HTTP to both edges and as TFTP RRQs,
 * against an ISO source and a directory source. Outside the image sit a secret file and /etc/passwd: not
 * one byte of either may come back, whatever the status.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Opcode } from "../../src/tftp/constants.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { tempDir } from "../helpers/tools.ts";
import { udpPeer } from "../helpers/udp.ts";

const outside = tempDir("hostile-outside-");
const SECRET = `NETBOOT-SECRET-${process.pid}-${Date.now()}`;
const secretPath = join(outside, "secret.txt");
writeFileSync(secretPath, `${SECRET}\n`);
// A directory source with symlinks that lead out of it (and one that stays inside, which is fine).
const dirSource = join(outside, "tree");
mkdirSync(join(dirSource, "EFI", "BOOT"), { recursive: true });
writeFileSync(join(dirSource, "B.B00"), "inside\n");
writeFileSync(join(dirSource, "EFI", "BOOT", "BOOT.CFG"), "kernel=/b.b00\nmodules=/b.b00\n");
symlinkSync("/etc", join(dirSource, "etc-link"));
symlinkSync(secretPath, join(dirSource, "secret-link"));
symlinkSync("..", join(dirSource, "up"));
symlinkSync("B.B00", join(dirSource, "inside-link"));

const secretRel = secretPath.slice(1); // "tmp/…/secret.txt"
const dots = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%c0%ae%c0%ae", "%e0%80%ae%e0%80%ae", "%252e%252e", "\xc0\xae\xc0\xae", "%ef%bc%8e%ef%bc%8e", "...", "..;"];
const seps = ["/", "%2f", "%2F", "\\", "%5c", "%c0%af", "%c1%9c", "//", "\xc0\xaf"];
const prefixes = ["/", "/esxi/", "/esxi/EFI/", "/esxi/EFI/BOOT/", "/esxi/up/", "/esxi/secret-link/"];
const targets = ["etc/passwd", secretRel];

function corpus(): string[] {
  const out = new Set<string>();
  for (const p of prefixes) for (const d of dots) for (const s of seps) for (const t of targets) out.add(p + `${d}${s}`.repeat(10) + t.replaceAll("/", s));
  for (const abs of ["/etc/passwd", secretPath]) {
    out.add(abs);
    out.add(`/${abs}`);
    out.add(`/esxi${abs}`);
    out.add(`/esxi/${abs}`);
    out.add(`/esxi/%2f${abs.slice(1).replaceAll("/", "%2f")}`);
    out.add(`file://${abs}`);
    out.add(`http://127.0.0.1${abs}`);
    out.add(`/esxi/B.B00%00/../../..${abs}`);
    out.add(`/esxi/B.B00\x00/../../..${abs}`);
  }
  for (const w of ["C:\\Windows\\win.ini", "C:/Windows/win.ini", "/esxi/C:\\..\\..\\etc\\passwd", "\\\\server\\share\\etc\\passwd", "/esxi/c%3a%5c..%5c..%5cetc%5cpasswd"]) out.add(w);
  for (const l of ["/esxi/etc-link/passwd", "/esxi/secret-link", "/esxi/up/secret.txt", "/esxi/up/tree/../secret.txt", "/esxi/ETC-LINK/PASSWD", "/esxi/Secret-Link;1"]) out.add(l);
  out.add(`/esxi/${"a".repeat(4096)}`);
  out.add(`/esxi/${"../".repeat(3000)}etc/passwd`);
  out.add(`/esxi/${"%2e%2e%2f".repeat(1500)}etc/passwd`);
  return [...out];
}

const leaked = (body: string) => body.includes(SECRET) || /root:.*:0:0:/.test(body);

/** One raw HTTP/1.1 request (the target as bytes, nothing normalized); the whole answer as latin1. */
async function rawGet(port: number, target: string): Promise<string> {
  let text = "";
  let done: () => void = () => {};
  const closed = new Promise<void>((r) => (done = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        text += Buffer.from(d).toString("latin1");
      },
      close: () => done(),
      error: () => done(),
    },
  });
  sock.write(Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, "latin1"));
  await Promise.race([closed, Bun.sleep(5000)]);
  sock.end();
  return text;
}

function rrqBytes(name: string): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from([0, Opcode.RRQ]), Buffer.from(name, "latin1"), Buffer.from([0]), Buffer.from("octet"), Buffer.from([0])]));
}

const paths = corpus();

for (const [label, source] of [["ISO", () => makeEsxiIso()], ["directory with symlinks out", () => dirSource]] as const) {
  for (const edge of ["bun", "node"] as const) {
    describe(`hostile paths, ${label} source, ${edge} edge`, () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp({ source: source(), tftp: { enabled: true, port: 0 } }, { httpRuntime: edge });
      });
      afterAll(() => app.close());

      test(`HTTP: ${paths.length} paths, 0 bytes from outside the image`, async () => {
        const port = Number(new URL(app.url("/")).port);
        const statuses = new Map<string, number>();
        const leaks: string[] = [];
        for (let i = 0; i < paths.length; i += 32) {
          await Promise.all(
            paths.slice(i, i + 32).map(async (p) => {
              const answer = await rawGet(port, p);
              if (leaked(answer)) leaks.push(p);
              const status = answer.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? "none";
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
            }),
          );
        }
        expect(leaks).toEqual([]);
        // Sanity of the harness: a path inside is served and would be seen.
        expect(await rawGet(port, "/esxi/EFI/../B.B00")).toMatch(/^HTTP\/1\.1 200/);
        if (label !== "ISO") expect(await rawGet(port, "/esxi/inside-link")).toContain("inside");
        // Our answers: 400/404 (200 for a path that resolves inside the image); the runtime's parser answers
        // 414/431 for sizes, and Bun's (uWebSockets) 505 or a closed connection for raw bytes it will not parse.
        const refusedByParser = edge === "bun" ? ["505", "none"] : [];
        expect([...statuses.keys()].filter((s) => !["400", "404", "414", "431", "200", ...refusedByParser].includes(s))).toEqual([]);
        console.error(`[paths] ${label}, ${edge}: ${[...statuses].sort().map(([k, v]) => `${v}× ${k}`).join(", ")}`);
      }, 60_000);

      // TFTP does not depend on the HTTP edge: asked once per source.
      if (edge === "bun") {
        test(`TFTP: the same ${paths.length} names as RRQs, 0 bytes from outside the image`, async () => {
        const peer = await udpPeer("127.0.0.1");
        const leaks: string[] = [];
        let answered = 0;
        try {
          for (const p of [...paths, ...paths.map((x) => x.replace(/^\//, ""))]) {
            if (p.length > 500) continue; // an RRQ is one datagram of at most 512 bytes (RFC 1350)
            peer.send(rrqBytes(p), app.tftp!.port, "127.0.0.1");
            const d = await peer.maybe(2000);
            if (!d) continue;
            answered++;
            const op = d.data[1];
            if (op === Opcode.DATA) {
              if (leaked(Buffer.from(d.data.subarray(4)).toString("latin1"))) leaks.push(p);
              peer.send(Uint8Array.of(0, Opcode.ERROR, 0, 0, 0), d.port, "127.0.0.1");
            }
          }
        } finally {
          peer.close();
        }
        expect(leaks).toEqual([]);
        expect(answered).toBeGreaterThan(paths.length);
      }, 120_000);
      }
    });
  }
}
