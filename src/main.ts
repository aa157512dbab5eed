#!/usr/bin/env bun
/** Entry point for `bun src/main.ts`, `npx netboot`, the compiled binary and the Node bundle. */
import { runMain } from "citty";
import root from "./cli/index.ts";

await runMain(root);
