/** The built-in sample image and kickstart used by `netboot demo` (embedded in the compiled binary). */
import samplePath from "../../scripts/sample-esxi.iso" with { type: "file" };

export const sampleIsoPath: string = samplePath;

/** A kickstart in the shape of the seed recipe's sample-ks.cfg, for the demo. */
export const sampleKickstart = `vmaccepteula
install --firstdisk --overwritevmfs
rootpw VMware1!
network --bootproto=dhcp --device=vmnic0
reboot
`;
