import { expect, test } from "bun:test";
import { RateLimiter } from "../../src/dhcp/rate.ts";
import { ThrottledNotice } from "../../src/log.ts";

test("rate limit: a burst, then the refill rate; other MACs are not affected", () => {
  const clock = { t: 0 };
  const r = new RateLimiter({ burst: 20, perSecond: 5, maxClients: 100 }, () => clock.t);
  let yes = 0;
  for (let i = 0; i < 100; i++) if (r.take("a")) yes++;
  expect(yes).toBe(20);
  expect(r.take("b")).toBe(true);
  clock.t += 1000;
  yes = 0;
  for (let i = 0; i < 100; i++) if (r.take("a")) yes++;
  expect(yes).toBe(5);
  clock.t += 60_000; // idle: full again, never more than the burst
  yes = 0;
  for (let i = 0; i < 100; i++) if (r.take("a")) yes++;
  expect(yes).toBe(20);
});

test("rate limit: the table holds maxClients at most, dropping the one idle longest", () => {
  const r = new RateLimiter({ burst: 1, perSecond: 0, maxClients: 3 }, () => 0);
  for (const k of ["a", "b", "c"]) expect(r.take(k)).toBe(true);
  expect(r.take("a")).toBe(false); // a used most recently now
  expect(r.take("d")).toBe(true); // b dropped
  expect(r.size).toBe(3);
  expect(r.take("b")).toBe(true); // forgotten, so a fresh bucket
  expect(r.take("a")).toBe(false);
});

test("throttled notice: one line a second at most, with the count since the last", () => {
  const clock = { t: 0 };
  const lines: string[] = [];
  const n = new ThrottledNotice((l) => lines.push(l), 1000, () => clock.t);
  const say = (c: number, keys: ReadonlySet<string>) => `${c} from ${keys.size}`;
  for (let i = 0; i < 500; i++) {
    n.note(`k${i % 7}`, say);
    clock.t += 5;
  }
  expect(lines).toEqual(["1 from 1", "200 from 7", "200 from 7"]);
});
