/**
 * Root is dropped once the sockets are bound: the account chosen (sudo's user, --user, nobody), every
 * thread's ids in /proc afterwards, and the servers and state files still working as that account.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { resolveIdentity } from "../../src/os/privilege.ts";
import { bun, cli, repo } from "../helpers/cli.ts";
import { udhcpc } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, sha256, tempDir } from "../helpers/tools.ts";

const passwd = ["root:x:0:0:root:/root:/bin/bash", "alice:x:1000:1000::/home/alice:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin", "mac-nobody:*:-2:-2:Unprivileged User:/var/empty:/usr/bin/false"].join("\n");
const group = ["root:x:0:", "staff:x:50:alice", "nogroup:x:65534:"].join("\n");

describe("which account", () => {
  test("sudo's user by default, then nobody; names, numbers, USER:GROUP; root keeps root", () => {
    expect(resolveIdentity(undefined, { SUDO_UID: "1000", SUDO_GID: "1000", SUDO_USER: "alice" }, passwd, group)).toEqual({ name: "alice", uid: 1000, gid: 1000 });
    expect(resolveIdentity(undefined, { SUDO_UID: "1234" }, passwd, group)).toEqual({ name: "uid 1234", uid: 1234, gid: 1234 });
    // sudo run by root itself: there is no one to go back to.
    expect(resolveIdentity(undefined, { SUDO_UID: "0", SUDO_GID: "0" }, passwd, group)).toEqual({ name: "nobody", uid: 65534, gid: 65534 });
    expect(resolveIdentity(undefined, {}, passwd, group)).toEqual({ name: "nobody", uid: 65534, gid: 65534 });
    expect(resolveIdentity("alice:staff", {}, passwd, group)).toEqual({ name: "alice", uid: 1000, gid: 50 });
    expect(resolveIdentity("1000:7", {}, passwd, group)).toEqual({ name: "alice", uid: 1000, gid: 7 });
    expect(resolveIdentity("mac-nobody", {}, passwd, group)).toEqual({ name: "mac-nobody", uid: 4294967294, gid: 4294967294 });
    expect(resolveIdentity("root", { SUDO_UID: "1000" }, passwd, group)).toBeUndefined();
    expect(() => resolveIdentity("bob", {}, passwd, group)).toThrow("--user bob: no such user in /etc/passwd");
    expect(() => resolveIdentity("alice:wheel", {}, passwd, group)).toThrow("no such group");
    expect(() => resolveIdentity("4321", {}, passwd, group)).toThrow("give it as --user 4321:GID");
  });
});

const rootOnly = process.getuid?.() === 0 ? describe : describe.skip;

rootOnly("root dropped in a namespace: DHCP, TFTP, HTTP and state as another account", () => {
  const NET = 224;
  const SRV = `10.${NET}.0.1`;
  const MAC = "52:54:00:00:24:05";
  let lan: Lan;
  const home = tempDir("priv-");
  chmodSync(home, 0o755);
  const iso = join(home, "esxi.iso");
  const state = join(home, "state");
  beforeAll(() => {
    requireRoot();
    for (const t of ["ip", "busybox", "tftp", "curl"]) requireTool(t);
    copyFileSync(makeEsxiIso(), iso);
    chmodSync(iso, 0o644);
    lan = createLan(NET, [{ name: "srv" }, { name: "pc", ip: null, mac: MAC }]);
  });
  afterAll(() => lan?.destroy());

  test("through sudo: every thread runs as SUDO_UID/SUDO_GID, and the servers still answer", async () => {
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "server", "--force", "--state-dir", state, "--allow", MAC], {
        ns: lan.nodes.srv!.ns,
        env: { SUDO_UID: "1234", SUDO_GID: "1235", SUDO_USER: "" },
      });
      expect(srv.log()).toContain("running as uid 1234, gid 1235 (root dropped;");
      const pid = srv.proc.pid;
      const ids = (f: string) => {
        const s = readFileSync(f, "utf8");
        return { uid: /^Uid:\s+(.*)$/m.exec(s)![1]!.split(/\s+/), gid: /^Gid:\s+(.*)$/m.exec(s)![1]!.split(/\s+/), groups: /^Groups:\s*(.*)$/m.exec(s)![1]!.trim() };
      };
      // Real, effective, saved and filesystem ids, in every thread (the TFTP and recvif workers too).
      const tasks = readdirSync(`/proc/${pid}/task`);
      expect(tasks.length).toBeGreaterThan(1);
      for (const t of tasks) expect(ids(`/proc/${pid}/task/${t}/status`)).toEqual({ uid: ["1234", "1234", "1234", "1234"], gid: ["1235", "1235", "1235", "1235"], groups: "1235" });

      // DHCP: a lease, written to the journal by the new owner.
      const lease = await udhcpc(lan, "pc", ["-V", "PXEClient:Arch:00007:UNDI:003000"]);
      expect(lease.ip).toMatch(/^10\.224\.0\./);
      expect(lease.boot_file ?? lease.bootfile ?? "").toBe("ipxe/snponly.efi");
      const journal = join(state, "leases.journal");
      expect(statSync(journal).uid).toBe(1234);
      expect(readFileSync(journal, "utf8")).toContain(MAC);
      lan.exec("pc", ["ip", "addr", "add", `${lease.ip}/24`, "dev", "lan0"]);

      // TFTP (tftp-hpa, binary mode) and HTTP (curl) from the client.
      const got = join(home, "snponly.efi");
      const t = lan.exec("pc", ["tftp", "-m", "binary", SRV, "-c", "get", "ipxe/snponly.efi", got]);
      expect(t.code).toBe(0);
      expect(sha256(readFileSync(got))).toBe(sha256(readFileSync("/usr/lib/ipxe/snponly.efi")));
      const h = lan.exec("pc", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", `http://${SRV}/esxi/01-${MAC.replaceAll(":", "-")}/boot.cfg`]);
      expect(h.out).toMatch(/^200 [1-9]\d*$/);
      // The host's phases reached the host store's journal, written after the drop; and its snapshot.
      await new Promise((r) => setTimeout(r, 500));
      const journal2 = join(state, "hosts.journal");
      expect(statSync(journal2).uid).toBe(1234);
      expect(readFileSync(journal2, "utf8")).toMatch(new RegExp(`"mac":"${MAC}","op":"mark","phase":"bootcfg"`));
      expect(statSync(join(state, "hosts.json")).uid).toBe(1234);
      expect(await srv.stop()).toBe(0);
      srv = undefined;
    } finally {
      await srv?.stop();
    }
  }, 60_000);

  test("a --state-dir under a directory nobody cannot enter: one line before anything is served, naming it and the two ways out", async () => {
    const closed = tempDir("priv-closed-state-");
    chmodSync(closed, 0o700); // root's alone, as /root/lab is
    const state2 = join(closed, "state");
    const ns = lan.nodes.srv!.ns;
    const r = await cli(["serve", iso, "--iface", "lan0", "--dhcp", "server", "--force", "--state-dir", state2, "--http-port", "8083", "--tftp-port", "6972"], {
      cmd: ["ip", "netns", "exec", ns, bun, join(repo, "src", "main.ts")],
      env: { SUDO_UID: "" },
      timeoutMs: 20_000,
    });
    expect(r.code).toBe(2);
    const out = r.stderr + r.stdout;
    expect(out).toContain(`--state-dir ${state2}: nobody cannot enter and write it (permission denied: ${closed} is closed to that user): give a --state-dir that nobody can enter, or --user root`);
    expect(out).not.toMatch(/\n\s+at /); // no stack trace
    expect(out).not.toContain("ready:");
    // Nothing was made there as root either: said before the state directory was created.
    expect(existsSync(state2)).toBe(false);
  }, 30_000);

  test("nothing is answered as root: while --dhcp auto looks for other DHCP servers, no server port is even open", async () => {
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "auto", "--state-dir", join(home, "state-auto"), "--http-port", "8084", "--tftp-port", "6973"], { ns: lan.nodes.srv!.ns, ready: /looking for other DHCP servers/ });
      const during = lan.exec("pc", ["curl", "-sS", "-o", "/dev/null", "--max-time", "2", `http://${SRV}:8084/esxi/boot.cfg`]);
      expect(during.code).toBe(7); // connection refused: not bound yet
      await srv.waitLog(/ready:/, 20_000);
      expect(srv.log()).toMatch(/running as nobody .*\n(.|\n)*HTTP on /);
      expect(readFileSync(`/proc/${srv.proc.pid}/status`, "utf8")).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      const after = lan.exec("pc", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", `http://${SRV}:8084/esxi/boot.cfg`]);
      expect(after.out).toBe("200");
    } finally {
      await srv?.stop();
    }
  }, 40_000);

  test("as nobody, an image in a closed directory stops the start with one line; --user root keeps root", async () => {
    const closed = tempDir("priv-closed-");
    chmodSync(closed, 0o700); // root's alone, as /root is
    copyFileSync(iso, join(closed, "esxi.iso"));
    const ns = lan.nodes.srv!.ns;
    const r = await cli(["serve", join(closed, "esxi.iso"), "--iface", "lan0", "--dhcp", "off", "--state-dir", join(home, "state-nobody"), "--http-port", "8081", "--tftp-port", "6970"], {
      cmd: ["ip", "netns", "exec", ns, bun, join(repo, "src", "main.ts")],
      env: { SUDO_UID: "" },
      timeoutMs: 20_000,
    });
    expect(r.code).toBe(2); // a setting to change, as for every ConfigError
    expect(r.stderr + r.stdout).toContain(`is not readable as nobody (EACCES`);
    expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /); // no stack trace
    let srv: Served | undefined;
    try {
      srv = await serve([join(closed, "esxi.iso"), "--iface", "lan0", "--dhcp", "off", "--state-dir", join(home, "state-root"), "--http-port", "8082", "--tftp-port", "6971", "--user", "root"], { ns });
      expect(srv.log()).toContain("--user root: keeping root, as asked");
      expect(readFileSync(`/proc/${srv.proc.pid}/status`, "utf8")).toMatch(/^Uid:\s+0\s+0\s+0\s+0$/m);
    } finally {
      await srv?.stop();
    }
  }, 60_000);
});
