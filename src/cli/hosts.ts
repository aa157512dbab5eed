import { defineCommand } from "citty";
import { checkStoreUrl, DEFAULTS, defaultStateDir } from "../config.ts";
import { ConfigError, StoreError } from "../errors.ts";
import { bookFromFlags, bookFromLab, type HostBook } from "../hosts/book.ts";
import { loadLabFile } from "../hosts/lab.ts";
import { openHostStore } from "../hosts/store/open.ts";
import { isArmed } from "../hosts/store/record.ts";
import type { HostStore } from "../hosts/store/store.ts";
import { tryParseMac, type Mac } from "../wire/mac.ts";
import { serveOptionNames } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

const storeArgs = {
  "state-dir": { type: "string", description: `The server's --state-dir, where its file store is (default: ${DEFAULTS.stateDirRoot} as root, else ~/.local/state/netboot)`, valueHint: "DIR" },
  store: { type: "string", description: "The servers' --store postgres://USER@HOST[:PORT]/DB", valueHint: "URL" },
  config: { type: "string", description: "The lab file: its server: section names the store, and its hosts are listed by hostname", valueHint: "lab.yaml" },
} as const;

type StoreArgs = { "state-dir"?: string; store?: string; config?: string };

/** The store the servers use, as a client beside them (the file store appends; a running server applies it at once). */
async function openStore(args: StoreArgs): Promise<HostStore> {
  const lab = args.config ? loadLabFile(args.config, serveOptionNames) : undefined;
  const fromLab = (k: string) => (typeof lab?.server[k] === "string" ? (lab.server[k] as string) : undefined);
  const url = args.store ?? fromLab("store");
  if (url !== undefined) checkStoreUrl(url);
  // Who the hosts are, by MAC and hostname: their secrets and templates are the server's business.
  const book: HostBook = lab ? bookFromLab(lab, lab.images.map((i) => i.name), process.env, { secrets: false, templates: false }) : bookFromFlags({ allow: [], allowAny: false, ks: undefined, image: "-" });
  return openHostStore({ url, stateDir: args["state-dir"] ?? fromLab("state-dir") ?? defaultStateDir() }, book, stderrLogger(), "client");
}

/** Runs `fn` on the store, closed afterwards; any error is one line and an exit code (guard). */
function withStore(args: StoreArgs, fn: (store: HostStore) => Promise<void>): Promise<void> {
  return guard(async () => {
    const store = await openStore(args);
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  });
}

/** A MAC, or a hostname of the lab file. */
function hostMac(store: HostStore, name: string): Mac {
  const mac = tryParseMac(name) ?? store.book.hosts.find((h) => h.hostname === name)?.mac;
  if (!mac) throw new ConfigError("E_ARG", `${JSON.stringify(name)} is not a MAC${store.book.hosts.length ? ", nor a hostname of the lab file" : " (give --config lab.yaml to name hosts by hostname)"}`);
  return mac;
}

export default defineCommand({
  meta: { name: "hosts", description: "What the host store knows of each host (the servers' --state-dir, or --store): list them, show the log a failed install sent, or arm one again so its next network boot installs" },
  subCommands: {
    list: defineCommand({
      meta: { name: "list", description: "Each host's phase, as the store has it (a running server's /api/hosts says more)" },
      args: storeArgs,
      async run({ args }) {
        await withStore(args, async (store) => {
          // The lab's hosts (they have a token from the server's first start), and any MAC with an install.
          const hosts = (await store.list()).filter((h) => h.listed || h.record?.token || h.record?.phase);
          if (hosts.length === 0) process.stdout.write(`no hosts yet (${store.where})\n`);
          const named = store.book.hosts.length > 0;
          for (const h of hosts.sort((a, b) => Number(b.listed) - Number(a.listed) || a.mac.localeCompare(b.mac))) {
            const r = h.record;
            const when = r?.doneAt ? `done ${new Date(r.doneAt).toISOString()}` : r?.failure ? `failed: ${r.failure}` : "";
            const name = named ? `${(h.entry?.hostname ?? (h.listed ? "-" : "(not in the lab)")).padEnd(16)} ` : "";
            process.stdout.write(`${h.mac}  ${name}${(r?.phase ?? "armed").padEnd(10)} ${when}`.trimEnd() + "\n");
          }
        });
      },
    }),
    log: defineCommand({
      meta: { name: "log", description: "The installer's log a host sent to its failed_url, as kept by the store (read where the store is: it may hold what the installer printed)" },
      args: { mac: { type: "positional", required: true, description: "The host's MAC (or its hostname, with --config)", valueHint: "MAC" }, ...storeArgs },
      async run({ args }) {
        await withStore(args, async (store) => {
          const mac = hostMac(store, args.mac);
          const log = store.get(mac)?.failureLog ? await store.failureLog(mac) : undefined;
          if (!log) throw new StoreError("E_NO_LOG", `${mac}: no installer log kept in ${store.where} (it keeps the body of a POST to failed_url)`);
          process.stdout.write(log);
        });
      },
    }),
    rearm: defineCommand({
      meta: { name: "rearm", description: "Arm hosts again (mode once: each installs on its next network boot); a running server applies it at once, a stopped one at its next start" },
      args: { mac: { type: "positional", required: true, description: "The host's MAC (or its hostname, with --config)", valueHint: "MAC" }, ...storeArgs },
      async run({ args }) {
        await withStore(args, async (store) => {
          for (const name of [args.mac, ...((args as { _?: string[] })._?.slice(1) ?? [])]) {
            const mac = hostMac(store, name);
            const known = await store.snapshot(mac);
            if (!known.listed && !known.record) throw new StoreError("E_NO_HOST", `${mac}: ${store.where} knows nothing of it; is that the server's ${store.kind === "file" ? "--state-dir" : "--store"} (or is the MAC mistyped)?`);
            if (isArmed(known.record)) {
              process.stdout.write(`${mac}: already armed; its next network boot installs\n`);
              continue;
            }
            await store.rearm(mac);
            process.stdout.write(`${mac}: armed again (${store.where}); its next network boot installs\n`);
          }
        });
      },
    }),
  },
});
