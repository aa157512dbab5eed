import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const repo = join(import.meta.dir, "..");

test("README starts with the demo and test commands; .ci/run runs the test command verbatim", () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const commands = block.split("\n").filter((l) => l.trim()).map((l) => l.replace(/\s+#.*$/, "").trim());
  expect(commands.length).toBe(2);
  expect(commands[0]).toContain("npm start");
  const testCommand = commands[1]!;
  expect(testCommand).toContain("npm test");
  const ci = readFileSync(join(repo, ".ci/run"), "utf8").trim().split("\n");
  expect(ci[ci.length - 1]!.trim()).toBe(testCommand);
  expect(readme.indexOf("```sh")).toBeLessThan(20);
});
