/**
 * The status page in real Chromium: `netboot serve` on loopback, a client (known by the MAC in the path it
 * asks for) reading its disc image slowly by HTTP ranges as iPXE's sanboot does, and the page, opened by
 * Debian's chromium through playwright-core under Node (page-chromium.mjs), showing that client's row with
 * its bytes rising; a screenshot saved (test/.tmp/), no console errors, readable at phone width.
 *
 * A host's HTTP progress grows when a response completes (hosts/registry.ts, http.end), so the download is
 * several range requests in a row, each one step the page must show.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { freePort, repo } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { tempDir } from "../helpers/tools.ts";

const CHROMIUM = "/usr/bin/chromium";
const MAC = "52:54:00:5e:1a:07";
const MACDIR = `01-${MAC.replaceAll(":", "-")}`;
const CHUNK = 128 * 1024;
const STEPS = 8;
const STEP_MS = 450;
const SHOT = join(repo, "test", ".tmp", "page-chromium.png");

interface PageResult {
  row: boolean;
  rowText: string | null;
  cells: Record<string, string> | null;
  samples: Array<{ ms: number; text: string; bytes: number | null }>;
  bytes: number[];
  screenshot: string;
  phoneScreenshot: string;
  phone: { scrollWidth: number; clientWidth: number; rowLeft: number; rowRight: number; rowWidth: number; theadShown: boolean; progress: string; wider: string[] } | null;
  live: string | null;
  consoleErrors: string[];
  pageErrors: string[];
  failedRequests: string[];
  error: string | null;
}

const have = existsSync(CHROMIUM);
const maybe = have ? describe : describe.skip;
if (!have) console.warn(`skipping the status page in Chromium: ${CHROMIUM} is missing (apt-get install chromium)`);

maybe("the status page in Chromium", () => {
  let srv: Served | undefined;
  let node: ReturnType<typeof Bun.spawn> | undefined;
  afterAll(async () => {
    if (node && node.exitCode === null) node.kill();
    await srv?.stop();
  });

  test(
    "a client's row with its bytes rising during a download; screenshot; no console errors; fits a phone",
    async () => {
      const iso = makeEsxiIso();
      const [http, tftp] = [await freePort(), await freePort()];
      srv = await serve([iso, "--ip", "127.0.0.1", "--http-port", String(http), "--tftp-port", String(tftp), "--dhcp", "off", "--no-bsdp", "--no-live", "--state-dir", tempDir("ui-state-")]);
      const base = `http://127.0.0.1:${http}`;

      // The client shows itself: its boot.cfg by MAC (its row appears, no bytes yet).
      const cfg = await fetch(`${base}/esxi/${MACDIR}/boot.cfg`);
      expect(cfg.status).toBe(200);
      expect(await cfg.text()).toContain("kernel=");
      const disc = `${base}/esxi/${MACDIR}.iso`;
      const size = Number((await fetch(disc, { method: "HEAD" })).headers.get("content-length"));
      expect(size).toBeGreaterThan(CHUNK * STEPS);

      node = Bun.spawn(["node", join(import.meta.dir, "page-chromium.mjs"), `${base}/`, MAC, SHOT], { cwd: repo, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      const out = new Response(node.stdout as ReadableStream<Uint8Array>).text();
      // One reader for stderr all along (leaving a for-await early would cancel the pipe under node).
      let err = "";
      let signal = () => {};
      const ready = new Promise<boolean>((resolve) => (signal = () => resolve(true)));
      void (async () => {
        for await (const c of node.stderr as ReadableStream<Uint8Array>) {
          err += new TextDecoder().decode(c);
          if (/^ready$/m.test(err)) signal();
        }
      })().catch(() => {});
      const started = await Promise.race([ready, node.exited.then(() => false)]);
      if (!started) throw new Error(`page-chromium.mjs never saw the row:\n${err}\n${await out}`);

      // The download: one range after another, slowly, each one a step of the host's progress.
      for (let i = 0; i < STEPS; i++) {
        const r = await fetch(disc, { headers: { range: `bytes=${i * CHUNK}-${(i + 1) * CHUNK - 1}` } });
        expect(r.status).toBe(206);
        expect((await r.arrayBuffer()).byteLength).toBe(CHUNK);
        await Bun.sleep(STEP_MS);
      }
      const api = (await (await fetch(`${base}/api/hosts`)).json()) as { hosts: Array<{ mac: string; progress: { bytes: number; total: number | null } }> };
      expect(api.hosts.find((h) => h.mac === MAC)?.progress.bytes).toBe(CHUNK * STEPS);
      const sink = node.stdin as import("bun").FileSink;
      sink.write("done\n");
      await sink.end();
      const code = await node.exited;
      const text = await out;
      const line = text.trim().split("\n").at(-1) ?? "";
      let res: PageResult;
      try {
        res = JSON.parse(line) as PageResult;
      } catch {
        throw new Error(`page-chromium.mjs printed no result (exit ${code}):\n${err}\n${text}`);
      }
      console.log(`screenshots: ${res.screenshot}, ${res.phoneScreenshot}; bytes shown: ${res.bytes.join(" → ")}`);
      if (res.error || code !== 0) throw new Error(`page-chromium.mjs failed (exit ${code}): ${res.error}\n${err}`);

      // The row, for this MAC.
      expect(res.row).toBe(true);
      expect(res.live).toBe("live");
      expect(res.cells?.MAC).toBe(MAC);
      // Its address is not shown: a request that names a MAC in its path says nothing about where that
      // host is (its lease or the neighbour table would; on loopback there is neither).
      expect(res.cells?.IP).toBe("");
      // Its bytes rose while the download ran: at least two distinct values, each higher than the last,
      // ending at what was served (1.0 MiB, as the page rounds it).
      expect(res.bytes.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < res.bytes.length; i++) expect(res.bytes[i]!).toBeGreaterThan(res.bytes[i - 1]!);
      expect(res.bytes.at(-1)).toBe(CHUNK * STEPS);
      expect(res.cells?.Progress).toContain("1.0 MiB of ");
      // The screenshot: a PNG of a real page.
      expect(res.screenshot).toBe(SHOT);
      expect(statSync(SHOT).size).toBeGreaterThan(10 * 1024);
      expect([...readFileSync(SHOT).subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      // Nothing went wrong in the page (Chromium's own requests count: a 404 for /favicon.ico is an error
      // in the page's console too).
      expect(res.consoleErrors).toEqual([]);
      expect(res.pageErrors).toEqual([]);
      // A phone (the page's CSS makes each row a card under 760 px): no horizontal scrolling.
      expect(res.phone).not.toBeNull();
      expect(res.phone!.theadShown).toBe(false);
      expect(res.phone!.scrollWidth).toBeLessThanOrEqual(390 + 1);
      expect(res.phone!.rowRight).toBeLessThanOrEqual(390 + 1);
      expect(res.phone!.progress).toContain("1.0 MiB");
      expect(existsSync(res.phoneScreenshot)).toBe(true);
    },
    60_000,
  );
});
