import { defineCommand } from "citty";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApp } from "../app.ts";
import { makeConfig, validateServeConfig } from "../config.ts";
import { readSampleIso, sampleKickstart } from "../demo/sample.ts";
import { walkLikeMboot } from "../demo/walk.ts";
import { parseMac } from "../wire/mac.ts";
import { parseIntArg } from "./args.ts";
import { guard, loggerFor, logArgs } from "./common.ts";

export default defineCommand({
  meta: {
    name: "demo",
    description: "Serve the built-in sample ESXi-shaped image on 127.0.0.1 (no root), fetch it as mboot would, print a summary",
  },
  args: {
    source: { type: "positional", required: false, description: "Image to use instead of the built-in sample", valueHint: "ISO" },
    "http-port": { type: "string", default: "0", description: "HTTP port on 127.0.0.1 (0: any free port)", valueHint: "N" },
    mac: { type: "string", default: "52:54:00:12:34:56", description: "MAC of the pretend client" },
    serve: { type: "boolean", description: "Keep serving after the walk (Ctrl-C stops)" },
    ...logArgs,
  },
  async run({ args }) {
    await guard(async () => {
      const log = loggerFor({ ...args, quiet: args.quiet ?? !args.verbose });
      const mac = parseMac(args.mac);
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
            tftp: { enabled: false },
            dhcp: { mode: "off" },
            boot: { ks },
          }),
        ),
        log,
      );
      let ok = false;
      try {
        const image = app.images[0]!;
        const out = (s: string) => process.stdout.write(s + "\n");
        out(`netboot demo: serving ${args.source ? source : "the built-in sample image"} at ${app.httpBase}/${image.name}/`);
        if (image.esxi) out(`image: ${image.esxi.displayName}, ${image.esxi.summary.modules.length} modules`);
        out(`client ${mac} boots as mboot.efi would (HEAD, then GET):`);
        const result = await walkLikeMboot({
          base: app.httpBase,
          image,
          mac,
          onStep: (s) => out(`  ${s.ok ? "ok  " : "FAIL"} ${String(s.status).padStart(3)} ${String(s.bytes).padStart(9)} B  ${s.what.padEnd(34)} ${s.url}${s.problem ? `  <- ${s.problem}` : ""}`),
        });
        out("boot.cfg as served to this client:");
        for (const line of result.bootCfg.trimEnd().split(/\r?\n/)) out(`  | ${line}`);
        const mbs = result.seconds > 0 ? (result.bytes / 1e6 / result.seconds).toFixed(1) : "-";
        out(
          `summary: ${result.steps.length} fetches, ${result.bytes} bytes in ${result.seconds.toFixed(3)} s (${mbs} MB/s), ` +
            `${result.steps.filter((s) => !s.ok).length} problems: ${result.ok ? "PASS" : "FAIL"}`,
        );
        ok = result.ok;
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
