import { expect, test } from "bun:test";
import { join } from "node:path";

test("tsc --noEmit (strict) passes on src, test and scripts", async () => {
  const repo = join(import.meta.dir, "..");
  const proc = Bun.spawn(["node", join(repo, "node_modules/typescript/bin/tsc"), "-p", join(repo, "tsconfig.json")], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(proc.stdout).text();
  expect(out).toBe("");
  expect(await proc.exited).toBe(0);
}, 120_000);
