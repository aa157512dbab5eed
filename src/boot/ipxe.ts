/**
 * The iPXE script at /boot.ipxe. iPXE asks for it instead of a firmware file (policy row "iPXE"), which is
 * what breaks the DHCP → iPXE → DHCP → iPXE chain-load loop. The script chain-loads ESXi's own loader with
 * `-c <per-MAC boot.cfg URL>` (mboot.efi / mboot.c32 option "-c": vmware/esx-boot mboot/mboot.c; a value
 * with "://" is absolute, so it wins over mboot's own lookup). iPXE fills in ${mac:hexhyp} and picks the
 * loader by ${platform}, so the script is right even for a client the server could not put a MAC to; when
 * the MAC is known the script is made for it (and says so), and a client the policy refuses gets a script
 * that tells it why and exits back to the firmware.
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
  const dir = `${httpBase}/${image.name}`;
  const cfg = `${dir}/01-\${mac:hexhyp}/boot.cfg`;
  lines.push(
    `echo netboot: ${who} (\${platform}) boots ${sanitize(name)} from ${dir}/`,
    "iseq ${platform} efi && goto efi || goto bios",
    ":efi",
    `chain ${dir}/mboot.efi -c ${cfg} || goto failed`,
    ":bios",
    // COM32 under iPXE: mboot.c32 reads the same per-MAC boot.cfg (see README: BIOS route).
    `chain ${dir}/mboot.c32 -c ${cfg} || goto failed`,
    ":failed",
    "echo netboot: the ESXi loader did not start; retrying in 10 s",
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
