/**
 * The live view in a real terminal (tmux): `netboot serve` on a link in namespaces, a simulated UEFI client
 * booting through a rate-limited wire; the client's row moves through its phases with a growing bar, drawn
 * in synchronized-output frames, and the cursor comes back at Ctrl-C. Piped, the same run prints one plain
 * line per phase change instead.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bun, cli, repo } from "../helpers/cli.ts";
import { bootCfgText, makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { serve } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";

const rootOnly = process.getuid?.() === 0 ? describe : describe.skip;
const NET = 227;
const SRV = `10.${NET}.0.1`;
const PHASE_ORDER = ["offered", "loader", "bootcfg", "modules", "kickstart", "installing", "done"];

rootOnly("the live view", () => {
  let lan: Lan;
  // Four more modules of 1.5 MB, so that at 8 Mbit/s the modules take a few seconds and the bar is seen growing.
  const big = ["big1.v00", "big2.v00", "big3.v00", "big4.v00"];
  const cfg = bootCfgText.replace(/^modules=(.*)$/m, (_, m: string) => `modules=${m} --- ${big.map((b) => `/${b}`).join(" --- ")}`);
  const iso = makeEsxiIso({ extra: { "BOOT.CFG": cfg, "EFI/BOOT/BOOT.CFG": cfg, ...Object.fromEntries(big.map((b, i) => [b.toUpperCase(), new Uint8Array(1_500_000).fill(i + 1)])) } });
  beforeAll(() => {
    for (const t of ["ip", "tmux", "tc"]) requireTool(t);
    lan = createLan(NET, [{ name: "srv" }, { name: "pc", ip: null }]);
    // The server's side of the wire: 16 Mbit/s.
    const r = lan.exec("srv", ["tc", "qdisc", "add", "dev", "lan0", "root", "tbf", "rate", "8mbit", "burst", "64kb", "latency", "200ms"]);
    if (r.code !== 0) throw new Error(`tc: ${r.err}`);
  });
  afterAll(() => lan?.destroy());

  const simulateUefi = (mac: string) =>
    cli(["simulate", "--server", SRV, "--iface", "lan0", "--mac", mac, "--arch", "uefi", "--dhcp-wait", "4s"], { cmd: ["ip", "netns", "exec", lan.nodes.pc!.ns, bun, join(repo, "src/main.ts")], timeoutMs: 90_000 });

  test("under tmux: the row's phase advances and its bar grows; Ctrl-C restores the cursor", async () => {
    const session = `nblive${process.pid}`;
    const tmux = (...args: string[]) => Bun.spawnSync(["tmux", ...args], { stdout: "pipe", stderr: "pipe" });
    const raw = join(tempDir("live-"), "pty.raw");
    const command = ["env", "-u", "CI", "TERM=xterm-256color", "NO_COLOR=1", "ip", "netns", "exec", lan.nodes.srv!.ns, bun, join(repo, "src/main.ts"), "serve", iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "server", "--force", "--no-bsdp", "--state-dir", tempDir("live-state-")];
    expect(tmux("new-session", "-d", "-s", session, "-x", "180", "-y", "40", command.map((a) => `'${a}'`).join(" ")).exitCode).toBe(0);
    // Everything the program wrote to its terminal, escape sequences and all.
    tmux("pipe-pane", "-t", session, "-o", `cat >> '${raw}'`);
    const MAC = "52:54:00:27:00:01";
    try {
      const screen = () => tmux("capture-pane", "-p", "-t", session).stdout.toString();
      const until = Date.now() + 30_000;
      while (!/ready:/.test(screen()) && Date.now() < until) await Bun.sleep(100);
      expect(screen()).toContain("ready:");
      expect(screen()).toMatch(/DHCP server on lan0/); // the footer

      const sim = simulateUefi(MAC);
      const seen: Array<{ phase: string; pct: number | undefined }> = [];
      let result: Awaited<typeof sim> | undefined;
      void sim.then((r) => (result = r));
      while (!result) {
        const sc = screen();
        // The table's row (log lines above it mention the MAC too, after their level).
        const row = sc.split("\n").find((l) => l.startsWith(MAC));
        if (row) {
          const phase = PHASE_ORDER.find((p) => new RegExp(`\\b${p}\\b`).test(row));
          const pct = /(\d+)%/.exec(row)?.[1];
          if (phase) seen.push({ phase, pct: pct === undefined ? undefined : Number(pct) });
        }
        await Bun.sleep(100);
      }
      await Bun.sleep(1500);
      const last = screen().split("\n").find((l) => l.startsWith(MAC)) ?? "";
      expect(result.code).toBe(0);
      // Phases only move forward.
      const phases = [...new Set(seen.map((s) => s.phase))];
      expect(phases.map((p) => PHASE_ORDER.indexOf(p))).toEqual([...phases.map((p) => PHASE_ORDER.indexOf(p))].sort((a, b) => a - b));
      // The first phases pass in milliseconds (small files, early in the wire's budget) and may fall between
      // two captures; the modules take seconds, and the installer's DHCP comes after them.
      expect(phases).toContain("modules");
      expect(last).toMatch(/\bkickstart\b/);
      // The bar grew: at least three different fill levels, never shrinking, 100 % at the end.
      const pcts = seen.map((s) => s.pct).filter((p): p is number => p !== undefined);
      expect(new Set(pcts).size).toBeGreaterThanOrEqual(3);
      expect(pcts).toEqual([...pcts].sort((a, b) => a - b));
      expect(last).toMatch(/100%/);
      expect(last).toMatch(/UEFI/);
    } finally {
      tmux("send-keys", "-t", session, "C-c");
      const until = Date.now() + 10_000;
      while (tmux("has-session", "-t", session).exitCode === 0 && Date.now() < until) await Bun.sleep(100);
      tmux("kill-session", "-t", session);
    }
    const bytes = readFileSync(raw, "latin1");
    // Frames in DEC mode 2026 (synchronized output), the cursor hidden while drawing and shown at the end.
    expect(bytes).toContain("\x1b[?2026h");
    expect(bytes).toContain("\x1b[?2026l");
    expect(bytes).toContain("\x1b[?25l");
    expect(bytes.lastIndexOf("\x1b[?25h")).toBeGreaterThan(bytes.lastIndexOf("\x1b[?25l"));
  }, 120_000);

  test("piped: no live table, one plain line per phase change", async () => {
    const MAC = "52:54:00:27:00:02";
    const srv = await serve([iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "server", "--force", "--no-bsdp", "--state-dir", tempDir("live-state-")], { ns: lan.nodes.srv!.ns, env: { CI: "" } });
    try {
      const r = await simulateUefi(MAC);
      expect(r.code).toBe(0);
      await Bun.sleep(500);
      const log = srv.log();
      expect(log).not.toContain("\x1b[?2026h");
      // "52:54:… unlisted 10.227.0.2 UEFI: offered → loader": the phase lines (not the DHCP ones, "DISCOVER → OFFER").
      const lines = log.split("\n").filter((l) => new RegExp(`^\\[info\\] ${MAC} .*: [-\\w]+ → \\w+`).test(l));
      const phases = lines.map((l) => /→ (\w+)/.exec(l)![1]!);
      expect(phases).toEqual(["offered", "loader", "bootcfg", "modules", "kickstart"]);
      expect(lines[0]).toMatch(new RegExp(`${MAC} unlisted 10\\.227\\.0\\.\\d+ UEFI: - → offered`));
      // Leaving modules, the bytes served against the sum of the kernel and modules in its boot.cfg.
      expect(lines.find((l) => /→ kickstart/.test(l))).toMatch(/\((7\.\d) MiB of \1 MiB\)$/);
    } finally {
      await srv.stop();
    }
  }, 90_000);
});
