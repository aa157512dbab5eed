/**
 * hosts/explain.ts: why a machine looks stuck, in words. `explain` is pure (state and time in, a hint out),
 * so most cases build a HostState by hand with marks at a fixed base time and ask just before and just
 * after each documented wait. The HintWatcher is driven through a real host store (files in a temporary
 * state directory), the tracker and the view on a real bus, with its timer parked (a long interval) and
 * `tick(now)` / `linkHint(now)` called with our own clock.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { EventBus, type EventInput, type NetbootEvent } from "../../src/events.ts";
import { bookFromFlags, type HostBook } from "../../src/hosts/book.ts";
import { describeEvent } from "../../src/hosts/describe.ts";
import { explain, HintWatcher, quietText, WAIT, type ExplainContext } from "../../src/hosts/explain.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { HostTracker } from "../../src/hosts/tracker.ts";
import { blank, HostViews, type HostState } from "../../src/hosts/view.ts";
import { memoryLogger } from "../../src/log.ts";
import { refusalReason } from "../../src/tftp/engine.ts";
import { tempDir } from "../helpers/tools.ts";

const T = 1_700_000_000_000;
const MAC = "52:54:00:12:34:56";

function host(over: Partial<HostState> = {}): HostState {
  return { ...blank(MAC as never, true), ip: "10.77.0.11", firmware: "efi-x64", platform: "UEFI", lastSeen: T, startedAt: T, ...over };
}

const ctx = (over: Partial<ExplainContext> = {}): ExplainContext => ({ mode: "server", armed: true, progress: { bytes: 0, total: 1000 }, ...over });

describe("offered: DHCP answered, nothing after", () => {
  const offered = (marks: HostState["marks"]) => host({ phase: "offered", phaseSince: T, marks });

  test("a DISCOVER answered but never REQUESTed after the wait: another DHCP server answered first?", () => {
    const s = offered({ offer: T });
    expect(explain(s, T + WAIT.request - 1000, ctx())).toBeUndefined();
    const h = explain(s, T + WAIT.request + 1000, ctx());
    expect(h?.code).toBe("dhcp-no-request");
    expect(h?.level).toBe("warn");
    expect(h?.text).toStartWith("DISCOVER but no REQUEST: another DHCP server answered first?");
    expect(h?.text).toContain("netboot doctor");
  });

  test("a REQUEST older than the latest OFFER still counts as no REQUEST (the client started over)", () => {
    const s = offered({ request: T - 30_000, offer: T });
    expect(explain(s, T + WAIT.request + 1000, ctx())?.code).toBe("dhcp-no-request");
  });

  test("after a REQUEST there is no DHCP hint; the boot file not fetched in time is a TFTP hint", () => {
    const s = offered({ offer: T, request: T + 500 });
    expect(explain(s, T + WAIT.request + 1000, ctx())).toBeUndefined();
    const h = explain(s, T + WAIT.bootFile + 1000, ctx());
    expect(h?.code).toBe("no-tftp");
    expect(h?.text).toContain("UDP 69");
  });

  test("in proxy mode the REQUEST goes to the link's DHCP server, so only the TFTP wait applies, with proxy wording", () => {
    const s = offered({ offer: T });
    expect(explain(s, T + WAIT.request + 1000, ctx({ mode: "proxy" }))).toBeUndefined();
    const h = explain(s, T + WAIT.bootFile + 1000, ctx({ mode: "proxy" }));
    expect(h?.code).toBe("proxy-no-tftp");
    expect(h?.text).toContain("proxyDHCP");
    expect(h?.text).toContain("UDP 69");
  });

  test("once the first stage was fetched, an offered host gets no TFTP hint", () => {
    expect(explain(offered({ offer: T, request: T + 1, nbp: T + 2 }), T + 10 * WAIT.bootFile, ctx())).toBeUndefined();
    expect(explain(offered({ offer: T, request: T + 1, loader: T + 2 }), T + 10 * WAIT.bootFile, ctx())).toBeUndefined();
  });
});

describe("loader: the first stage was sent", () => {
  test("snponly.efi sent and boot.ipxe never asked for: Secure Boot on?", () => {
    const s = host({ phase: "loader", phaseSince: T, nbpFile: "ipxe/snponly.efi", marks: { offer: T - 2000, request: T - 1000, nbp: T } });
    expect(explain(s, T + WAIT.script - 1000, ctx())).toBeUndefined();
    const h = explain(s, T + WAIT.script + 1000, ctx());
    expect(h?.code).toBe("ipxe-never-started");
    expect(h?.level).toBe("warn");
    expect(h?.text).toStartWith("snponly.efi sent, but iPXE never asked for boot.ipxe: Secure Boot on?");
    expect(h?.text).toContain("--secure-boot");
  });

  test("the file name is compared without case (a firmware that upper-cases the path)", () => {
    const s = host({ phase: "loader", phaseSince: T, nbpFile: "IPXE/SNPONLY.EFI", marks: { nbp: T } });
    expect(explain(s, T + WAIT.script + 1000, ctx())?.code).toBe("ipxe-never-started");
  });

  test("another iPXE binary without its script: names the binary, asks about iPXE's own DHCP and the HTTP port", () => {
    const s = host({ phase: "loader", phaseSince: T, nbpFile: "ipxe/ipxe.efi", marks: { nbp: T } });
    const h = explain(s, T + WAIT.script + 1000, ctx());
    expect(h?.code).toBe("ipxe-no-script");
    expect(h?.text).toStartWith("ipxe.efi sent, but iPXE never asked for boot.ipxe");
    expect(h?.text).toContain("HTTP port");
  });

  test("script fetched, loader never: look at the console; loader fetched, boot.cfg never: look at the console", () => {
    const ran = host({ phase: "loader", phaseSince: T, nbpFile: "ipxe/snponly.efi", marks: { nbp: T - 3000, script: T } });
    expect(explain(ran, T + WAIT.loader - 1000, ctx())).toBeUndefined();
    expect(explain(ran, T + WAIT.loader + 1000, ctx())?.code).toBe("ipxe-no-loader");

    const loaded = host({ phase: "loader", phaseSince: T, nbpFile: "esxi8/mboot.efi", marks: { nbp: T - 6000, script: T - 3000, loader: T } });
    expect(explain(loaded, T + WAIT.bootcfg - 1000, ctx())).toBeUndefined();
    const h = explain(loaded, T + WAIT.bootcfg + 1000, ctx());
    expect(h?.code).toBe("loader-no-bootcfg");
    expect(h?.text).toContain("boot.cfg");
  });

  test("a signed loader sent by TFTP without iPXE (no nbp mark) gets the boot.cfg wait only", () => {
    const s = host({ phase: "loader", phaseSince: T, nbpFile: "esxi8/mboot.efi", marks: { offer: T - 1000, loader: T } });
    expect(explain(s, T + WAIT.script + 1000, ctx())?.code).toBe("loader-no-bootcfg");
  });
});

describe("bootcfg and modules", () => {
  test("boot.cfg sent, no module asked for in 30 s", () => {
    const s = host({ phase: "bootcfg", phaseSince: T, marks: { loader: T - 1000, bootcfg: T } });
    expect(explain(s, T + WAIT.module - 1000, ctx())).toBeUndefined();
    const h = explain(s, T + WAIT.module + 1000, ctx());
    expect(h?.code).toBe("no-modules");
    expect(h?.text).toContain("30 s");
  });

  test("modules stalled: no module bytes for 60 s while nothing is in flight", () => {
    const s = host({ phase: "modules", phaseSince: T - 10_000, marks: { bootcfg: T - 10_000, module: T } });
    const progress = { bytes: 400, total: 1000 };
    expect(explain(s, T + WAIT.stall - 1000, ctx({ progress }))).toBeUndefined();
    const h = explain(s, T + WAIT.stall + 1000, ctx({ progress }));
    expect(h?.code).toBe("modules-stalled");
    expect(h?.level).toBe("warn");
    expect(h?.text).toContain("60 s");
  });

  test("a TFTP transfer still running is not a stall", () => {
    const s = host({ phase: "modules", phaseSince: T, marks: { module: T } });
    s.inflight.set("10.77.0.11:1234", { file: "esxi8/s.v00", kind: "module", bytes: 4096 });
    expect(explain(s, T + 10 * WAIT.stall, ctx({ progress: { bytes: 400, total: 1000 } }))).toBeUndefined();
  });

  test("every module sent: the next step, by whether a kickstart follows (info, not a warning)", () => {
    const s = host({ phase: "modules", phaseSince: T, marks: { module: T } });
    const done = { bytes: 995, total: 1000 }; // within the 1 % the documented check allows
    const armed = explain(s, T + 1000, ctx({ armed: true, progress: done }));
    expect(armed?.code).toBe("installer-starting");
    expect(armed?.level).toBe("info");
    expect(armed?.text).toContain("ks.cfg");
    const interactive = explain(s, T + 1000, ctx({ armed: false, progress: done }));
    expect(interactive?.code).toBe("interactive");
    expect(interactive?.level).toBe("info");
    // Far from complete and recent: nothing to say.
    expect(explain(s, T + 1000, ctx({ progress: { bytes: 500, total: 1000 } }))).toBeUndefined();
    // Unknown total: never "complete".
    expect(explain(s, T + 1000, ctx({ progress: { bytes: 5000, total: undefined } }))).toBeUndefined();
  });
});

describe("kickstart, done, failed, not listed", () => {
  test("the installer is up: interactive when not armed; ks.cfg not fetched in 3 min when armed", () => {
    const s = host({ phase: "kickstart", phaseSince: T, marks: { module: T - 5000, installer: T } });
    expect(explain(s, T + 1000, ctx({ armed: false }))?.code).toBe("interactive");
    expect(explain(s, T + WAIT.kickstart - 1000, ctx())).toBeUndefined();
    const h = explain(s, T + WAIT.kickstart + 1000, ctx());
    expect(h?.code).toBe("no-kickstart");
    expect(h?.text).toContain("ks.cfg");
    s.marks.ks = T + 5000;
    expect(explain(s, T + WAIT.kickstart + 1000, ctx())).toBeUndefined();
  });

  test("done and failed machines get no hint, however old their marks", () => {
    for (const phase of ["done", "failed"] as const) {
      const s = host({ phase, phaseSince: T, marks: { offer: T, nbp: T, bootcfg: T } });
      expect(explain(s, T + 3_600_000, ctx())).toBeUndefined();
    }
  });

  test("an unlisted machine refused a boot answer is told how to list it", () => {
    const s = host({ listed: false, answered: "no boot answer (not listed (deny by default))", verdict: "refused" });
    const h = explain(s, T, ctx());
    expect(h?.code).toBe("not-listed");
    expect(h?.text).toContain(`--allow ${MAC}`);
    // A listed machine, or one refused for another reason, gets none.
    expect(explain(host({ listed: true, answered: "no boot answer (not listed)", verdict: "refused" }), T, ctx())).toBeUndefined();
    expect(explain(host({ listed: false, answered: "boots from its own disk", verdict: "local" }), T, ctx())).toBeUndefined();
  });

  test("a machine that progresses on time gets no hint at any step", () => {
    const steps: Array<[HostState["phase"], HostState["marks"]]> = [
      ["offered", { offer: T }],
      ["offered", { offer: T, request: T + 300 }],
      ["loader", { offer: T, request: T + 300, nbp: T + 1000 }],
      ["loader", { offer: T, request: T + 300, nbp: T + 1000, script: T + 4000 }],
      ["loader", { offer: T, request: T + 300, nbp: T + 1000, script: T + 4000, loader: T + 5000 }],
      ["bootcfg", { offer: T, request: T + 300, nbp: T + 1000, script: T + 4000, loader: T + 5000, bootcfg: T + 6000 }],
      ["modules", { offer: T, request: T + 300, nbp: T + 1000, script: T + 4000, loader: T + 5000, bootcfg: T + 6000, module: T + 7000 }],
    ];
    for (const [phase, marks] of steps) {
      const last = Math.max(...Object.values(marks));
      const s = host({ phase, phaseSince: last, marks, nbpFile: marks.nbp ? "ipxe/snponly.efi" : undefined });
      // Two seconds after its last step (one watcher tick), the machine is moving: nothing to explain.
      expect(explain(s, last + 2000, ctx({ progress: { bytes: 100, total: 1000 } }))).toBeUndefined();
    }
  });
});

describe("describeEvent", () => {
  const tftpEnd = (outcome: "refused", reason: string | undefined, sizeProbe: boolean): NetbootEvent => ({
    type: "tftp.end",
    time: new Date(T).toISOString(),
    mac: MAC as never,
    ip: "10.77.0.11",
    client: "10.77.0.11:1400",
    file: "ipxe/snponly.efi",
    kind: "nbp",
    outcome,
    sizeProbe,
    bytes: 0,
    seconds: 0.01,
    retransmits: 0,
    reason,
  });

  test("TFTP error 8 after a tsize query reads as normal (the typed sizeProbe, not the words); a real refusal does not", () => {
    const probe = describeEvent(tftpEnd("refused", refusalReason(true, ""), true));
    expect(probe).toContain("ipxe/snponly.efi");
    expect(probe).toContain("size query");
    expect(probe).toContain("error 8");
    expect(probe).toEndWith("normal");
    const refusal = describeEvent(tftpEnd("refused", refusalReason(false, ""), false));
    expect(refusal).not.toContain("normal");
    expect(refusal).toContain("refused");
    expect(refusal).toContain("client refused the options");
  });
});

/** A store in a temporary state directory, the tracker and the view on one bus, as the app wires them. */
async function hosts(book: HostBook, dir = tempDir("explain-"), bus = new EventBus()) {
  const lines: ReturnType<typeof memoryLogger>["lines"] = [];
  const log = memoryLogger(lines);
  const store = await openHostStore({ url: undefined, stateDir: dir }, book, log);
  const tracker = new HostTracker({ store, bus, log });
  const views = new HostViews({ store, bus, log });
  return {
    store,
    views,
    bus,
    lines,
    log,
    close: async () => {
      tracker.close();
      views.close();
      await store.close();
    },
  };
}

describe("HintWatcher", () => {
  async function setup(mode = "server") {
    const book = bookFromFlags({ allow: [MAC as never], allowAny: false, ks: undefined, image: "esxi8" });
    const h = await hosts(book);
    let clock = Date.now();
    const seen: NetbootEvent[] = [];
    h.bus.subscribe((e) => seen.push(e));
    // The timer is parked: every pass below is an explicit tick with our clock.
    const watcher = new HintWatcher({ hosts: h.views, armed: () => true, bus: h.bus, log: h.log, mode: () => mode, intervalMs: 3_600_000, now: () => clock });
    const start = clock;
    return {
      bus: h.bus,
      hosts: h.views,
      watcher,
      lines: h.lines,
      seen,
      start,
      setClock: (t: number) => (clock = t),
      close: async () => {
        watcher.close();
        await h.close();
      },
    };
  }

  const dhcp = (message: string, extra: Partial<EventInput> = {}): EventInput =>
    ({ type: "dhcp.request", mac: MAC, ip: "0.0.0.0", message, port: 67, relay: undefined, answer: "OFFER", file: "ipxe/snponly.efi", ignored: undefined, firmware: "efi-x64", decision: "boot", declined: undefined, reason: "UEFI PXE", ...extra }) as EventInput;

  test("no packets from any client for 60 s: the link-quiet hint, said once, cleared by a packet", async () => {
    const w = await setup();
    try {
      expect(w.watcher.lastPacket).toBe(w.start);
      expect(w.watcher.linkHint(w.start + WAIT.quiet - 1000)).toBeUndefined();
      w.watcher.tick(w.start + WAIT.quiet - 1000);
      expect(w.seen.filter((e) => e.type === "link.quiet")).toHaveLength(0);

      w.watcher.tick(w.start + WAIT.quiet);
      const quiet = w.seen.filter((e) => e.type === "link.quiet");
      expect(quiet).toHaveLength(1);
      const q = quiet[0] as Extract<NetbootEvent, { type: "link.quiet" }>;
      expect(q.seconds).toBe(60);
      expect(q.text).toStartWith("no packets from any client for 60 s: firewall? cable? the client's boot order");
      expect(w.lines.filter((l) => l.level === "warn" && l.msg === q.text)).toHaveLength(1);
      expect(w.watcher.linkHint(w.start + 90_000)).toBe(quietText(90));

      // Said once while it lasts.
      w.watcher.tick(w.start + 120_000);
      expect(w.seen.filter((e) => e.type === "link.quiet")).toHaveLength(1);

      // A client's packet resets the clock (at the watcher's own `now`) and the hint goes.
      w.setClock(w.start + 130_000);
      w.bus.emit(dhcp("DISCOVER", { answer: undefined, file: undefined, ignored: "not a PXE client", firmware: undefined }));
      expect(w.watcher.lastPacket).toBe(w.start + 130_000);
      expect(w.watcher.linkHint(w.start + 131_000)).toBeUndefined();
      // …and a new quiet spell is reported again.
      w.watcher.tick(w.start + 130_000 + WAIT.quiet);
      expect(w.seen.filter((e) => e.type === "link.quiet")).toHaveLength(2);
    } finally {
      await w.close();
    }
  });

  test("the watcher's own events (host.*) and events without a MAC are not client packets", async () => {
    const w = await setup();
    try {
      w.setClock(w.start + 50_000);
      w.bus.emit({ type: "host.hint", mac: MAC, ip: undefined, hostname: undefined, code: "x", level: "info", text: "x" });
      w.bus.emit({ type: "http.start", client: "10.0.0.9", method: "GET", path: "/", ip: "10.0.0.9" });
      expect(w.watcher.lastPacket).toBe(w.start);
      expect(w.watcher.linkHint(w.start + WAIT.quiet)).toBe(quietText(60));
    } finally {
      await w.close();
    }
  });

  test("quietText rounds to whole seconds", () => {
    expect(quietText(61.4)).toStartWith("no packets from any client for 61 s:");
    expect(quietText(60)).toContain("network boot first, or its one-time boot menu");
  });

  test("a tick puts the hint on the host, logs and emits it once, and clears it when the host moves on", async () => {
    const w = await setup("server");
    try {
      w.bus.emit(dhcp("DISCOVER"));
      const s = () => w.hosts.get(MAC as never)!;
      expect(s().phase).toBe("offered");
      expect(s().marks.offer).toBeNumber();
      const offerAt = s().marks.offer!;

      w.watcher.tick(offerAt + 2000);
      expect(s().hint).toBeUndefined();
      expect(w.seen.filter((e) => e.type === "host.hint")).toHaveLength(0);

      w.watcher.tick(offerAt + WAIT.request + 1000);
      expect(s().hint?.code).toBe("dhcp-no-request");
      const hints = () => w.seen.filter((e): e is Extract<NetbootEvent, { type: "host.hint" }> => e.type === "host.hint");
      expect(hints()).toHaveLength(1);
      expect(hints()[0]!.mac).toBe(MAC);
      expect(hints()[0]!.level).toBe("warn");
      expect(hints()[0]!.text).toStartWith("DISCOVER but no REQUEST");
      const warned = w.lines.filter((l) => l.level === "warn" && l.msg.includes("DISCOVER but no REQUEST"));
      expect(warned).toHaveLength(1);
      expect(warned[0]!.msg).toStartWith(`${MAC}: `);

      // The same hint again: not logged or emitted again.
      w.watcher.tick(offerAt + WAIT.request + 3000);
      expect(hints()).toHaveLength(1);

      // The REQUEST arrives: the hint clears with an empty one.
      w.bus.emit(dhcp("REQUEST", { answer: "ACK" }));
      w.watcher.tick(offerAt + WAIT.request + 5000);
      expect(s().hint).toBeUndefined();
      expect(hints()).toHaveLength(2);
      expect(hints()[1]!.text).toBe("");
      expect(hints()[1]!.code).toBe("");
    } finally {
      await w.close();
    }
  });

  test("a size probe is not the host's last error; a real TFTP refusal is", async () => {
    const w = await setup();
    try {
      const end = (probe: boolean): EventInput => ({ type: "tftp.end", mac: MAC as never, ip: "10.77.0.11", client: "10.77.0.11:1400", file: "ipxe/snponly.efi", kind: "nbp", outcome: "refused", sizeProbe: probe, bytes: 0, seconds: 0, retransmits: 0, reason: refusalReason(probe, "") });
      w.bus.emit(end(true));
      expect(w.hosts.get(MAC as never)!.lastError).toBeUndefined();
      expect(w.hosts.get(MAC as never)!.recent.at(-1)?.text).toEndWith("normal");
      w.bus.emit(end(false));
      expect(w.hosts.get(MAC as never)!.lastError).toContain("client refused the options");
    } finally {
      await w.close();
    }
  });
});

describe("after a restart", () => {
  test("a state file that is not one stops the start (arming every host would reinstall the done ones)", async () => {
    const dir = tempDir("explain-corrupt-");
    const book = bookFromFlags({ allow: [MAC as never], allowAny: false, ks: undefined, image: "esxi" });
    writeFileSync(join(dir, "hosts.json"), '{"version":1,"hosts":{"' + MAC + '":{"phase":"do');
    await expect(hosts(book, dir)).rejects.toThrow(/hosts\.json is not a host state file .*; restore it from a backup, or move it away to start with every host armed/);
  });

  test("a phase restored from the store gets no stall hint until the host is heard from again", async () => {
    const dir = tempDir("explain-restart-");
    const book = bookFromFlags({ allow: [MAC as never], allowAny: false, ks: undefined, image: "esxi" });
    // A server killed mid-install leaves the host in modules.
    const first = await hosts(book, dir);
    await first.store.mark(MAC as never, "modules", { restart: true });
    await first.close();
    const again = await hosts(book, dir);
    try {
      const s = again.views.get(MAC as never)!;
      expect(s.phase).toBe("modules");
      expect(explain(s, Date.now() + 10 * 60_000, ctx())?.code).toBe("restored");
      // Heard from again: the usual hints apply.
      again.bus.emit({ type: "http.end", ip: "10.77.0.11", mac: MAC as never, client: "10.77.0.11", method: "GET", path: "/esxi/b.b00", status: 200, bytes: 10, kind: "module", note: undefined });
      expect(again.views.get(MAC as never)!.restored).toBe(false);
      expect(explain(again.views.get(MAC as never)!, Date.now() + 10 * 60_000, ctx())?.code).toBe("modules-stalled");
    } finally {
      await again.close();
    }
  });
});
