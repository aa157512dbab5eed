/** The view model follows at most 1024 unlisted MACs: a flood of made-up ones cannot grow it, and cannot push out a listed host or a machine seen lately. */
import { afterEach, expect, setSystemTime, test } from "bun:test";
import { EventBus } from "../../src/events.ts";
import { bookFromFlags } from "../../src/hosts/book.ts";
import { openHostStore } from "../../src/hosts/store/open.ts";
import { HostTracker } from "../../src/hosts/tracker.ts";
import { HostViews } from "../../src/hosts/view.ts";
import { memoryLogger } from "../../src/log.ts";
import { tempDir } from "../helpers/tools.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const LISTED = "52:54:00:00:00:01";
const KEEPER = "52:54:00:00:00:02"; // unlisted, but heard from all along
const made = (i: number) => `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

afterEach(() => setSystemTime());

test("5,000 made-up MACs: at most 1024 unlisted kept, the listed host and the one heard lately stay, the oldest go", async () => {
  const book = bookFromFlags({ allow: [LISTED as never], allowAny: false, ks: undefined, image: "esxi" });
  const bus = new EventBus();
  const stateDir = tempDir("view-cap-");
  const store = await openHostStore({ url: undefined, stateDir }, book, memoryLogger());
  const tracker = new HostTracker({ store, bus, log: memoryLogger() });
  const views = new HostViews({ store, bus, log: memoryLogger() });
  const seen = (mac: string, at: number) => {
    setSystemTime(new Date(1_800_000_000_000 + at));
    // Offered a boot file (an install starts, in memory), then a 404.
    bus.emit({ type: "dhcp.request", mac: mac as never, ip: undefined, message: "DISCOVER", port: 67, relay: undefined, answer: "OFFER", file: "ipxe/snponly.efi", ignored: undefined, firmware: "efi-x64", decision: "boot", declined: undefined, reason: "--allow-any" });
    bus.emit({ type: "http.end", ip: "10.0.0.9", mac: mac as never, client: "10.0.0.9", method: "GET", path: "/esxi/x", status: 404, bytes: 0, kind: undefined, note: undefined });
  };
  let t = 0;
  for (let i = 0; i < 5000; i++) {
    seen(made(i), t++);
    if (i % 100 === 0) seen(KEEPER, t++);
  }
  const unlisted = views.all().filter((s) => !s.listed);
  expect(unlisted.length).toBeLessThanOrEqual(1024);
  expect(unlisted.length).toBeGreaterThan(1024 - 1024 / 8);
  expect(views.get(LISTED as never)?.listed).toBe(true);
  expect(views.get(KEEPER as never)).toBeDefined();
  expect(views.get(made(4999) as never)).toBeDefined(); // the newest
  expect(views.get(made(0) as never)).toBeUndefined(); // the oldest
  // What is kept is the most recent: every kept made-up MAC was seen after every dropped one.
  const kept = new Set(unlisted.map((s) => s.mac as string));
  const keptIdx = [...Array(5000).keys()].filter((i) => kept.has(made(i)));
  expect(keptIdx.length).toBe(unlisted.length - 1); // all but the keeper
  expect(keptIdx[0]).toBe(5000 - keptIdx.length);
  // Their phases were followed (in memory), but nothing of them reached the files.
  expect(store.get(made(4999) as never)?.phase).toBe("offered");
  views.close();
  tracker.close();
  await store.close();
  expect(Object.keys(JSON.parse(readFileSync(join(stateDir, "hosts.json"), "utf8")).hosts)).toEqual([LISTED]);
});
