/**
 * The bus and what rides on it: a failing observer is logged once per event type and the others still
 * hear every event; phases come from the events' typed fields (hosts/tracker.ts phaseAfter), never from
 * words; the errors carry the exit codes README states.
 */
import { describe, expect, test } from "bun:test";
import type { FileKind } from "../src/boot/files.ts";
import { ConfigError, IsoError, NetbootError, PacketError, PeerError, ServiceError, SourceError, StoreError } from "../src/errors.ts";
import { EventBus, type NetbootEvent } from "../src/events.ts";
import { LabError } from "../src/hosts/lab.ts";
import { bookFromFlags } from "../src/hosts/book.ts";
import { openHostStore } from "../src/hosts/store/open.ts";
import { HostTracker, phaseAfter, phaseOfKind } from "../src/hosts/tracker.ts";
import { HostViews } from "../src/hosts/view.ts";
import { tempDir } from "./helpers/tools.ts";
import { TemplateError } from "../src/boot/kickstart.ts";
import { memoryLogger } from "../src/log.ts";

describe("EventBus", () => {
  test("a failing observer is said once per event type, with the type; the others hear everything", () => {
    const log = memoryLogger();
    const bus = new EventBus(log);
    const heard: string[] = [];
    bus.subscribe((e) => {
      if (e.type === "link.quiet" || e.type === "host.hint") throw new Error(`broken on ${e.type}`);
    });
    bus.subscribe((e) => heard.push(e.type));
    for (let i = 0; i < 3; i++) bus.emit({ type: "link.quiet", seconds: 60, text: "quiet" });
    bus.emit({ type: "host.hint", mac: undefined, hostname: undefined, code: "x", level: "info", text: "x" });
    expect(heard).toEqual(["link.quiet", "link.quiet", "link.quiet", "host.hint"]);
    const warned = log.lines.filter((l) => l.level === "warn").map((l) => l.msg);
    expect(warned).toHaveLength(2);
    expect(warned[0]).toStartWith("an observer of link.quiet events failed (said once per type): broken on link.quiet");
    expect(warned[1]).toStartWith("an observer of host.hint events failed");
  });
});

describe("phases from typed facts", () => {
  const at = new Date().toISOString();
  const dhcp = (over: Partial<Extract<NetbootEvent, { type: "dhcp.request" }>>): NetbootEvent => ({ type: "dhcp.request", time: at, mac: "52:54:00:00:00:01" as never, message: "DISCOVER", port: 67, relay: undefined, answer: "OFFER", file: "ipxe/snponly.efi", ignored: undefined, firmware: "efi-x64", decision: "boot", declined: undefined, reason: "r", ...over });
  const http = (kind: FileKind | undefined, status = 200): NetbootEvent => ({ type: "http.end", time: at, client: "10.0.0.1", method: "GET", path: "/x", status, bytes: 1, kind });

  test("a boot file handed out starts an install; iPXE asking again in the middle of one does not", () => {
    expect(phaseAfter(dhcp({}), undefined)).toEqual({ phase: "offered", restart: true });
    expect(phaseAfter(dhcp({}), "done")).toEqual({ phase: "offered", restart: true });
    expect(phaseAfter(dhcp({ firmware: "ipxe" }), "loader")).toBeUndefined();
    expect(phaseAfter(dhcp({ firmware: "ipxe" }), "kickstart")).toBeUndefined();
    expect(phaseAfter(dhcp({ firmware: "efi-x64" }), "installing")).toEqual({ phase: "offered", restart: true });
    // An answer without a boot file (a denied host's plain lease) starts nothing.
    expect(phaseAfter(dhcp({ file: undefined, decision: "ignore" }), undefined)).toBeUndefined();
  });

  test("the installer's own DHCP after the modules: kickstart", () => {
    expect(phaseAfter(dhcp({ file: undefined, firmware: "unknown", decision: "ignore" }), "modules")).toEqual({ phase: "kickstart", restart: false });
    expect(phaseAfter(dhcp({ file: undefined, firmware: "unknown" }), "bootcfg")).toBeUndefined();
  });

  test("files by kind: forward only, never past done or failed; a failed request moves nothing", () => {
    expect(phaseOfKind("nbp")).toBe("loader");
    expect(phaseOfKind("script")).toBeUndefined();
    expect(phaseOfKind("disc")).toBe("modules");
    expect(phaseAfter(http("bootcfg"), "loader")).toEqual({ phase: "bootcfg", restart: false });
    expect(phaseAfter(http("loader"), "modules")).toBeUndefined();
    expect(phaseAfter(http("module"), "done")).toBeUndefined();
    expect(phaseAfter(http("module", 404), "bootcfg")).toBeUndefined();
    expect(phaseAfter(http("ks"), "kickstart")).toEqual({ phase: "installing", restart: false });
    // With no DHCP answer of ours (another server points here), the first boot file starts the install.
    expect(phaseAfter(http("loader"), undefined)).toEqual({ phase: "loader", restart: true });
    const tftp: NetbootEvent = { type: "tftp.end", time: at, client: "10.0.0.1:1", file: "esxi/b.b00", kind: "module", outcome: "refused", sizeProbe: true, bytes: 0, seconds: 0, retransmits: 0, reason: "size query" };
    expect(phaseAfter(tftp, "bootcfg")).toBeUndefined();
  });
});

test("a request in a host's name from an address known to be another machine's moves nothing but its recent events and last error", async () => {
  const A = "52:54:00:00:00:0a" as never;
  const store = await openHostStore({ url: undefined, stateDir: tempDir("ident-") }, bookFromFlags({ allow: [A], allowAny: false, ks: undefined, image: "esxi" }), memoryLogger());
  const bus = new EventBus();
  const tracker = new HostTracker({ store, bus, log: memoryLogger() });
  const views = new HostViews({ store, bus, log: memoryLogger() });
  const file = (from: { ip?: string; elsewhere?: true }, kind: FileKind) => bus.emit({ type: "http.end", mac: A, ...from, client: from.ip ?? "10.0.0.66", method: "GET", path: `/esxi/01-52-54-00-00-00-0a/${kind}`, status: 200, bytes: 1000, kind });
  // From another machine's address: the boot.cfg and a module, then a refused kickstart.
  file({ elsewhere: true }, "bootcfg");
  file({ elsewhere: true }, "module");
  bus.emit({ type: "ks.served", mac: A, ip: undefined, elsewhere: true, client: "10.0.0.66", image: "esxi", refused: "asked from 10.0.0.66, which is not its address" });
  await Bun.sleep(20);
  expect(store.get(A)?.phase).toBeUndefined();
  let v = views.get(A)!;
  expect([v.ip, v.lastSeen, v.bytes, v.moduleBytes, v.marks]).toEqual([undefined, undefined, 0, 0, {}]);
  expect(v.recent.length).toBe(3);
  expect(v.lastError).toContain("kickstart refused: asked from 10.0.0.66");
  // From an address no one is known at (routed, or loopback): it may be the host; its address stays unknown.
  file({}, "bootcfg");
  await Bun.sleep(20);
  expect(store.get(A)?.phase).toBe("bootcfg");
  expect(views.get(A)!.ip).toBeUndefined();
  // From the host itself: its address too.
  file({ ip: "10.0.0.11" }, "module");
  await Bun.sleep(20);
  expect(store.get(A)?.phase).toBe("modules");
  v = views.get(A)!;
  expect([v.ip, v.moduleBytes, typeof v.marks.bootcfg]).toEqual(["10.0.0.11", 1000, "number"]);
  views.close();
  tracker.close();
  await store.close();
});

test("one error hierarchy: bad input exits 2, everything else known exits 1", () => {
  for (const e of [new ConfigError("E", "x"), new LabError(["a"]), new TemplateError("t", [])]) expect([e instanceof NetbootError, e.exitCode]).toEqual([true, 2]);
  for (const e of [new SourceError("E", "x"), new StoreError("E", "x"), new ServiceError("E", "x"), new PacketError("E", "x"), new IsoError("E", "x"), new PeerError("E", "x")]) expect([e instanceof NetbootError, e.exitCode]).toEqual([true, 1]);
});
