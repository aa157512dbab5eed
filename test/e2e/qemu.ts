/**
 * Real firmware under QEMU (TCG) on a test LAN, as shared/e2e/boot-client.sh does it: SeaBIOS with QEMU's
 * iPXE NIC ROM, OVMF's UEFI PXE, OVMF's UEFI HTTP boot, and OVMF with Secure Boot enforcing (Debian's
 * snakeoil build: PK, KEK and db hold /usr/share/ovmf/PkKek-1-snakeoil.pem). QEMU runs in the switch
 * namespace, on a tap on the bridge, and is stopped by its PID. A guest that writes to port 0xf4
 * (isa-debug-exit) ends QEMU with status 33: the test guests do when they are done.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/tools.ts";

export type FirmwareMode = "bios" | "uefi-pxe" | "uefi-http" | "uefi-pxe-secure-boot" | "uefi-cd";

/** QEMU's exit status when a guest wrote 0x10 to isa-debug-exit. */
export const GUEST_DONE = 33;

export const CLIENT_MAC = "52:54:00:12:34:56";
export const CLIENT_UUID = "8a0d7d0e-4b43-4c3a-9f44-7e57c11e0001";

export interface Qemu {
  dir: string;
  proc: ReturnType<typeof Bun.spawn>;
  /** When QEMU was started (performance.now()). */
  started: number;
  /** The serial console so far (firmware, loader, kernel), escape sequences and CRs removed. */
  serial(): string;
  stop(): Promise<void>;
}

/**
 * `uefi-cd`: OVMF with no NIC, booting `opts.cdrom` as its CD: a URL read by QEMU's curl block driver
 * (range requests from the namespace QEMU runs in), as a BMC's virtual media reads an ISO by URL.
 */
export function bootFirmware(mode: FirmwareMode, ns: string, tap: string, opts: { memoryMiB?: number; cdrom?: string } = {}): Qemu {
  const dir = tempDir(`qemu-${mode}-`);
  const args = firmwareArgs(mode, tap, dir, opts);
  const started = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", ns, "qemu-system-x86_64", ...args], { stdout: "ignore", stderr: "pipe" });
  return {
    dir,
    proc,
    started,
    serial: () => serialOf(dir),
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await proc.exited;
        clearTimeout(t);
      }
    },
  };
}

/** The serial console written to `dir` so far, escape sequences and CRs removed. */
export function serialOf(dir: string): string {
  const f = join(dir, "serial.log");
  // eslint-disable-next-line no-control-regex
  return existsSync(f) ? readFileSync(f, "latin1").replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "").replace(/\r/g, "") : "";
}

/** QEMU's arguments for a firmware mode, its console and files in `dir` (for a machine another program starts). */
export function firmwareArgs(mode: FirmwareMode, tap: string, dir: string, opts: { memoryMiB?: number; cdrom?: string } = {}): string[] {
  const args = [
    "-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot", "-m", String(opts.memoryMiB ?? 512), "-smp", "1",
    "-uuid", CLIENT_UUID,
    "-serial", `file:${join(dir, "serial.log")}`,
    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ...(mode === "uefi-cd" ? [] : ["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`]),
  ];
  if (mode === "bios") {
    // SeaBIOS mirrors its console (and iPXE's) to COM1. QEMU's default virtio ROM is iPXE: naming a romfile
    // would keep Debian's PCI id in it and SeaBIOS would skip the ROM (shared/e2e/README.md, finding 2).
    writeFileSync(join(dir, "sercon.bin"), Uint8Array.of(0xf8, 0x03));
    args.push("-machine", "pc", "-fw_cfg", `name=etc/sercon-port,file=${join(dir, "sercon.bin")}`, "-boot", "order=n,strict=on", "-device", `virtio-net-pci,netdev=n0,mac=${CLIENT_MAC},bootindex=1`);
  } else if (mode === "uefi-pxe-secure-boot") {
    // Secure Boot needs SMM and a secure flash (the snakeoil build is an SMM build).
    copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", join(dir, "vars.fd"));
    args.push(
      "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd",
      "-drive", `if=pflash,format=raw,unit=1,file=${join(dir, "vars.fd")}`,
      "-device", `virtio-net-pci,netdev=n0,mac=${CLIENT_MAC},romfile=,bootindex=1`,
      // No PXE over IPv6 (a long timeout on this IPv4-only link): after a refused image OVMF goes on to HTTP boot.
      "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no",
    );
  } else if (mode === "uefi-cd") {
    copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.fd", join(dir, "vars.fd"));
    args.push(
      "-machine", "q35",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", `if=pflash,format=raw,unit=1,file=${join(dir, "vars.fd")}`,
      // Without a URL, an empty drive whose medium is changed through QMP (device id cd0); its bootindex is the starter's.
      ...(opts.cdrom ? ["-drive", `file=${opts.cdrom},if=none,id=cdrv,media=cdrom,readonly=on`, "-device", "ide-cd,drive=cdrv,id=cd0,bootindex=1"] : ["-drive", "if=none,id=cdrv,media=cdrom,readonly=on", "-device", "ide-cd,drive=cdrv,id=cd0"]),
    );
  } else {
    copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.fd", join(dir, "vars.fd"));
    args.push(
      "-machine", "q35",
      "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive", `if=pflash,format=raw,unit=1,file=${join(dir, "vars.fd")}`,
      "-device", `virtio-net-pci,netdev=n0,mac=${CLIENT_MAC},romfile=,bootindex=1`,
    );
    // Without PXE boot options OVMF's first network boot option is "UEFI HTTPv4" (finding 3).
    if (mode === "uefi-http") args.push("-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no", "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no");
  }
  return args;
}

/** What an e2e test started (servers, QEMU) and the LANs it made, stopped and removed after each test, last first. */
export function afterEachTest(afterEach: (fn: () => Promise<void>) => void): { running: Array<{ stop(): Promise<unknown> }>; lans: Array<{ destroy(): void }> } {
  const running: Array<{ stop(): Promise<unknown> }> = [];
  const lans: Array<{ destroy(): void }> = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
    for (const l of lans.splice(0)) l.destroy();
  });
  return { running, lans };
}
