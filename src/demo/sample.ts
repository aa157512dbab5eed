/** The built-in sample image and kickstart used by `netboot demo` (embedded in the compiled binary). */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import samplePath from "../../scripts/sample-esxi.iso" with { type: "file" };

/**
 * The sample's bytes. Bun gives a path ("/$bunfs/…" inside a compiled binary, where only whole-file
 * reads work, not descriptors), the Node bundle a path relative to the bundle itself.
 */
export async function readSampleIso(): Promise<Uint8Array> {
  const p = samplePath.startsWith(".") ? fileURLToPath(new URL(samplePath, import.meta.url)) : samplePath;
  return new Uint8Array(await readFile(p));
}

/** A kickstart in the shape of the seed recipe's sample-ks.cfg, for the demo. */
export const sampleKickstart = `vmaccepteula
install --firstdisk --overwritevmfs
rootpw VMware1!
network --bootproto=dhcp --device=vmnic0
reboot
`;
