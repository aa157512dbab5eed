/**
 * The fuzz harness (scripts/fuzz.ts) with a small seeded count: mutated DHCP, BSDP option 43, TFTP packets
 * and boot.cfgs are either decoded or refused with a typed error, never anything else. The full run is
 * `npm run fuzz -- --count 1000000`.
 */
import { expect, test } from "bun:test";
import { fuzz, TARGETS } from "../scripts/fuzz.ts";

for (const target of TARGETS) {
  test(`${target}: 20,000 mutated cases, no untyped exception`, () => {
    const r = fuzz(target, 20_000, 1);
    expect(r.findings).toEqual([]);
    // The mutations reach both sides: some cases decode, and (for the packet codecs) some are refused.
    expect(r.accepted).toBeGreaterThan(1000);
    if (target !== "bootcfg") expect(r.cases - r.accepted).toBeGreaterThan(1000);
  });
}

test("the same seed gives the same cases; an untyped exception is reported with its case", () => {
  expect(fuzz("tftp", 2000, 5).accepted).toBe(fuzz("tftp", 2000, 5).accepted);
  const r = fuzz("tftp", 2000, 5, (b) => {
    if (b.length % 7 === 0) throw new TypeError("planted");
  });
  expect(r.findings.length).toBeGreaterThan(0);
  expect(r.findings[0]![1]).toMatch(/^TypeError: planted/);
});
