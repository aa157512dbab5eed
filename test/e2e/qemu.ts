/**
 * Real firmware under QEMU (TCG) on a test LAN, as shared/e2e/boot-client.sh does it: SeaBIOS with QEMU's
 * iPXE NIC ROM, OVMF's UEFI PXE, OVMF's UEFI HTTP boot. QEMU runs in the switch namespace, on a tap on the
 * bridge, and is stopped by its PID.
 */
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/tools.ts";

export type FirmwareMode = "bios" | "uefi-pxe" | "uefi-http";

export const CLIENT_MAC = "52:54:00:12:34:56";
export const CLIENT_UUID = "8a0d7d0e-4b43-4c3a-9f44-7e57c11e0001";

export interface Qemu {
  dir: string;
  proc: ReturnType<typeof Bun.spawn>;
  stop(): Promise<void>;
}

export function bootFirmware(mode: FirmwareMode, ns: string, tap: string): Qemu {
  const dir = tempDir(`qemu-${mode}-`);
  const args = [
    "-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot", "-m", "512", "-smp", "1",
    "-uuid", CLIENT_UUID,
    "-serial", `file:${join(dir, "serial.log")}`,
    "-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`,
  ];
  if (mode === "bios") {
    // SeaBIOS mirrors its console (and iPXE's) to COM1. QEMU's default virtio ROM is iPXE: naming a romfile
    // would keep Debian's PCI id in it and SeaBIOS would skip the ROM (shared/e2e/README.md, finding 2).
    writeFileSync(join(dir, "sercon.bin"), Uint8Array.of(0xf8, 0x03));
    args.push("-machine", "pc", "-fw_cfg", `name=etc/sercon-port,file=${join(dir, "sercon.bin")}`, "-boot", "order=n,strict=on", "-device", `virtio-net-pci,netdev=n0,mac=${CLIENT_MAC},bootindex=1`);
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
  const proc = Bun.spawn(["ip", "netns", "exec", ns, "qemu-system-x86_64", ...args], { stdout: "ignore", stderr: "pipe" });
  return {
    dir,
    proc,
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
