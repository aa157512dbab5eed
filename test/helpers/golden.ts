/** Golden files: compare with a checked-in text; UPDATE_GOLDEN=1 rewrites it (then review the diff). */
import { expect } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const fixtures = join(import.meta.dir, "..", "fixtures");

export function fixture(rel: string): string {
  return readFileSync(join(fixtures, rel), "utf8");
}

export function expectGolden(rel: string, actual: string): void {
  const file = join(fixtures, rel);
  if (process.env.UPDATE_GOLDEN || !existsSync(file)) {
    if (!process.env.UPDATE_GOLDEN) throw new Error(`golden file ${rel} is missing (run with UPDATE_GOLDEN=1 and review it)`);
    writeFileSync(file, actual);
    return;
  }
  expect(actual).toBe(readFileSync(file, "utf8"));
}
