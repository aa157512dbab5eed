/**
 * A machine behind a Redfish BMC, for the reinstall test: the Redfish test service (redfish-mock.ts) whose
 * machine, powered on with the virtual CD inserted, does what UEFI and the installer would do with the
 * machine's own ISO: reads it by range requests from the URL (as QEMU's curl block driver does), takes
 * /EFI/BOOT/BOOT.CFG (what mboot reads from a CD), reads the kernel and every module off the disc, fetches
 * the kickstart named by ks= from the host's own address, calls its done_url, then answers /sdk on HTTPS
 * as the installed ESXi. Run in the machine's namespace:
 *   bun redfish-machine.ts CONFIG.json     {listen, port, user, passwordEnv, cert, key, ip, build, log}
 */
import { appendFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { IsoImage } from "../../src/iso/image.ts";
import { getBootCfgValue, parseBootCfg, splitModules } from "../../src/boot/esxi/bootcfg.ts";
import { startRedfishMock, type MockMachine } from "./redfish-mock.ts";
import { startSdk } from "./esxi-sdk.ts";

const cfg = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as { listen: string; port: number; user: string; passwordEnv: string; cert: string; key: string; ip: string; build: string; log: string };
const tls = { cert: readFileSync(cfg.cert, "utf8"), key: readFileSync(cfg.key, "utf8") };
const log = (o: Record<string, unknown>) => appendFileSync(cfg.log, JSON.stringify(o) + "\n");
let sdk: ReturnType<typeof startSdk> | undefined;
let running: Promise<void> | undefined;

async function curl(args: string[]): Promise<string> {
  const p = Bun.spawn(["curl", "-sS", "--fail", "--interface", cfg.ip, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`curl ${args.join(" ")}: ${code} ${err}`);
  return out;
}

async function boot(image: string): Promise<void> {
  let ranges = 0;
  const head = await fetch(image, { method: "HEAD" });
  const size = Number(head.headers.get("content-length"));
  log({ step: "disc", image, size, type: head.headers.get("content-type") });
  const iso = await IsoImage.open({
    size,
    read: async (offset: number, length: number) => {
      ranges++;
      const r = await fetch(image, { headers: { range: `bytes=${offset}-${offset + length - 1}` } });
      if (r.status !== 206) throw new Error(`range ${offset}+${length}: ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
  });
  const cfgEntry = await iso.lookup("/EFI/BOOT/BOOT.CFG");
  if (!cfgEntry) throw new Error("no /EFI/BOOT/BOOT.CFG on the disc");
  const bootCfg = parseBootCfg(new TextDecoder().decode(await iso.read(cfgEntry)));
  const kernelopt = getBootCfgValue(bootCfg, "kernelopt") ?? "";
  const files = [getBootCfgValue(bootCfg, "kernel")!, ...splitModules(getBootCfgValue(bootCfg, "modules") ?? "")].map((m) => m.split(/\s+/)[0]!);
  const sums: Record<string, string> = {};
  for (const f of files) {
    const e = await iso.lookup("/" + f.replace(/^\/+/, ""));
    if (!e) throw new Error(`${f} is not on the disc`);
    sums["/" + f.replace(/^\/+/, "")] = createHash("sha256").update(await iso.read(e)).digest("hex");
  }
  log({ step: "loader", kernelopt, modules: sums, ranges });
  const ks = /(?:^|\s)ks=(\S+)/.exec(kernelopt)?.[1];
  if (!ks) throw new Error(`no ks= in kernelopt: ${kernelopt}`);
  const text = await curl([ks]);
  const done = /(https?:\/\/\S+\/done\?token=[^"'\s]+)/.exec(text)?.[1];
  log({ step: "kickstart", url: ks, done: done !== undefined });
  if (!done) throw new Error("the kickstart has no done_url");
  await curl(["-o", "/dev/null", done]);
  log({ step: "done_url" });
  // The installed system comes up.
  sdk = startSdk(cfg.ip, cfg.build, tls);
  log({ step: "sdk", ip: cfg.ip });
}

const machine: MockMachine = {
  power: "Off",
  reset(type) {
    log({ step: "reset", type });
    if (type === "ForceOff" || type === "GracefulShutdown") {
      machine.power = "Off";
      sdk?.stop(true);
      sdk = undefined;
      return;
    }
    machine.power = "On";
    const image = mock.media.Inserted ? mock.media.Image : null;
    const override = mock.boot.BootSourceOverrideEnabled !== "Disabled" ? mock.boot.BootSourceOverrideTarget : "None";
    if (image && override === "Cd" && !running) {
      running = boot(image)
        .catch((err) => log({ step: "error", error: String(err) }))
        .finally(() => (running = undefined));
      if (mock.boot.BootSourceOverrideEnabled === "Once") mock.boot.BootSourceOverrideEnabled = "Disabled";
    }
  },
  insert(image) {
    log({ step: "insert", image });
  },
  eject() {
    log({ step: "eject" });
  },
};
const mock = startRedfishMock({ user: cfg.user, password: process.env[cfg.passwordEnv]!, machine, tls, host: cfg.listen, port: cfg.port });
process.stdout.write(`redfish on ${mock.url}\n`);
