#!/usr/bin/env bun
/**
 * npm run bench -- [http|tftp|dhcp|sources|all]
 * Side-by-side figures: netboot and the peer measured in the same run (see README, Benchmarks).
 * Env: RUNS (5), BENCH_DIR (/var/tmp/netboot-bench), SERVER_CPUS / CLIENT_CPUS, WRK_SECONDS, WRK_CONNS.
 */
import { benchHttp } from "./bench/http.ts";

const which = process.argv[2] ?? "all";
const benches: Record<string, () => Promise<void>> = { http: benchHttp };
if (which !== "all" && !benches[which]) {
  console.error(`unknown benchmark ${which}; known: ${Object.keys(benches).join(", ")}, all`);
  process.exit(2);
}
for (const [name, run] of Object.entries(benches)) if (which === "all" || which === name) await run();
