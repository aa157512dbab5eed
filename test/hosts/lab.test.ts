/**
 * The lab file and the kickstart templates: every mistake is one line naming lab.yaml:LINE:COL, the key and
 * what is wrong, exit code 2, nothing started; `netboot check` renders a clean file and exits 0.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_KICKSTART, networkLine, renderTemplate, templateVariables, TemplateError } from "../../src/boot/kickstart.ts";
import { serveOptionNames } from "../../src/cli/args.ts";
import { LabError, parseLabFile } from "../../src/hosts/lab.ts";
import { cli } from "../helpers/cli.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { tempDir } from "../helpers/tools.ts";

const dir = tempDir("lab-");
const ks = join(dir, "esxi.ks");
writeFileSync(ks, "rootpw {{rootpw}}\n{{network}}\n# {{hostname}} {{vlan}}\n");
const iso = makeEsxiIso();

const good = `server: { iface: eth1, dhcp: server }
images:
  esxi8: ${iso}
defaults: { image: esxi8, mode: once, kickstart: ${ks}, vars: { rootpw: secret, vlan: 1 } }
hosts:
  - mac: 52:54:00:00:00:01
    hostname: esx01
    ip: 10.77.0.11
    vars: { vlan: 12 }
  - mac: 52:54:00:00:00:02
    hostname: esx02
    mode: install
`;

const problemsOf = (text: string): string[] => {
  try {
    parseLabFile(text, "/x/lab.yaml", serveOptionNames, () => "rootpw {{rootpw}}\n{{network}}\n# {{hostname}} {{vlan}}\n");
    return [];
  } catch (err) {
    if (err instanceof LabError) return err.problems;
    throw err;
  }
};

describe("lab file mistakes: one line each, with file:line:col", () => {
  test("a clean file has none", () => {
    expect(problemsOf(good)).toEqual([]);
  });
  test.each<[string, string, RegExp]>([
    ["an unknown top-level key", good + "extras: 1\n", /^lab\.yaml:13:1: extras: unknown key \(known: server, images, defaults, hosts\)$/],
    ["an unknown host key", good.replace("    hostname: esx01", "    hostname: esx01\n    macc: x"), /^lab\.yaml:8:5: hosts\[0\]\.macc: unknown key \(known: mac, hostname, ip, image, mode, kickstart, vars, bmc, via, verify\)$/],
    ["an unknown server option", good.replace("dhcp: server", "dhcp: server, http_prot: 80"), /^lab\.yaml:1:38: server\.http_prot: unknown key \(known: allow_unlisted, cache-dir, allow, allow-any, iface/],
    ["a bad MAC", good.replace("52:54:00:00:00:02", "52:54:00:00:00:zz"), /^lab\.yaml:10:10: hosts\[1\]\.mac: "52:54:00:00:00:zz" is not a MAC address/],
    ["a duplicate MAC", good.replace("52:54:00:00:00:02", "52:54:00:00:00:01"), /^lab\.yaml:10:5: mac: 52:54:00:00:00:01 is already host lab\.yaml:6:5$/],
    ["a duplicate IP", good.replace("    mode: install", "    ip: 10.77.0.11"), /^lab\.yaml:10:5: ip: 10\.77\.0\.11 is already host lab\.yaml:6:5$/],
    ["a duplicate hostname", good.replace("hostname: esx02", "hostname: ESX01"), /^lab\.yaml:10:5: hostname: ESX01 is already host lab\.yaml:6:5$/],
    ["an image that is not defined", good.replace("    mode: install", "    image: esxi7"), /^lab\.yaml:12:12: hosts\[1\]\.image: no image named esxi7 under images:$/],
    ["a bad mode", good.replace("mode: install", "mode: sometimes"), /^lab\.yaml:12:11: hosts\[1\]\.mode: "sometimes" is not a mode: use once, install, local$/],
    ["a template variable no host defines", good.replace("vars: { rootpw: secret, vlan: 1 }", "vars: { rootpw: secret }"), /^lab\.yaml:10:5: hosts: esx02: the kickstart uses \{\{vlan\}\}, which neither this host nor defaults define \(vars:\)$/],
    ["a key given twice", good + "hosts: []\n", /^lab\.yaml:13:1: a key given twice$/],
    ["a BMC password written in the file", good.replace("    mode: install", "    bmc: { ipmi: 10.0.0.6, user: admin, password: hunter2 }"), /^lab\.yaml:12:51: hosts\[1\]\.bmc\.password: a password is \{ env: NAME \} or \{ file: PATH \}, never written in the lab file$/],
    ["a BMC of two kinds", good.replace("    mode: install", "    bmc: { ipmi: 10.0.0.6, wol: true }"), /^lab\.yaml:12:10: hosts\[1\]\.bmc: one of redfish:, ipmi: or wol:, not ipmi and wol$/],
    ["a Redfish URL with credentials in it", good.replace("    mode: install", "    bmc: { redfish: 'https://root:pw@10.0.0.5', user: a, password: { env: X } }"), /hosts\[1\]\.bmc\.redfish: .*no user, password or path/],
    ["virtual media through IPMI", good.replace("    mode: install", "    bmc: { ipmi: 10.0.0.6, user: admin, password: { env: X } }\n    via: virtual-media"), /^lab\.yaml:13:10: hosts\[1\]\.via: virtual-media needs a Redfish BMC \(IPMI can take pxe or http\)$/],
    ["a defaults.via a host's BMC cannot take", good.replace("defaults: { image: esxi8,", "defaults: { via: iso-url, image: esxi8,").replace("    mode: install", "    bmc: { wol: true }"), /^lab\.yaml:10:5: via: defaults\.via iso-url does not suit this host's Wake-on-LAN BMC: give it via: pxe or http$/],
    ["an unknown verify", good.replace("    mode: install", "    verify: ping"), /^lab\.yaml:12:13: hosts\[1\]\.verify: "ping": use https, firstboot, none$/],
    ["IPMI cipher suite 4", good.replace("    mode: install", "    bmc: { ipmi: 10.0.0.6, user: admin, password: { env: X }, cipher: 4 }"), /hosts\[1\]\.bmc\.cipher: 4: a cipher suite netboot speaks/],
    ["a built-in variable set by hand", good.replace("vars: { vlan: 12 }", "vars: { vlan: 12, ip: 1.2.3.4 }"), /^lab\.yaml:9:23: hosts\[0\]\.vars\.ip: ip is a built-in variable/],
  ])("%s", (_name, text, want) => {
    const p = problemsOf(text);
    expect(p.length).toBeGreaterThanOrEqual(1);
    expect(p.some((l) => want.test(l))).toBe(true);
  });

  test("BMCs parse with their defaults: Redfish goes by virtual media, IPMI and Wake-on-LAN by PXE", () => {
    const text = good.replace("    mode: install", "    bmc: { redfish: 'https://10.0.0.5:8443', user: admin, password: { env: RF_PW }, insecure: true }")
      .replace("    vars: { vlan: 12 }", "    vars: { vlan: 12 }\n    bmc: { ipmi: bmc-01.lab, user: admin, password: { file: ./ipmi.pw }, port: 6230 }\n    verify: firstboot");
    const lab = parseLabFile(text, "/x/lab.yaml", serveOptionNames, () => "rootpw {{rootpw}}\n{{network}}\n# {{hostname}} {{vlan}}\n");
    expect(lab.hosts[0]!.bmc).toEqual({ kind: "ipmi", host: "bmc-01.lab", port: 6230, user: "admin", password: { file: "/x/ipmi.pw" }, cipher: undefined });
    expect(lab.hosts[0]!.verify).toBe("firstboot");
    expect(lab.hosts[1]!.bmc).toEqual({ kind: "redfish", url: "https://10.0.0.5:8443", user: "admin", password: { env: "RF_PW" }, ca: undefined, insecure: true, system: undefined });
  });

  test("serve with a broken lab file: its lines on stderr, exit 2, nothing started", async () => {
    const f = join(tempDir(), "lab.yaml");
    writeFileSync(f, good.replace("52:54:00:00:00:02", "52:54:00:00:00:01") + "bogus: 1\n");
    const r = await cli(["serve", "--config", f, "--ip", "127.0.0.1", "--http-port", "0", "--dhcp", "off", "--state-dir", tempDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual(["lab.yaml:13:1: bogus: unknown key (known: server, images, defaults, hosts)", "lab.yaml:10:5: mac: 52:54:00:00:00:01 is already host lab.yaml:6:5"]);
    expect(r.stdout).not.toContain("ready:");
  });
});

describe("netboot check", () => {
  test("a clean lab file: every host's boot.cfg and kickstart, secrets hidden, exit 0", async () => {
    const f = join(tempDir(), "lab.yaml");
    writeFileSync(f, good.replace("rootpw: secret", "rootpw: { env: CHECK_ROOTPW }"));
    const r = await cli(["check", "--config", f], { env: { CHECK_ROOTPW: "hunter2-not-shown" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("# 52:54:00:00:00:01 esx01");
    expect(r.stdout).toMatch(/^kernelopt=runweasel ks=http:\/\/SERVER\/esxi8\/01-52-54-00-00-00-01\/ks\.cfg$/m);
    expect(r.stdout).toContain("rootpw ********");
    expect(r.stdout).toContain("network --bootproto=static --device=52:54:00:00:00:01 --ip=10.77.0.11");
    expect(r.stdout).toContain("# esx01 12");
    expect(r.stdout).not.toContain("hunter2");
    expect(r.stdout).toMatch(/2 host\(s\), 1 image\(s\): no problems/);
  });

  test("a missing secret is named with the host and the variable; exit 2", async () => {
    const f = join(tempDir(), "lab.yaml");
    writeFileSync(f, good.replace("rootpw: secret", "rootpw: { env: NOT_SET_ANYWHERE }"));
    const r = await cli(["check", "--config", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lab\.yaml:6:5: esx01: vars\.rootpw: the environment variable NOT_SET_ANYWHERE is not set/);
  });

  test("--print-default-ks prints the built-in template", async () => {
    const r = await cli(["check", "--print-default-ks"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(DEFAULT_KICKSTART);
  });
});

describe("kickstart templates", () => {
  test("{{name}} is replaced, and that is all", () => {
    expect(renderTemplate("a {{x}} b {{ y }}\n", { x: "1", y: "2" })).toBe("a 1 b 2\n");
    expect(templateVariables(DEFAULT_KICKSTART)).toEqual(["rootpw", "network", "done_url"]);
  });
  test("an undefined variable is an error naming it; a stray {{ too", () => {
    expect(() => renderTemplate("{{a}} {{b}}", { a: "1" })).toThrow(TemplateError);
    expect(() => renderTemplate("{{a}} {{b}}", { a: "1" })).toThrow(/\{\{b\}\}/);
    expect(() => templateVariables("x\n{{ not a name }}")).toThrow(/line 2/);
  });
  test("the network line: static with what is known, DHCP without an IP", () => {
    expect(networkLine({ mac: "52:54:00:00:00:01", hostname: "esx01", ip: "10.0.0.5", netmask: "255.255.255.0", gateway: "10.0.0.1", dns: ["10.0.0.53"] })).toBe(
      "network --bootproto=static --device=52:54:00:00:00:01 --ip=10.0.0.5 --netmask=255.255.255.0 --gateway=10.0.0.1 --nameserver=10.0.0.53 --hostname=esx01",
    );
    expect(networkLine({ mac: "52:54:00:00:00:01", hostname: undefined, ip: undefined, netmask: undefined, gateway: undefined, dns: [] })).toBe("network --bootproto=dhcp --device=52:54:00:00:00:01");
  });
});

test("--ks alone is refused at start: a kickstart wipes disks", async () => {
  const r = await cli(["serve", iso, "--ks", ks, "--ip", "127.0.0.1", "--http-port", "0", "--dhcp", "off", "--no-tftp", "--state-dir", tempDir()]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("a kickstart wipes disks: list the machines with --allow MAC,… or pass --allow-any");
});
