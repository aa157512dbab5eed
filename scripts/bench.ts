#!/usr/bin/env bun
/**
 * npm run bench -- [http|tftp|dhcp|sources|bios|startup|hardening|storm|all]
 * Side-by-side figures: netboot and the peer measured in the same run (see README, Benchmarks).
 * Env: RUNS (5), BENCH_DIR (/var/tmp/netboot-bench), SERVER_CPUS / CLIENT_CPUS (http), TFTP_CPUS (tftp),
 * WRK_SECONDS, WRK_CONNS, DHCP_RUNS, DHCP_SECONDS, DHCP_CLIENTS, DHCP_RATE_LOW, DHCP_RATE_HIGH, BIOS_RUNS, BIOS_MB, KILL_CYCLES, ABORTS, WIRE_FUZZ, ISO_FUZZ, STORM_CLIENTS, STORM_MB.
 */
import { benchBios } from "./bench/bios.ts";
import { benchDhcp } from "./bench/dhcp.ts";
import { benchHardening } from "./bench/hardening.ts";
import { benchHttp } from "./bench/http.ts";
import { benchSources } from "./bench/sources.ts";
import { benchStartup } from "./bench/startup.ts";
import { benchStorm } from "./bench/storm.ts";
import { benchTftp } from "./bench/tftp.ts";

const which = process.argv[2] ?? "all";
const benches: Record<string, () => Promise<void>> = { http: benchHttp, tftp: benchTftp, dhcp: benchDhcp, sources: benchSources, bios: benchBios, startup: benchStartup, hardening: benchHardening, storm: benchStorm };
if (which !== "all" && !benches[which]) {
  console.error(`unknown benchmark ${which}; known: ${Object.keys(benches).join(", ")}, all`);
  process.exit(2);
}
for (const [name, run] of Object.entries(benches)) if (which === "all" || which === name) await run();
