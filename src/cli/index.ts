/** The root command: subcommands are literal lazy imports, so `bun build --compile` bundles them. */
import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };

export const version = pkg.version;

export default defineCommand({
  meta: { name: "netboot", version, description: "Network-boot ESXi installers straight from the ISO" },
  subCommands: {
    serve: () => import("./serve.ts").then((m) => m.default),
    demo: () => import("./demo.ts").then((m) => m.default),
    ls: () => import("./ls.ts").then((m) => m.default),
    cat: () => import("./cat.ts").then((m) => m.default),
    bootcfg: () => import("./bootcfg.ts").then((m) => m.default),
    check: () => import("./check.ts").then((m) => m.default),
    hosts: () => import("./hosts.ts").then((m) => m.default),
    power: () => import("./power.ts").then((m) => m.default),
    reinstall: () => import("./reinstall.ts").then((m) => m.default),
    simulate: () => import("./simulate.ts").then((m) => m.default),
    doctor: () => import("./doctor.ts").then((m) => m.default),
  },
});
