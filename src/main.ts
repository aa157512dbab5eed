#!/usr/bin/env bun
/** Entry point for `bun src/main.ts`, `npx netboot`, the compiled binary and the Node bundle. */
import { runMain } from "citty";
import root from "./cli/index.ts";

const first = process.argv[2];
if (process.argv.length === 3 && (first === "--version" || first === "-v")) {
  // More than citty's bare version: the commit, the runtime and what is embedded (cli/version.ts).
  const { versionText } = await import("./cli/version.ts");
  process.stdout.write(`${await versionText()}\n`);
} else {
  // An unknown command or option is one line and exit 2 before anything starts (citty would ignore the option).
  const { usageProblem } = await import("./cli/args.ts");
  const problem = await usageProblem(root, process.argv.slice(2));
  if (problem) {
    process.stderr.write(`${problem}\n`);
    process.exit(2);
  }
  await runMain(root);
}
