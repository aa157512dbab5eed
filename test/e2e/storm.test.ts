/**
 * A small boot storm: 30 UEFI PXE machines (scripts/bench/storm-client.ts: DHCP, TFTP of iPXE, boot.cfg,
 * then 160 MiB of modules each by curl) start at once, and a probe in a namespace of its own
 * (test/helpers/small-probe.ts) asks DHCP, TFTP and HTTP's small answers every 50 ms. While the bulk runs,
 * no DHCP answer may wait long: a PXE ROM resends DISCOVER after 4 s and gives up after a few.
 * As in the storm bench, the server has CPU 0, the machines CPU 1 with their DHCP and TFTP above their
 * bulk (real-time priority, curl at normal), as machines with a CPU each would be; the probe likewise.
 * And a rack powered on at once: 300 DISCOVERs within a few milliseconds, each sent once, all answered
 * (the kernel's default receive buffer held about 90 of them; the rest waited for the firmware's retry).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { bun, repo, waitFor } from "../helpers/cli.ts";
import { requireRoot } from "../helpers/netns.ts";
import type { ProbeResults } from "../helpers/small-probe.ts";
import { requireTool, run, tempDir } from "../helpers/tools.ts";

for (const t of ["ip", "curl", "xorriso", "taskset", "chrt"]) requireTool(t);
requireRoot();

const CLIENTS = 30;
const MODULES = 20;
const MODULE_BYTES = 8 * 1024 * 1024;
/** A DHCP answer that waited this long during the bulk fails the test (today's figures: p99 under 50 ms). */
const DHCP_BOUND_MS = 500;

const id = `${process.pid % 100000}`;
const S = `nbst-s-${id}`;
const C = `nbst-c-${id}`;
const P = `nbst-p-${id}`;
const dir = tempDir("storm-");
let server: ReturnType<typeof Bun.spawn> | undefined;
let log = "";
const pin = availableParallelism() >= 2;
const sizes: Record<string, number> = {};

const ip = (...args: string[]) => run("ip", args);

beforeAll(async () => {
  // The image: a kernel and 19 modules of 8 MiB, listed in BOOT.CFG as ESXi's are.
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "EFI", "BOOT"), { recursive: true });
  const names = Array.from({ length: MODULES }, (_, i) => (i === 0 ? "B.B00" : `M${String(i).padStart(2, "0")}.V00`));
  names.forEach((n, i) => {
    writeFileSync(join(tree, n), new Uint8Array(MODULE_BYTES).fill(i + 1));
    sizes[n.toLowerCase()] = MODULE_BYTES;
  });
  const cfg = `bootstate=0\ntitle=Loading ESXi installer (storm)\nkernel=/b.b00\nkernelopt=runweasel\nmodules=${names.slice(1).map((n) => `/${n.toLowerCase()}`).join(" --- ")}\nbuild=8.0.2-0.0.22380479\nupdated=0\n`;
  writeFileSync(join(tree, "BOOT.CFG"), cfg);
  writeFileSync(join(tree, "EFI", "BOOT", "BOOT.CFG"), cfg);
  writeFileSync(join(tree, "EFI", "BOOT", "BOOTX64.EFI"), new Uint8Array(40_000).fill(7));
  const iso = join(dir, "storm.iso");
  run("xorriso", ["-as", "mkisofs", "-quiet", "--norock", "-o", iso, tree]);
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  const macs = [...Array.from({ length: CLIENTS }, (_, i) => `02:5b:00:00:00:${hex(i)}`), ...Array.from({ length: 16 }, (_, i) => `02:5c:00:00:00:${hex(i)}`)];
  writeFileSync(join(dir, "lab.yaml"), `images:\n  esxi: ${iso}\nhosts:\n${macs.map((m) => `  - { mac: "${m}" }`).join("\n")}\n`);

  // The server on a bridge; the machines' namespace holds the pool as local addresses (AnyIP).
  for (const ns of [S, C, P]) ip("netns", "add", ns);
  ip("-n", S, "link", "add", "st-br", "type", "bridge");
  ip("link", "add", "st-sc", "netns", S, "type", "veth", "peer", "name", "st-c", "netns", C);
  ip("link", "add", "st-sp", "netns", S, "type", "veth", "peer", "name", "st-p", "netns", P);
  for (const l of ["st-sc", "st-sp"]) ip("-n", S, "link", "set", l, "master", "st-br");
  ip("-n", S, "addr", "add", "10.77.0.1/16", "dev", "st-br");
  ip("-n", C, "addr", "add", "10.77.0.2/16", "dev", "st-c");
  ip("-n", P, "addr", "add", "10.77.0.3/16", "dev", "st-p");
  ip("-n", C, "route", "add", "local", "10.77.128.0/17", "dev", "lo");
  for (const l of ["lo", "st-br", "st-sc", "st-sp"]) ip("-n", S, "link", "set", l, "up");
  for (const [ns, l] of [[C, "st-c"], [P, "st-p"]] as const) {
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "link", "set", l, "up");
  }
  server = Bun.spawn(
    ["ip", "netns", "exec", S, ...(pin ? ["taskset", "-c", "0"] : []), bun, join(repo, "src/main.ts"), "serve", "--config", join(dir, "lab.yaml"), "--iface", "st-br", "--dhcp", "server", "--force", "--pool", "10.77.128.1-10.77.255.254", "--http-port", "80", "--state-dir", join(dir, "state"), "--user", "root", "--no-live"],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
  );
  const collect = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) log += new TextDecoder().decode(chunk);
  };
  void collect(server.stdout as ReadableStream<Uint8Array>);
  void collect(server.stderr as ReadableStream<Uint8Array>);
  await waitFor(() => log.includes("ready:"), 30_000, "netboot ready");
}, 120_000);

afterAll(async () => {
  server?.kill("SIGTERM");
  await server?.exited;
  for (const ns of [S, C, P]) Bun.spawnSync(["ip", "netns", "del", ns]);
});

test("300 machines DISCOVER at once, once each: every one gets its OFFER (none dropped by the kernel)", async () => {
  const udp = () => {
    const line = run("ip", ["netns", "exec", S, "cat", "/proc/net/snmp"]).split("\n").filter((l) => l.startsWith("Udp:"));
    const [names, values] = line.map((l) => l.split(/\s+/));
    return Number(values![names!.indexOf("RcvbufErrors")]);
  };
  const before = udp();
  const out = run("ip", ["netns", "exec", C, ...(pin ? ["taskset", "-c", "1"] : []), bun, join(repo, "test/helpers/dhcp-load.ts"), "flood", "--iface", "st-c", "--count", "300", "--ms", "0"]);
  const got = JSON.parse(out.trim().split("\n").at(-1)!) as { sent: number; offers: number };
  expect({ ...got, droppedByKernel: udp() - before }).toEqual({ sent: 300, offers: 300, droppedByKernel: 0 });
}, 60_000);

test(`${CLIENTS} machines at once: every one boots, and no DHCP answer waits ${DHCP_BOUND_MS} ms while the bulk runs`, async () => {
  const rt = (prio: number) => (pin ? ["taskset", "-c", "1", "chrt", "-f", String(prio)] : []);
  const probeOut = join(dir, "probe.json");
  const probe = Bun.spawn(["ip", "netns", "exec", P, ...rt(20), bun, join(repo, "test/helpers/small-probe.ts"), "--iface", "st-p", "--server", "10.77.0.1", "--from", "10.77.0.3", "--out", probeOut, "--every", "50"], { stdout: "ignore", stderr: "pipe" });
  await Bun.sleep(300);
  const out = join(dir, "clients.json");
  const clients = Bun.spawn(["ip", "netns", "exec", C, ...rt(10), bun, join(repo, "scripts/bench/storm-client.ts"), "--iface", "st-c", "--server", "10.77.0.1", "--clients", String(CLIENTS), "--out", out, "--sizes", JSON.stringify(sizes), ...(pin ? ["--bulk-other"] : [])], { stdout: "ignore", stderr: "pipe" });
  const code = await clients.exited;
  probe.kill("SIGTERM");
  await probe.exited;
  expect({ code, err: code === 0 ? "" : await new Response(clients.stderr).text() }).toEqual({ code: 0, err: "" });

  const walked = JSON.parse(readFileSync(out, "utf8")) as { startedAt: number; clients: Array<{ ok: boolean; error?: string; tftpMs?: number; doneMs?: number; httpBytes?: number }> };
  expect(walked.clients.filter((c) => !c.ok).map((c) => c.error)).toEqual([]);
  expect(walked.clients.reduce((n, c) => n + (c.httpBytes ?? 0), 0)).toBe(CLIENTS * MODULES * MODULE_BYTES);

  // The bulk: from the first machine done with TFTP to the last one's last module.
  const from = walked.startedAt + Math.min(...walked.clients.map((c) => c.tftpMs!));
  const to = walked.startedAt + Math.max(...walked.clients.map((c) => c.doneMs!));
  const probed = JSON.parse(readFileSync(probeOut, "utf8")) as ProbeResults;
  const during = probed.probes.filter((p) => p.at >= from && p.at <= to && (p.what === "dhcp-offer" || p.what === "dhcp-ack"));
  const waits = during.map((p) => p.ms);
  console.log(`[storm] ${CLIENTS} machines, bulk ${((to - from) / 1000).toFixed(1)} s: ${during.length} DHCP answers probed during it, longest wait ${Math.max(...waits).toFixed(1)} ms; probe's own event loop late by at most ${Math.max(...probed.lagMs).toFixed(0)} ms`);
  expect(during.length).toBeGreaterThanOrEqual(10);
  expect(during.filter((p) => p.ms < 0 || p.ms > DHCP_BOUND_MS)).toEqual([]);
}, 240_000);
