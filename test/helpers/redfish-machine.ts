/**
 * A machine behind a Redfish BMC, for the reinstall tests: the Redfish test service (redfish-mock.ts) and
 * the machine it drives. Two machines:
 *
 *  - without `qemu`: powered on with the virtual CD inserted, it does what UEFI and the loader would do
 *    with the machine's own ISO: reads it by range requests (as QEMU's curl block driver does), takes
 *    /EFI/BOOT/BOOT.CFG (what mboot reads from a CD), reads the kernel and every module off the disc;
 *  - with `qemu` (QEMU's arguments for OVMF with an empty CD drive, test/e2e/qemu.ts): a real machine
 *    driven through QMP. Reset On starts QEMU paused, InsertMedia is blockdev-change-medium of the URL
 *    (QEMU's curl block driver reads it by ranges), the boot override is the CD's bootindex at that start,
 *    EjectMedia is eject, ForceOff is quit. The test loader in the ISO's UEFI El Torito image boots from
 *    the CD and prints kernelopt and every module on the console, then QEMU ends.
 *
 * Either way the harness then plays the installer: the kickstart named by ks= from the host's own
 * address, its done_url, then /sdk on HTTPS as the installed ESXi. Run in the machine's namespace:
 *   bun redfish-machine.ts CONFIG.json  {listen, port, user, passwordEnv, cert, key, ip, build, log, qemu?: {args, serialDir}}
 */
import { appendFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { IsoImage } from "../../src/iso/image.ts";
import { getBootCfgValue, parseBootCfg, splitModules } from "../../src/boot/esxi/bootcfg.ts";
import { startRedfishMock, type MockMachine } from "./redfish-mock.ts";
import { startSdk } from "./esxi-sdk.ts";

const cfg = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as { listen: string; port: number; user: string; passwordEnv: string; cert: string; key: string; ip: string; build: string; log: string; qemu?: { args: string[]; serialDir: string } };
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
  await installer(kernelopt);
}

/** After the loader: the installer's kickstart, its done_url, then the installed ESXi's /sdk. */
async function installer(kernelopt: string): Promise<void> {
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

/** QEMU through QMP (its JSON protocol on a Unix socket): one command at a time. */
class Qmp {
  #buf = "";
  #waiting: Array<(v: Record<string, unknown>) => void> = [];
  #sock: Awaited<ReturnType<typeof Bun.connect>> | undefined;
  async open(path: string): Promise<void> {
    for (let i = 0; i < 100 && !this.#sock; i++) {
      try {
        this.#sock = await Bun.connect({
          unix: path,
          socket: {
            data: (_s, d) => {
              this.#buf += new TextDecoder().decode(d);
              let nl: number;
              while ((nl = this.#buf.indexOf("\n")) >= 0) {
                const line = this.#buf.slice(0, nl);
                this.#buf = this.#buf.slice(nl + 1);
                const msg = JSON.parse(line) as Record<string, unknown>;
                if ("return" in msg || "error" in msg || "QMP" in msg) this.#waiting.shift()?.(msg);
              }
            },
          },
        });
      } catch {
        await Bun.sleep(100);
      }
    }
    if (!this.#sock) throw new Error(`no QMP socket at ${path}`);
    await new Promise((r) => this.#waiting.push(r)); // the greeting
    await this.run("qmp_capabilities");
  }
  run(execute: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.#waiting.push((m) => ("error" in m ? reject(new Error(`${execute}: ${JSON.stringify(m.error)}`)) : resolve(m)));
      this.#sock!.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + "\n");
    });
  }
}

let vm: { proc: ReturnType<typeof Bun.spawn>; qmp: Qmp } | undefined;

async function startVm(): Promise<void> {
  const q = cfg.qemu!;
  const sock = `${q.serialDir}/qmp.sock`;
  const cdFirst = mock.boot.BootSourceOverrideEnabled !== "Disabled" && mock.boot.BootSourceOverrideTarget === "Cd";
  const args = q.args.map((a) => (a.startsWith("ide-cd,") ? `${a},bootindex=${cdFirst ? 1 : 9}` : a));
  const proc = Bun.spawn(["qemu-system-x86_64", ...args, "-S", "-qmp", `unix:${sock},server=on,wait=off`], { stdout: "ignore", stderr: "inherit" });
  const qmp = new Qmp();
  await qmp.open(sock);
  vm = { proc, qmp };
  if (mock.media.Inserted && mock.media.Image) await qmp.run("blockdev-change-medium", { id: "cd0", filename: mock.media.Image, format: "raw", "read-only-mode": "read-only" });
  log({ step: "qemu", cdFirst, image: mock.media.Image });
  if (mock.boot.BootSourceOverrideEnabled === "Once") mock.boot.BootSourceOverrideEnabled = "Disabled";
  await qmp.run("cont");
  void proc.exited.then(async () => {
    vm = undefined;
    machine.power = "Off";
    const serial = readFileSync(`${q.serialDir}/serial.log`, "latin1").replace(/\r/g, "");
    const kernelopt = /^prefix=\S* blksize=\d+ kernelopt=(.*)$/m.exec(serial)?.[1];
    log({ step: "loader", done: serial.includes("NETBOOT-TEST-LOADER-DONE"), kernelopt });
    // The installer runs and reboots into the installed system: the machine is on again.
    if (serial.includes("NETBOOT-TEST-LOADER-DONE") && kernelopt) {
      machine.power = "On";
      await installer(kernelopt).catch((err) => log({ step: "error", error: String(err) }));
    }
  });
}

const machine: MockMachine = {
  power: "Off",
  async reset(type) {
    log({ step: "reset", type });
    if (type === "ForceOff" || type === "GracefulShutdown") {
      machine.power = "Off";
      sdk?.stop(true);
      sdk = undefined;
      if (vm) await vm.qmp.run("quit").catch(() => {});
      return;
    }
    if (cfg.qemu) {
      machine.power = "On";
      if (vm) await vm.qmp.run("system_reset");
      else await startVm();
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
  async insert(image) {
    log({ step: "insert", image });
    if (vm) await vm.qmp.run("blockdev-change-medium", { id: "cd0", filename: image, format: "raw", "read-only-mode": "read-only" });
  },
  async eject() {
    log({ step: "eject" });
    if (vm) await vm.qmp.run("eject", { id: "cd0", force: true });
  },
};
const mock = startRedfishMock({ user: cfg.user, password: process.env[cfg.passwordEnv]!, machine, tls, host: cfg.listen, port: cfg.port });
process.stdout.write(`redfish on ${mock.url}\n`);
