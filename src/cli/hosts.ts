import { defineCommand } from "citty";
import { join } from "node:path";
import { defaultStateDir } from "../config.ts";
import { readHostState, requestRearm } from "../hosts/registry.ts";
import { parseMac } from "../wire/mac.ts";
import { guard } from "./common.ts";

const stateDirArg = { "state-dir": { type: "string", description: "The server's --state-dir (default: /var/lib/netboot as root, else ~/.local/state/netboot)", valueHint: "DIR" } } as const;

export default defineCommand({
  meta: { name: "hosts", description: "The hosts a server keeps in its state directory: list them, or arm one again so its next network boot installs" },
  subCommands: {
    list: defineCommand({
      meta: { name: "list", description: "Each listed host's phase, as the state directory says (a running server's /api/hosts says more)" },
      args: stateDirArg,
      async run({ args }) {
        await guard(async () => {
          const path = join(args["state-dir"] ?? defaultStateDir(), "hosts.json");
          const data = readHostState(path);
          if (!data) {
            process.stdout.write(`no hosts yet (${path} does not exist)\n`);
            return;
          }
          for (const [mac, h] of Object.entries(data.hosts ?? {})) {
            if (typeof h !== "object" || h === null) continue; // as the server does: not a host's record
            process.stdout.write(`${mac}  ${(h.phase ?? "armed").padEnd(10)} ${h.doneAt ? `done ${new Date(h.doneAt).toISOString()}` : ""}${h.failure ? `failed: ${h.failure}` : ""}\n`);
          }
        });
      },
    }),
    rearm: defineCommand({
      meta: { name: "rearm", description: "Arm a host again (mode once: it installs on its next network boot); applied by a running server within 2 s, or at its next start" },
      args: { mac: { type: "positional", required: true, description: "The host's MAC", valueHint: "MAC" }, ...stateDirArg },
      async run({ args }) {
        await guard(async () => {
          const mac = parseMac(args.mac);
          const f = requestRearm(args["state-dir"] ?? defaultStateDir(), mac);
          process.stdout.write(`${mac}: armed again (${f}); its next network boot installs\n`);
        });
      },
    }),
  },
});
