/**
 * The iPXE script at /boot.ipxe. iPXE asks for it instead of a firmware file (policy row "iPXE"), which is
 * what breaks the DHCP → iPXE → DHCP → iPXE chain-load loop. On UEFI the script chain-loads ESXi's own
 * loader with `-c <per-MAC boot.cfg URL>` (mboot.efi option "-c": vmware/esx-boot mboot/mboot.c; a value
 * with "://" is absolute, so it wins over mboot's own lookup). On BIOS it boots the ISO itself as a CD
 * over HTTP (`sanboot`): Debian's iPXE cannot run the ISO's COM32R mboot.c32, but the ISO's own El Torito
 * boot (ISOLINUX → mboot.c32) runs unchanged from iPXE's emulated CD-ROM, reading a BOOT.CFG rewritten
 * for this MAC (boot/files.ts, NAME/01-<mac>.iso). iPXE fills in ${mac:hexhyp} and picks the branch by
 * ${platform}, so the script is right even for a client the server could not put a MAC to; when the MAC
 * is known the script is made for it (and says so), and a client the policy refuses gets a script that
 * tells it why and exits back to the firmware.
 */
import type { Mac } from "../wire/mac.ts";
import type { BootImage } from "./image.ts";

export interface IpxeScriptInput {
  image: BootImage;
  /** "http://IP[:PORT]" */
  httpBase: string;
  /** The client's MAC, when the server knows it (from its DHCP traffic or the neighbour table). */
  mac: Mac | undefined;
  /** Set when the policy refuses this client. */
  refused?: string | undefined;
  /** Set when it boots from its own disk: the script exits so the firmware goes on to the next device. */
  local?: string | undefined;
}

/** Why BIOS clients cannot boot this image by sanboot; undefined when they can. */
export function biosUnbootable(image: BootImage): string | undefined {
  if (!image.esxi?.biosCfg) return `${image.name} has no BOOT.CFG for BIOS clients`;
  if (!image.tree.disc) return `${image.name} is a directory: BIOS clients boot the ISO itself, serve the .iso file`;
  if (!image.tree.disc.bootable) return `${image.name} has no El Torito boot record: BIOS cannot boot it`;
  return undefined;
}

export function ipxeScript(input: IpxeScriptInput): string {
  const { image, httpBase, mac } = input;
  const who = mac ? `${mac}` : "${mac}";
  const name = image.esxi?.displayName ?? image.name;
  const lines = ["#!ipxe", `# netboot: ${name}${mac ? ` for ${mac}` : ""}`];
  if (input.refused) {
    lines.push(`echo netboot: not booting ${who}: ${sanitize(input.refused)}`, "sleep 5", "exit 1", "");
    return lines.join("\n");
  }
  if (input.local) {
    // exit (status 0) hands control back to the firmware, which boots the next device: the installed disk.
    lines.push(`echo netboot: ${who} boots from its local disk: ${sanitize(input.local)}`, "exit", "");
    return lines.join("\n");
  }
  const dir = `${httpBase}/${image.name}`;
  const cfg = `${dir}/01-\${mac:hexhyp}/boot.cfg`;
  lines.push(
    `echo netboot: ${who} (\${platform}) boots ${sanitize(name)} from ${dir}/`,
    "iseq ${platform} efi && goto efi || goto bios",
    ":efi",
    `chain ${dir}/mboot.efi -c ${cfg} || goto failed`,
    ":bios",
  );
  const noBios = biosUnbootable(image);
  if (noBios) lines.push(`echo netboot: ${sanitize(noBios)}`, "sleep 5", "exit 1");
  // --no-describe: no iBFT/ABFT tables for the OS (the installer must not take the "CD" for a SAN disk).
  else lines.push(`sanboot --no-describe ${dir}/01-\${mac:hexhyp}.iso || goto failed`);
  lines.push(
    ":failed",
    "echo netboot: the ESXi loader did not start; exiting to the firmware in 10 s",
    "sleep 10",
    "exit 1",
    "",
  );
  return lines.join("\n");
}

/** Keeps text that goes into an `echo` free of iPXE's settings syntax. */
function sanitize(s: string): string {
  return s.replace(/[${}\n\r]/g, " ");
}
