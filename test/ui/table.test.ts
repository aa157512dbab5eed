/**
 * ui/table.ts: the machines as terminal lines. Rows are built in the /api/hosts shape (hosts/api.ts
 * hostView) by hand, so each case states exactly what the machine did; the expectations follow from the
 * row's fields and the documented layout (one row per machine, a 12-cell bar of bytes against the total,
 * a footer of mode, interface, images and counts by phase, never wider than the terminal).
 */
import { describe, expect, test } from "bun:test";
import type { StatusInfo } from "../../src/hosts/api.ts";
import { ansiStyle, phaseLine, plainStyle, tableLines, type HostRow, type TableModel } from "../../src/ui/table.ts";

const NOW = Date.parse("2025-03-01T12:00:00Z");
const MiB = 1024 * 1024;
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function row(over: Partial<HostRow> = {}): HostRow {
  return {
    mac: "52:54:00:00:00:01",
    listed: true,
    hostname: "esx01",
    image: "esxi8",
    mode: "once",
    phase: "modules",
    ip: "10.77.0.11",
    firmware: "efi-x64",
    platform: "UEFI",
    bytes: 0,
    progress: { bytes: 50 * MiB, total: 100 * MiB, rate: 2 * MiB },
    last_seen: ago(5000),
    last_event: "GET /esxi8/s.v00 200",
    last_error: null,
    last_error_at: null,
    hint: null,
    started_at: ago(60_000),
    done_at: null,
    failed_at: null,
    failure: null,
    answered: "boot ipxe/snponly.efi",
    verdict: "boot",
    ...over,
  };
}

const status = (over: Partial<StatusInfo> = {}): StatusInfo => ({
  mode: "server",
  iface: "eth1",
  httpBase: "http://10.77.0.1",
  images: [{ name: "esxi8", title: "ESXi 8.0U2", source: "/isos/esxi8.iso", bootBytes: 100 * MiB }],
  bsdp: false,
  tftp: true,
  secureBoot: false,
  store: "/var/lib/netboot/hosts.json",
  ...over,
});

const model = (hosts: HostRow[], over: Partial<TableModel> = {}): TableModel => ({ hosts, status: status(), linkHint: undefined, ...over });

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
const cols = (s: string) => [...stripAnsi(s)].length;
const macN = (i: number) => `52:54:00:00:01:${i.toString(16).padStart(2, "0")}`;

/** The row of one machine, found by its MAC at the start of the line. */
const rowOf = (lines: string[], mac: string) => {
  const found = lines.filter((l) => stripAnsi(l).startsWith(mac));
  expect(found).toHaveLength(1);
  return stripAnsi(found[0]!);
};

describe("rows", () => {
  test("one row per machine, with MAC, hostname, IP, firmware, phase, bar, rate and age on a wide terminal", () => {
    const a = row({ mac: "52:54:00:00:00:01", hostname: "esx01", ip: "10.77.0.11", platform: "UEFI", phase: "modules", progress: { bytes: 50 * MiB, total: 100 * MiB, rate: 2 * MiB }, last_seen: ago(5000) });
    const b = row({ mac: "52:54:00:00:00:02", hostname: "esx02", ip: "10.77.0.12", platform: "BIOS", firmware: "bios", phase: "bootcfg", progress: { bytes: 0, total: 100 * MiB, rate: null }, last_seen: ago(125_000) });
    const lines = tableLines(model([a, b]), 200, 40, NOW);
    expect(stripAnsi(lines[0]!)).toMatch(/^MAC\s+HOST\s+IP\s+FW\s+PHASE\s+PROGRESS\s+RATE\s+LAST\s+NOTE$/);
    const ra = rowOf(lines, a.mac);
    for (const want of ["esx01", "10.77.0.11", "UEFI", "modules", "50%", "2.0 MiB/s", "5s", "GET /esxi8/s.v00 200"]) expect(ra).toContain(want);
    const order = ["esx01", "10.77.0.11", "UEFI", "modules", "50%", "2.0 MiB/s", "5s"].map((x) => ra.indexOf(x));
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    const rb = rowOf(lines, b.mac);
    for (const want of ["esx02", "10.77.0.12", "BIOS", "bootcfg", "0%", "2m"]) expect(rb).toContain(want);
    expect(rb).not.toMatch(/B\/s/); // no rate: the cell stays empty
  });

  test("the bar's filled cells follow bytes / total (12 cells, whole percent, capped at 100 %)", () => {
    const cases: Array<[number, number]> = [
      [0, 1000],
      [1, 1000],
      [250, 1000],
      [1, 3],
      [500, 1000],
      [2, 3],
      [999, 1000],
      [1000, 1000],
      [1500, 1000], // more than the image's total (retries): never past full
    ];
    const hosts = cases.map(([bytes, total], i) => row({ mac: macN(i), progress: { bytes, total, rate: null } }));
    const lines = tableLines(model(hosts), 120, 40, NOW);
    cases.forEach(([bytes, total], i) => {
      const r = rowOf(lines, macN(i));
      const m = /([█░]{12}) (\d+)%/.exec(r);
      expect(m).not.toBeNull();
      const filled = [...m![1]!].filter((c) => c === "█").length;
      const fraction = Math.min(1, bytes / total);
      expect(Number(m![2])).toBe(Math.floor(100 * fraction));
      // Within half a cell of the true fraction (plus the percent's rounding down).
      expect(Math.abs(filled / 12 - fraction)).toBeLessThanOrEqual(1 / 24 + 0.01);
      if (fraction === 0) expect(filled).toBe(0);
      if (fraction >= 1) expect(filled).toBe(12);
    });
  });

  test("without the image's total the bytes served stand in for the bar; a machine not booting yet has none", () => {
    const a = row({ mac: macN(1), progress: { bytes: 5 * MiB, total: null, rate: null } });
    const b = row({ mac: macN(2), phase: null, progress: { bytes: 0, total: 100 * MiB, rate: null }, answered: null, verdict: null, last_event: null });
    const lines = tableLines(model([a, b]), 120, 40, NOW);
    const ra = rowOf(lines, a.mac);
    expect(ra).toContain("5.0 MiB");
    expect(ra).not.toMatch(/[█░]/);
    const rb = rowOf(lines, b.mac);
    expect(rb).not.toMatch(/[█░]|%/);
    expect(rb).toContain("waiting"); // listed, no phase yet
  });

  test("age of the last packet in seconds, minutes, hours; nothing when never seen", () => {
    const hosts = [row({ mac: macN(1), last_seen: ago(42_000) }), row({ mac: macN(2), last_seen: ago(7 * 60_000 + 5000) }), row({ mac: macN(3), last_seen: ago(3 * 3_600_000 + 60_000) }), row({ mac: macN(4), last_seen: null, phase: null, answered: null, verdict: null, last_event: null })];
    const lines = tableLines(model(hosts), 200, 40, NOW);
    expect(rowOf(lines, macN(1))).toMatch(/\s42s\s/);
    expect(rowOf(lines, macN(2))).toMatch(/\s7m\s/);
    expect(rowOf(lines, macN(3))).toMatch(/\s3h\s/);
    expect(rowOf(lines, macN(4))).not.toMatch(/\s\d+[smh](\s|$)/);
  });

  test("the note: a warning hint first, then the last error, then an info hint, then the last event", () => {
    const warn = { code: "modules-stalled", level: "warn" as const, text: "no kernel or module bytes for 60 s" };
    const info = { code: "interactive", level: "info" as const, text: "every module sent: the interactive installer runs" };
    const error = "TFTP esxi8/b.b00 failed: timeout";
    const hosts = [
      row({ mac: macN(1), hint: warn, last_error: error }),
      row({ mac: macN(2), hint: info, last_error: error }),
      row({ mac: macN(3), hint: info }),
      row({ mac: macN(4) }),
    ];
    const lines = tableLines(model(hosts), 200, 40, NOW);
    expect(rowOf(lines, macN(1))).toContain(warn.text);
    expect(rowOf(lines, macN(1))).not.toContain(error);
    expect(rowOf(lines, macN(2))).toContain(error);
    expect(rowOf(lines, macN(3))).toContain(info.text);
    expect(rowOf(lines, macN(4))).toContain("GET /esxi8/s.v00 200");
  });

  test("unlisted machines are named so; DHCP clients that do not network-boot are only counted", () => {
    const unlisted = row({ mac: macN(1), listed: false, hostname: null, phase: null, answered: "no boot answer (not listed (deny by default))", verdict: "refused", last_event: null });
    const phone = row({ mac: macN(2), listed: false, hostname: null, phase: null, platform: null, firmware: null, answered: "not network-booting (no PXE options)", verdict: "not-netboot", last_event: null });
    const laptop = row({ mac: macN(3), listed: false, hostname: null, phase: null, platform: null, firmware: null, answered: "not network-booting (no PXE options)", verdict: "not-netboot", last_event: null });
    const lines = tableLines(model([unlisted, phone, laptop]), 200, 40, NOW).map(stripAnsi);
    const r = rowOf(lines, unlisted.mac);
    expect(r).toContain("unlisted");
    expect(r).toContain("refused");
    expect(lines.some((l) => l.startsWith(phone.mac) || l.startsWith(laptop.mac))).toBe(false);
    expect(lines.join("\n")).toContain("2 other DHCP clients (not network-booting)");
    const one = tableLines(model([unlisted, phone]), 200, 40, NOW).join("\n");
    expect(one).toContain("1 other DHCP client (not network-booting)");
  });

  test("a hostname longer than its cell is cut with an ellipsis, never pushing the columns", () => {
    const long = "esx-a-very-long-hostname-rack-12-slot-4";
    const lines = tableLines(model([row({ mac: macN(1), hostname: long }), row({ mac: macN(2), hostname: "esx02" })]), 120, 40, NOW);
    const a = rowOf(lines, macN(1));
    const b = rowOf(lines, macN(2));
    expect(a).not.toContain(long);
    expect(a).toContain("…");
    expect(a).toContain(long.slice(0, 8));
    // The phase column starts at the same place on both rows.
    expect(a.indexOf("modules")).toBe(b.indexOf("modules"));
  });
});

describe("footer", () => {
  test("mode, interface, BSDP, TFTP, the HTTP base, images, and counts by phase", () => {
    const hosts = [
      row({ mac: macN(1), phase: "modules" }),
      row({ mac: macN(2), phase: "modules" }),
      row({ mac: macN(3), phase: "done" }),
      row({ mac: macN(4), phase: null, answered: null, verdict: null }),
      row({ mac: macN(5), listed: false, hostname: null, phase: null, answered: "no boot answer (not listed)", verdict: "refused" }),
    ];
    const st = status({ images: [{ name: "esxi8", title: "ESXi 8.0U2", source: "a.iso", bootBytes: 1 }, { name: "esxi7", title: "ESXi 7.0U3", source: "b.iso", bootBytes: 1 }] });
    const lines = tableLines({ hosts, status: st, linkHint: undefined }, 200, 40, NOW).map(stripAnsi);
    const [first, second] = lines.slice(-2);
    expect(first).toContain("DHCP server on eth1");
    expect(first).toContain("BSDP off");
    expect(first).toContain("TFTP");
    expect(first).not.toContain("no TFTP");
    expect(first).toContain("http://10.77.0.1/");
    expect(second).toContain("esxi8 (ESXi 8.0U2)");
    expect(second).toContain("esxi7 (ESXi 7.0U3)");
    for (const want of ["2 modules", "1 done", "1 waiting", "1 refused"]) expect(second).toContain(want);
  });

  test("proxy and off modes, BSDP on, no TFTP, no interface", () => {
    const proxy = tableLines({ hosts: [], status: status({ mode: "proxy", bsdp: true, tftp: false }), linkHint: undefined }, 120, 20, NOW).map(stripAnsi);
    expect(proxy.at(-2)).toContain("proxyDHCP on eth1");
    expect(proxy.at(-2)).toContain("BSDP on");
    expect(proxy.at(-2)).toContain("no TFTP");
    const off = tableLines({ hosts: [], status: status({ mode: "off", iface: undefined }), linkHint: undefined }, 120, 20, NOW).map(stripAnsi);
    expect(off.at(-2)).toStartWith("no DHCP ·");
    expect(off.at(-2)).not.toContain(" on ");
  });

  test("no machines: says so in the body and the footer", () => {
    const lines = tableLines(model([]), 120, 20, NOW).map(stripAnsi);
    expect(lines.some((l) => l.includes("no machine seen yet"))).toBe(true);
    expect(lines.at(-1)).toContain("no machines yet");
  });

  test("the link hint goes above the footer, in yellow with ansiStyle", () => {
    const hint = "no packets from any client for 60 s: firewall? cable? the client's boot order (network boot first, or its one-time boot menu)?";
    const plain = tableLines(model([row()], { linkHint: hint }), 200, 40, NOW);
    expect(plain.at(-3)).toBe(hint);
    const ansi = tableLines(model([row()], { linkHint: hint }), 200, 40, NOW, ansiStyle);
    expect(ansi.at(-3)).toStartWith("\x1b[33m");
    expect(stripAnsi(ansi.at(-3)!)).toBe(hint);
    // On a narrow terminal it is cut, not wrapped.
    const narrow = tableLines(model([row()], { linkHint: hint }), 80, 40, NOW);
    expect(cols(narrow.at(-3)!)).toBeLessThan(80);
    expect(narrow.at(-3)).toEndWith("…");
  });
});

describe("width", () => {
  const busy = () => [
    row({ mac: macN(1), hostname: "esx-with-a-long-name-01", hint: { code: "modules-stalled", level: "warn", text: "no kernel or module bytes for 60 s: the machine stopped (an error on its console?), rebooted, or lost the link" } }),
    row({ mac: macN(2), phase: "failed", last_error: "install failed: the kickstart's %pre exited 1 on line 12 of the template, see the log" }),
    row({ mac: macN(3), phase: "done", progress: { bytes: 100 * MiB, total: 100 * MiB, rate: null } }),
    row({ mac: macN(4), listed: false, hostname: null, phase: null, answered: "no boot answer (not listed (deny by default)): add it to the lab file", verdict: "refused" }),
    row({ mac: macN(5), phase: "modules", progress: { bytes: 123 * MiB, total: null, rate: 11.5 * MiB } }),
  ];
  const hint = "no packets from any client for 75 s: firewall? cable? the client's boot order (network boot first, or its one-time boot menu)?";
  const long = status({ images: Array.from({ length: 6 }, (_, i) => ({ name: `esxi-image-${i}`, title: `ESXi 8.0 Update ${i} build 2${i}000000`, source: "x.iso", bootBytes: 1 })) });

  for (const width of [80, 120, 200]) {
    test(`${width} columns: no line reaches the last column (plain and ansi, escapes take none)`, () => {
      for (const style of [plainStyle, ansiStyle]) {
        const lines = tableLines({ hosts: busy(), status: long, linkHint: hint }, width, 40, NOW, style);
        expect(lines.length).toBeGreaterThan(5);
        for (const l of lines) expect(cols(l)).toBeLessThan(width);
      }
    });
  }

  test("60 columns: the header and footer fit", () => {
    const lines = tableLines({ hosts: busy(), status: long, linkHint: hint }, 60, 40, NOW);
    const body = lines.filter((l) => !/^52:54:/.test(l));
    expect(body.length).toBeGreaterThan(3);
    for (const l of body) expect(cols(l)).toBeLessThan(60);
  });

  test("60 and 45 columns: machine rows fit too (columns go, least needed first)", () => {
    for (const width of [60, 45]) {
      const lines = tableLines({ hosts: busy(), status: long, linkHint: hint }, width, 40, NOW);
      for (const l of lines) expect(cols(l)).toBeLessThan(width);
      const row = lines.find((l) => l.startsWith(macN(3)))!;
      expect(row).toContain("done"); // the phase stays
      expect(lines[0]).not.toContain("HOST");
    }
  });

  test("ansiStyle only adds escapes: stripped, it is the plain table; phases are coloured", () => {
    for (const width of [80, 200]) {
      const plain = tableLines({ hosts: busy(), status: long, linkHint: hint }, width, 40, NOW, plainStyle);
      const ansi = tableLines({ hosts: busy(), status: long, linkHint: hint }, width, 40, NOW, ansiStyle);
      expect(ansi.map(stripAnsi)).toEqual(plain);
      expect(ansi.join("\n")).toContain("\x1b[");
      expect(plain.join("\n")).not.toContain("\x1b[");
      expect(ansi.find((l) => stripAnsi(l).startsWith(macN(3)))).toContain("\x1b[32mdone");
      expect(ansi.find((l) => stripAnsi(l).startsWith(macN(2)))).toContain("\x1b[31mfailed");
      expect(ansi.find((l) => stripAnsi(l).startsWith(macN(4)))).toContain("\x1b[33mrefused");
    }
  });
});

describe("height", () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => row({ mac: macN(i), hostname: `esx${String(i).padStart(2, "0")}` }));

  test("rows are limited to the terminal's height, with how many more there are and where to see them", () => {
    for (const height of [8, 12, 24]) {
      const lines = tableLines(model(many(30)), 120, height, NOW).map(stripAnsi);
      // The live view (terminal.ts) ends every line with a newline: `height` lines would scroll the first away.
      expect(lines.length).toBeLessThanOrEqual(height - 1);
      const shown = lines.filter((l) => /^52:54:00:00:01:/.test(l)).length;
      expect(shown).toBeGreaterThan(0);
      const more = lines.find((l) => l.startsWith("…"));
      expect(more).toBeDefined();
      const m = /… and (\d+) more machines: (\S+) lists them all/.exec(more!);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBe(30 - shown);
      expect(m![2]).toBe("http://10.77.0.1/");
      // The first machines are the ones shown, in order.
      expect(lines.filter((l) => /^52:54:00:00:01:/.test(l)).map((l) => l.slice(0, 17))).toEqual(many(shown).map((h) => h.mac));
    }
  });

  test("when every machine fits there is no 'more' line", () => {
    const lines = tableLines(model(many(5)), 120, 24, NOW).map(stripAnsi);
    expect(lines.filter((l) => /^52:54:00:00:01:/.test(l))).toHaveLength(5);
    expect(lines.some((l) => l.includes("more machines"))).toBe(false);
    expect(lines.length).toBeLessThanOrEqual(23);
  });

  test("the link hint line takes a row from the machines, not from the height", () => {
    const without = tableLines(model(many(30)), 120, 12, NOW).filter((l) => /^52:54:/.test(l)).length;
    const withHint = tableLines(model(many(30), { linkHint: "quiet" }), 120, 12, NOW);
    expect(withHint.length).toBeLessThanOrEqual(11);
    expect(withHint.filter((l) => /^52:54:/.test(l)).length).toBe(without - 1);
  });
});

describe("phaseLine", () => {
  test("who (MAC, hostname, IP, firmware), the change, and the bytes of the total", () => {
    const h = row({ mac: "52:54:00:00:00:07", hostname: "esx07", ip: "10.77.0.17", platform: "UEFI", phase: "modules", progress: { bytes: 50 * MiB, total: 100 * MiB, rate: null } });
    expect(phaseLine(h, "bootcfg")).toBe("52:54:00:00:00:07 esx07 10.77.0.17 UEFI: bootcfg → modules (50 MiB of 100 MiB)");
  });

  test("an unlisted machine without IP or platform, no previous phase, nothing served yet", () => {
    const h = row({ mac: "52:54:00:00:00:08", listed: false, hostname: null, ip: null, platform: null, firmware: "ipxe", phase: "offered", progress: { bytes: 0, total: 100 * MiB, rate: null } });
    expect(phaseLine(h, null)).toBe("52:54:00:00:00:08 unlisted iPXE: - → offered");
    expect(phaseLine(h, undefined)).toBe("52:54:00:00:00:08 unlisted iPXE: - → offered");
  });

  test("a listed machine without hostname or firmware is its MAC and IP only; no total, no bytes part", () => {
    const h = row({ mac: "52:54:00:00:00:09", hostname: null, ip: "10.77.0.19", platform: null, firmware: null, phase: "done", progress: { bytes: 100 * MiB, total: null, rate: null } });
    expect(phaseLine(h, "installing")).toBe("52:54:00:00:00:09 10.77.0.19: installing → done");
  });
});
