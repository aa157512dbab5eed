import { defineCommand } from "citty";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApp } from "../app.ts";
import { makeConfig, validateServeConfig } from "../config.ts";
import { readSampleIso, sampleKickstart } from "../demo/sample.ts";
import { ROUTES, ROUTE_TITLES, walkRoute, type RouteName } from "../demo/routes.ts";
import { ConfigError } from "../errors.ts";
import { parseMac } from "../wire/mac.ts";
import { parseIntArg } from "./args.ts";
import { guard, loggerFor, logArgs } from "./common.ts";

const MODULE_STEPS = new Set(["kernel size", "module size", "kernel", "module"]);

export default defineCommand({
  meta: {
    name: "demo",
    description: "Serve the built-in sample ESXi-shaped image on 127.0.0.1 (no root), walk every boot route as the firmware and the ESXi loader would, print a summary",
  },
  args: {
    source: { type: "positional", required: false, description: "Image to use instead of the built-in sample", valueHint: "ISO" },
    "http-port": { type: "string", default: "0", description: "HTTP port on 127.0.0.1 (0: any free port)", valueHint: "N" },
    mac: { type: "string", default: "52:54:00:12:34:56", description: "MAC of the pretend client" },
    route: { type: "string", description: `Walk only these routes: ${ROUTES.join(", ")} (comma-separated; default: all)`, valueHint: "LIST" },
    serve: { type: "boolean", description: "Keep serving after the walk (Ctrl-C stops)" },
    ...logArgs,
  },
  async run({ args }) {
    await guard(async () => {
      const log = loggerFor({ ...args, quiet: args.quiet ?? !args.verbose });
      const mac = parseMac(args.mac);
      const routes = args.route ? args.route.split(",").map((r) => r.trim()) : [...ROUTES];
      for (const r of routes) if (!ROUTES.includes(r as RouteName)) throw new ConfigError("E_ARG", `--route ${JSON.stringify(r)}: use ${ROUTES.join(", ")}`);
      const dir = await mkdtemp(join(tmpdir(), "netboot-demo-"));
      const ks = join(dir, "ks.cfg");
      await writeFile(ks, sampleKickstart);
      let source = args.source;
      if (!source) {
        // A real file, so the server reads it in place exactly as it would a user's ISO.
        source = join(dir, "esxi-sample.iso");
        await writeFile(source, await readSampleIso());
      }
      const app = await startApp(
        validateServeConfig(
          makeConfig(source, "127.0.0.1", {
            name: args.source ? undefined : "esxi-sample",
            http: { port: parseIntArg(args["http-port"], "--http-port", 0) },
            cacheMem: 64 * 1024 * 1024,
            tftp: { enabled: true, port: 0 },
            dhcp: { mode: "off" },
            stateDir: join(dir, "state"),
            boot: { ks },
            hosts: { allow: [mac], allowAny: false },
          }),
        ),
        log,
      );
      let ok = true;
      try {
        // The pretend client has no DHCP exchange to tie its address to its MAC: it says so, as a lease would.
        app.neighbors.learn("127.0.0.1", mac);
        const image = app.images[0]!;
        const out = (s: string) => process.stdout.write(s + "\n");
        out(`netboot demo: serving ${args.source ? source : "the built-in sample image"} at ${app.httpBase}/${image.name}/ and TFTP 127.0.0.1:${app.tftp!.port}`);
        if (image.esxi) out(`image: ${image.esxi.displayName}, ${image.esxi.summary.modules.length} modules`);
        out(`client ${mac}, every route as its firmware and ESXi's loader would walk it (Content-Length required, TFTP paths verbatim):`);
        for (const route of routes as RouteName[]) {
          out(`route ${route}: ${ROUTE_TITLES[route]}`);
          const result = await walkRoute(route, {
            base: app.httpBase,
            tftp: { address: "127.0.0.1", port: app.tftp!.port },
            image,
            mac,
            // Kernel and module lines only when something is wrong: the route's summary counts them.
            onStep: (s) => {
              if (s.ok && MODULE_STEPS.has(s.what)) return;
              out(`  ${s.ok ? "ok  " : "FAIL"} ${s.request.padEnd(9)} ${String(s.bytes).padStart(8)} B  ${s.what.padEnd(30)} ${s.path}${s.problem ? `  <- ${s.problem}` : ""}`);
            },
          });
          const loads = result.steps.filter((s) => s.what === "kernel" || s.what === "module");
          if (loads.length) out(`  ok   kernel and ${loads.length - 1} modules: every size asked first, then each loaded and checked byte for byte against the image`);
          const mbs = result.seconds > 0 ? (result.bytes / 1e6 / result.seconds).toFixed(1) : "-";
          out(`  ${result.ok ? "PASS" : "FAIL"}: ${result.steps.length} requests, ${result.bytes} bytes in ${result.seconds.toFixed(3)} s (${mbs} MB/s)`);
          if (route === "uefi-http" || route === "tftp" || route === "bios") {
            out(`  boot.cfg as the loader read it${route === "bios" ? " from the disc" : ""}:`);
            for (const line of result.bootCfg.trimEnd().split(/\r?\n/)) out(`    | ${line}`);
          }
          ok &&= result.ok;
        }
        out(`summary: ${routes.length} routes: ${ok ? "PASS" : "FAIL"}`);
        if (args.serve) {
          out(`still serving at ${app.httpBase}/ (Ctrl-C stops)`);
          await new Promise<void>((r) => process.once("SIGINT", r));
        }
      } finally {
        await app.close();
        await rm(dir, { recursive: true, force: true });
      }
      if (!ok) process.exitCode = 1;
    });
  },
});
