import { describe, expect, test } from "bun:test";
import { ContentCache } from "../../src/files/cache.ts";

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

describe("hot-file cache", () => {
  test("loads once for concurrent callers, then answers from memory", async () => {
    const c = new ContentCache(1000, 500, 1);
    let loads = 0;
    const load = async () => (loads++, bytes(100));
    const [a, b] = await Promise.all([c.get("k", 100, load)!, c.get("k", 100, load)!]);
    expect(a).toBe(b);
    expect(loads).toBe(1);
    await c.get("k", 100, load);
    expect(loads).toBe(1);
    expect(c.hits).toBe(2);
  });

  test("never takes files above the entry bound or empty files", () => {
    const c = new ContentCache(1000, 500, 1);
    expect(c.get("big", 501, async () => bytes(501))).toBeUndefined();
    expect(c.get("empty", 0, async () => bytes(0))).toBeUndefined();
  });

  test("stays within its byte bound, evicting the least recently used", async () => {
    const c = new ContentCache(300, 100, 1);
    for (const k of ["a", "b", "c"]) await c.get(k, 100, async () => bytes(100))!;
    await c.get("a", 100, async () => bytes(100))!; // a is now the most recent
    await c.get("d", 100, async () => bytes(100))!;
    expect(c.bytes).toBeLessThanOrEqual(300);
    let reloaded = 0;
    await c.get("a", 100, async () => (reloaded++, bytes(100)))!;
    expect(reloaded).toBe(0);
    await c.get("b", 100, async () => (reloaded++, bytes(100)))!;
    expect(reloaded).toBe(1); // b was the oldest and went first
  });

  test("a failed load is forgotten", async () => {
    const c = new ContentCache(1000, 250, 1);
    await expect(c.get("k", 10, async () => Promise.reject(new Error("io")))!).rejects.toThrow("io");
    expect(c.bytes).toBe(0);
    expect(await c.get("k", 10, async () => bytes(10))!).toEqual(bytes(10));
  });

  test("by default a file is kept from its second request on; the first goes out without loading it", async () => {
    const c = new ContentCache(1000, 500);
    let loads = 0;
    const load = async () => (loads++, bytes(100));
    expect(c.get("k", 100, load)).toBeUndefined();
    expect(loads).toBe(0);
    expect(await c.get("k", 100, load)!).toEqual(bytes(100));
    await c.get("k", 100, load);
    expect(loads).toBe(1);
    expect(c.get("other", 100, load)).toBeUndefined();
  });
});
