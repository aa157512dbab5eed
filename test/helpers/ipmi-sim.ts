/**
 * Real IPMI BMCs for tests: OpenIPMI's ipmi_sim (Debian openipmi) and pyghmi's fakebmc (python3-pyghmi,
 * subclassed in fixtures/bmc/recording_fakebmc.py), each on a loopback UDP port, ended by PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitFor } from "./cli.ts";
import { tempDir } from "./tools.ts";

export interface RunningBmc {
  port: number;
  dir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const ipmitoolOk = (port: number, user: string, password: string, ns?: string, host = "127.0.0.1") => {
  const r = Bun.spawnSync([...(ns ? ["ip", "netns", "exec", ns] : []), "ipmitool", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", host, "-p", String(port), "-U", user, "-P", password, "chassis", "power", "status"]);
  return r.exitCode === 0;
};

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await Promise.race([gone, Bun.sleep(3000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/**
 * ipmi_sim with user admin / `password`. `mode: "chassis-control"` runs a chassis_control program that
 * records every set in `dir/log` and keeps power and boot in `dir/state`; `mode: "startcmd"` starts
 * `startcmd` at power on and ends it at power off (ipmi_lan(5)), `startcmd` being a shell command.
 */
export async function startIpmiSim(opts: ({ password: string; mode: "chassis-control" } | { password: string; mode: "startcmd"; startcmd: string; extra?: string }) & { ns?: string; addr?: string; port?: number; serialPort?: number }): Promise<RunningBmc> {
  const dir = tempDir("ipmi-sim-");
  const port = opts.port ?? (await freePort());
  const addr = opts.addr ?? "127.0.0.1";
  const lines = [
    'name "netboot-test"',
    "set_working_mc 0x20",
    "  startlan 1",
    `    addr ${addr} ${port}`,
    "    priv_limit admin",
    "    allowed_auths_callback none md2 md5 straight",
    "    allowed_auths_user none md2 md5 straight",
    "    allowed_auths_operator none md2 md5 straight",
    "    allowed_auths_admin none md2 md5 straight",
    "    guid a123456789abcdefa123456789abcdef",
    "  endlan",
  ];
  if (opts.mode === "chassis-control") {
    const script = join(dir, "chassis-control.sh");
    writeFileSync(
      script,
      `#!/bin/sh
# ipmi_sim's chassis_control program: $1 the MC, $2 get|set, then names (get) or name value pairs (set).
state=${dir}/state; touch "$state"
shift; op=$1; shift
if [ "$op" = get ]; then
  for p in "$@"; do v=$(grep "^$p:" "$state" | tail -1 | cut -d: -f2); echo "$p:\${v:-0}"; done
else
  while [ $# -gt 1 ]; do echo "$1:$2" >> "$state"; echo "set $1 $2" >> ${dir}/log; shift 2; done
fi
exit 0
`,
    );
    chmodSync(script, 0o755);
    lines.push(`  chassis_control "${script} 0x20"`);
  } else {
    // Power through a startcmd needs the system interface on a VM serial channel (QEMU's ipmi-bmc-extern connects there).
    lines.push(`  serial 15 127.0.0.1 ${opts.serialPort ?? (await freePort())} codec VM`, `  startcmd "${opts.startcmd}"`, "  startnow false", "  poweroff_wait 2", "  kill_wait 2");
    if (opts.extra) lines.push(opts.extra);
  }
  lines.push(`  user 2 true "admin" "${opts.password}" admin 10 none md2 md5 straight`);
  writeFileSync(join(dir, "lan.conf"), `${lines.join("\n")}\n`);
  writeFileSync(join(dir, "sim.emu"), "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n");
  const child = spawn(opts.ns ? "ip" : "ipmi_sim", [...(opts.ns ? ["netns", "exec", opts.ns, "ipmi_sim"] : []), "-c", join(dir, "lan.conf"), "-f", join(dir, "sim.emu"), "-s", join(dir, "st"), "-n"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d) => (err += d));
  await waitFor(() => child.exitCode !== null || ipmitoolOk(port, "admin", opts.password, opts.ns, addr), 15_000, "ipmi_sim to answer ipmitool").catch(async (err) => {
    await stopChild(child);
    throw err;
  });
  if (child.exitCode !== null) throw new Error(`ipmi_sim exited ${child.exitCode}: ${err}`);
  return { port, dir, child, stop: () => stopChild(child) };
}

/** pyghmi's fakebmc subclass: user admin / fakepass; `records()` are its JSON lines (power calls, raw boot flags). */
export async function startFakeBmc(): Promise<RunningBmc & { records(): Array<Record<string, unknown>> }> {
  const dir = tempDir("fakebmc-");
  const port = await freePort();
  const log = join(dir, "calls.jsonl");
  // Debian's python3 (where python3-pyghmi is), not a pyenv shim first on PATH.
  const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const child = spawn(python, [join(import.meta.dir, "..", "fixtures", "bmc", "recording_fakebmc.py"), String(port), log], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d) => (err += d));
  await waitFor(() => child.exitCode !== null || ipmitoolOk(port, "admin", "fakepass"), 15_000, "fakebmc to answer ipmitool").catch(async (err) => {
    await stopChild(child);
    throw err;
  });
  if (child.exitCode !== null) throw new Error(`fakebmc exited ${child.exitCode}: ${err}`);
  return {
    port,
    dir,
    child,
    stop: () => stopChild(child),
    records: () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []),
  };
}

/** ipmitool (suite 3, as the cross-check): stdout, or throws with stderr. */
export function ipmitool(port: number, password: string, ...args: string[]): string {
  const r = Bun.spawnSync(["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", String(port), "-U", "admin", "-P", password, ...args]);
  if (r.exitCode !== 0) throw new Error(`ipmitool ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}
