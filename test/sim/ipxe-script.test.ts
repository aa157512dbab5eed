/**
 * sim/ipxe-script.ts: the simulator's reading of an iPXE script (ipxe.org/scripting). First the script
 * netboot itself serves at /boot.ipxe (boot/ipxe.ts ipxeScript, pure), for UEFI, BIOS, a refused and a
 * local-boot client; then hand-written scripts in the shapes iPXE users write: iseq on ${mac} with && and
 * ||, set and ${var}, chain --autofree, sanboot --no-describe, exit, prompt, a missing label and a goto
 * loop (which must end, as an error, not hang).
 */
import { describe, expect, test } from "bun:test";
import type { BootImage } from "../../src/boot/image.ts";
import { ipxeScript } from "../../src/boot/ipxe.ts";
import { runIpxeScript } from "../../src/sim/ipxe-script.ts";

const MAC = "52:54:00:12:34:56";
const HEXHYP = "52-54-00-12-34-56";
const BASE = "http://10.77.0.1:8080";

/** The settings iPXE has after its DHCP, as `netboot simulate` hands them in. */
const settings = (platform: "efi" | "pcbios", over: Record<string, string> = {}) => ({
  mac: MAC,
  "mac:hexhyp": HEXHYP,
  ip: "10.77.0.50",
  "next-server": "10.77.0.1",
  filename: `${BASE}/boot.ipxe`,
  platform,
  buildarch: platform === "efi" ? "x86_64" : "i386",
  ...over,
});

/** Only what ipxeScript reads of an image: its name, ESXi's display name and BOOT.CFG, the disc. */
function image(opts: { bios?: boolean; disc?: boolean; bootable?: boolean } = {}): BootImage {
  const { bios = true, disc = true, bootable = true } = opts;
  return {
    name: "esxi8",
    tree: { disc: disc ? { bootable } : undefined },
    esxi: { biosCfg: bios ? { lines: [] } : undefined, displayName: "ESXi 8.0U2" },
    mtime: undefined,
  } as unknown as BootImage;
}

describe("the script netboot serves", () => {
  test("UEFI: chains ESXi's mboot.efi with -c and this MAC's boot.cfg URL", () => {
    const script = ipxeScript({ image: image(), httpBase: BASE, mac: undefined });
    const run = runIpxeScript(script, settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "chain", url: `${BASE}/esxi8/mboot.efi`, args: ["-c", `${BASE}/esxi8/01-${HEXHYP}/boot.cfg`] });
    // The echo has the settings filled in, as iPXE prints it.
    expect(run.echoed).toHaveLength(1);
    expect(run.echoed[0]).toContain(MAC);
    expect(run.echoed[0]).toContain("(efi)");
    expect(run.echoed[0]).not.toContain("${");
  });

  test("BIOS: sanboots this MAC's rewritten ISO over HTTP", () => {
    const script = ipxeScript({ image: image(), httpBase: BASE, mac: MAC });
    const run = runIpxeScript(script, settings("pcbios"));
    expect(run.outcome.kind).toBe("sanboot");
    if (run.outcome.kind !== "sanboot") return;
    expect(run.outcome.url).toBe(`${BASE}/esxi8/01-${HEXHYP}.iso`);
    expect(run.outcome.line).toContain("--no-describe");
    expect(run.echoed[0]).toContain("(pcbios)");
  });

  test("BIOS with an image BIOS cannot boot: says why and exits 1", () => {
    const script = ipxeScript({ image: image({ disc: false }), httpBase: BASE, mac: MAC });
    const run = runIpxeScript(script, settings("pcbios"));
    expect(run.outcome).toMatchObject({ kind: "exit", code: 1 });
    expect(run.echoed.at(-1)).toContain("is a directory");
    // UEFI is unaffected by the BIOS problem.
    expect(runIpxeScript(script, settings("efi")).outcome.kind).toBe("chain");
  });

  test("a refused client: told why, exits 1 to the firmware, and the reason cannot inject settings", () => {
    const script = ipxeScript({ image: image(), httpBase: BASE, mac: MAC, refused: "not listed ${ip}" });
    const run = runIpxeScript(script, settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "exit", code: 1 });
    expect(run.echoed).toHaveLength(1);
    expect(run.echoed[0]).toContain("not booting");
    expect(run.echoed[0]).not.toContain("10.77.0.50"); // ${ip} in the reason was neutralised
  });

  test("a local-boot client: exit 0, so the firmware boots its disk", () => {
    const script = ipxeScript({ image: image(), httpBase: BASE, mac: MAC, local: "mode local: boots from its own disk" });
    const run = runIpxeScript(script, settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "exit", code: 0 });
    expect(run.echoed[0]).toContain("local disk");
  });
});

describe("hand-written scripts", () => {
  const byMac = `#!ipxe
# per-machine branches
dhcp
iseq \${mac} ${MAC} && goto esx01 || goto other
:esx01
echo this is esx01
chain --autofree http://10.77.0.1/esx01/mboot.efi -c http://10.77.0.1/esx01/boot.cfg
:other
echo unknown machine \${mac}
exit 1
`;

  test("iseq ${mac} … && goto x || goto y: the matching MAC takes the first branch", () => {
    const run = runIpxeScript(byMac, settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/esx01/mboot.efi", args: ["-c", "http://10.77.0.1/esx01/boot.cfg"] });
    expect(run.echoed).toEqual(["this is esx01"]);
  });

  test("…and any other MAC the second", () => {
    const run = runIpxeScript(byMac, settings("efi", { mac: "52:54:00:ab:cd:ef" }));
    expect(run.outcome).toMatchObject({ kind: "exit", code: 1 });
    expect(run.echoed).toEqual(["unknown machine 52:54:00:ab:cd:ef"]);
  });

  test("chain --autofree / --replace are options, not the image; the rest are the image's arguments", () => {
    const run = runIpxeScript("#!ipxe\nchain --autofree --replace http://10.77.0.1/menu.ipxe\n", settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/menu.ipxe", args: [] });
    const kernel = runIpxeScript("#!ipxe\nkernel http://10.77.0.1/vmlinuz initrd=initrd.img console=ttyS0\nboot\n", settings("efi"));
    expect(kernel.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/vmlinuz", args: ["initrd=initrd.img", "console=ttyS0"] });
  });

  test("set and ${var}: later lines see the value, including ${net0/...} names", () => {
    const script = `#!ipxe
set base http://\${next-server}/esxi8
set cfg \${base}/01-\${net0/mac:hexhyp}/boot.cfg
echo booting from \${base}
chain \${base}/mboot.efi -c \${cfg}
`;
    const run = runIpxeScript(script, settings("efi"));
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/esxi8/mboot.efi", args: ["-c", `http://10.77.0.1/esxi8/01-${HEXHYP}/boot.cfg`] });
    expect(run.echoed).toEqual(["booting from http://10.77.0.1/esxi8"]);
  });

  test("sanboot --no-describe http://…: a disc; options before the URL are skipped", () => {
    const run = runIpxeScript("#!ipxe\nsanboot --no-describe --keep http://10.77.0.1/esxi8.iso || goto failed\n:failed\nexit 1\n", settings("pcbios"));
    expect(run.outcome).toMatchObject({ kind: "sanboot", url: "http://10.77.0.1/esxi8.iso" });
  });

  test("exit with and without a status", () => {
    expect(runIpxeScript("#!ipxe\nexit\n", {}).outcome).toMatchObject({ kind: "exit", code: 0 });
    expect(runIpxeScript("#!ipxe\nexit 1\n", {}).outcome).toMatchObject({ kind: "exit", code: 1 });
    // The first exit ends the script: what follows never runs.
    const run = runIpxeScript("#!ipxe\necho before\nexit 0\necho after\nchain http://x/y\n", {});
    expect(run.outcome).toMatchObject({ kind: "exit", code: 0 });
    expect(run.echoed).toEqual(["before"]);
  });

  test("isset and ||: a missing setting takes the fallback", () => {
    const script = `#!ipxe
isset \${proxydhcp/next-server} && goto proxy || goto direct
:proxy
exit 3
:direct
exit 4
`;
    expect(runIpxeScript(script, settings("efi")).outcome).toMatchObject({ kind: "exit", code: 4 });
    expect(runIpxeScript(script, settings("efi", { "proxydhcp/next-server": "10.77.0.1" })).outcome).toMatchObject({ kind: "exit", code: 3 });
  });

  test("a chain's left-to-right rule: after a failed test, && is skipped and the || runs", () => {
    const script = "#!ipxe\niseq a b && echo yes && exit 1 || echo no\nexit 2\n";
    const run = runIpxeScript(script, {});
    expect(run.echoed).toEqual(["no"]);
    expect(run.outcome).toMatchObject({ kind: "exit", code: 2 });
  });

  test("prompt times out with nobody at the keyboard: the menu's default branch", () => {
    const script = `#!ipxe
prompt --key 0x02 --timeout 2000 Press Ctrl-B for the iPXE shell... && goto shell || goto boot
:shell
shell
:boot
chain http://10.77.0.1/boot.ipxe
`;
    expect(runIpxeScript(script, {}).outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/boot.ipxe" });
    // Reaching `shell` is being stuck, for a simulator.
    expect(runIpxeScript("#!ipxe\nshell\n", {}).outcome.kind).toBe("stuck");
  });

  test("ipxe.org/scripting's retry loop: dhcp && isset ${filename} || goto retry_dhcp", () => {
    const script = "#!ipxe\n:retry_dhcp\ndhcp && isset ${filename} || goto retry_dhcp\necho Booting from ${filename}\nchain ${filename}\n";
    const run = runIpxeScript(script, { filename: "http://10.77.0.1/boot.ipxe" });
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/boot.ipxe" });
    expect(run.echoed).toEqual(["Booting from http://10.77.0.1/boot.ipxe"]);
    // Never a filename: iPXE would retry forever; the simulator gives up instead of hanging.
    expect(runIpxeScript(script, {}).outcome.kind).toBe("stuck");
  });

  test("CRLF line endings and indentation are read like iPXE reads them", () => {
    const run = runIpxeScript("#!ipxe\r\n  goto go\r\n:go\r\n  echo hi\r\n  exit 5\r\n", {});
    expect(run.outcome).toMatchObject({ kind: "exit", code: 5 });
    expect(run.echoed).toEqual(["hi"]);
  });
});

// Against iPXE's documented syntax (ipxe.org/cmd/chain, /cmd/boot).
describe("documented forms", () => {
  test("chain --name <name> --timeout <ms> <uri>: the options' values are not the image", () => {
    // The documented form puts a space between option and value; only --name=… / --timeout=… are skipped,
    // so the URL comes out as "--name".
    const run = runIpxeScript("#!ipxe\nchain --name esx --timeout 5000 http://10.77.0.1/esxi8/mboot.efi -c http://10.77.0.1/esxi8/boot.cfg\n", {});
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/esxi8/mboot.efi", args: ["-c", "http://10.77.0.1/esxi8/boot.cfg"] });
  });

  test("boot <uri> is chain's documented alias", () => {
    const run = runIpxeScript("#!ipxe\nboot http://10.77.0.1/esxi8/mboot.efi\n", {});
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/esxi8/mboot.efi" });
  });

  test("comment and blank lines do not count against the goto-loop step limit", () => {
    // A long, loop-free script (a menu with many comments) is reported as "more than 500 steps (a goto loop?)".
    const run = runIpxeScript("#!ipxe\n" + "# a comment\n\n".repeat(300) + "chain http://10.77.0.1/boot.ipxe\n", {});
    expect(run.outcome).toMatchObject({ kind: "chain", url: "http://10.77.0.1/boot.ipxe" });
  });
});

describe("errors", () => {
  test("goto a label that does not exist: stuck, naming the label; echoes before it are kept", () => {
    const run = runIpxeScript("#!ipxe\necho start\ngoto nowhere\n:somewhere\nexit\n", {});
    expect(run.outcome.kind).toBe("stuck");
    if (run.outcome.kind === "stuck") expect(run.outcome.why).toContain("nowhere");
    expect(run.echoed).toEqual(["start"]);
  });

  test("an endless goto loop ends as an error, quickly", () => {
    const t0 = performance.now();
    const run = runIpxeScript("#!ipxe\n:retry\necho trying\nsleep 1\ngoto retry\n", {});
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(run.outcome.kind).toBe("stuck");
    if (run.outcome.kind === "stuck") expect(run.outcome.why).toMatch(/loop|steps/);
    expect(run.echoed.length).toBeGreaterThan(1);
    expect(run.echoed.every((e) => e === "trying")).toBe(true);
  });

  test("a two-label ping-pong loop ends as well", () => {
    const run = runIpxeScript("#!ipxe\n:a\ngoto b\n:b\ngoto a\n", {});
    expect(run.outcome.kind).toBe("stuck");
  });

  test("a script that ends without booting anything is stuck, and says so", () => {
    const run = runIpxeScript("#!ipxe\necho nothing to do\n", {});
    expect(run.outcome.kind).toBe("stuck");
    if (run.outcome.kind === "stuck") expect(run.outcome.why).toContain("ends without booting");
  });

  test("not an iPXE script (no #!ipxe first line): stuck, nothing run", () => {
    const run = runIpxeScript("echo hello\nchain http://10.77.0.1/x\n", {});
    expect(run.outcome.kind).toBe("stuck");
    expect(run.echoed).toEqual([]);
    // An HTML error page served instead of the script, as a misconfigured web server does.
    expect(runIpxeScript("<html><body>404 Not Found</body></html>", {}).outcome.kind).toBe("stuck");
  });

  test("chain and sanboot with no image are stuck, not a boot", () => {
    expect(runIpxeScript("#!ipxe\nchain --autofree\n", {}).outcome.kind).toBe("stuck");
    expect(runIpxeScript("#!ipxe\nsanboot --no-describe\n", {}).outcome.kind).toBe("stuck");
    // An unset setting as the whole URL expands to nothing: no image either.
    expect(runIpxeScript("#!ipxe\nchain ${filename}\n", {}).outcome.kind).toBe("stuck");
  });
});
