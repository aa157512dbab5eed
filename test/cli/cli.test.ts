import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { sampleIso } from "../helpers/app.ts";
import { bun, cli, freePort, repo, waitFor } from "../helpers/cli.ts";
import { requireTool, sha256, tempDir, xorrisoListing } from "../helpers/tools.ts";

requireTool("xorriso");

describe("help and version", () => {
  test("--version prints the package version", async () => {
    const r = await cli(["--version"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`netboot ${pkg.version}`);
    // Then the commit, the runtime and what is embedded (from source: nothing but the sample and the page).
    expect(lines[1]).toMatch(/^commit: [0-9a-f]{12}(\+dirty)?$/);
    expect(lines[2]).toMatch(/^runtime: Bun \d+\.\d+\.\d+ on \w+-\w+ \(source tree\)$/);
    expect(lines[3]).toMatch(/^iPXE: not embedded; at run time from /);
    expect(lines[4]).toMatch(/^embedded: sample image \d+ KB \(netboot demo\), status page \d+ KB$/);
  });

  test("--help lists every command; each command has its own --help", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["serve", "demo", "ls", "cat", "bootcfg", "check", "hosts"]) expect(r.stdout).toContain(c);
    const expectations: Record<string, string[]> = {
      serve: ["--config", "--allow", "--allow-any", "--json", "--until-done", "--timeout", "--secure-boot", "--ip", "--bind", "--http-port", "--name", "--ks", "--keep-cdromboot", "--kernelopt", "--no-tftp", "--tftp-port", "--tftp-max-blksize", "--tftp-max-windowsize", "--cache-mem", "--iface", "--dhcp", "--pool", "--router", "--dns", "--domain", "--lease-time", "--reserve", "--force", "--state-dir", "--no-ipxe", "--ipxe-dir", "--no-bsdp", "--bsdp-priority", "--mac-bootfile"],
      demo: ["--http-port", "--mac", "--serve", "--route"],
      ls: ["SOURCE", "--recursive"],
      cat: ["SOURCE", "PATH"],
      bootcfg: ["--server", "--mac", "--ks", "--bios", "--route"],
      check: ["--config", "--print-default-ks"],
    };
    for (const [cmd, flags] of Object.entries(expectations)) {
      const h = await cli([cmd, "--help"]);
      expect({ cmd, code: h.code }).toEqual({ cmd, code: 0 });
      for (const f of flags) expect({ cmd, has: h.stdout.includes(f) ? f : undefined }).toEqual({ cmd, has: f });
    }
  });
});

describe("ls, cat, bootcfg", () => {
  const want = xorrisoListing(sampleIso);

  test("ls -R lists what xorriso extracts", async () => {
    const r = await cli(["ls", sampleIso, "/", "-R"]);
    expect(r.code).toBe(0);
    const listed = r.stdout
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/));
    const paths = listed.map((p) => p[2]!.replace(/\/$/, ""));
    const names = new Set(paths.map((p) => (p.startsWith("/") ? p : `/${p}`)));
    for (const [p, e] of want) {
      expect(names.has(p)).toBe(true);
      const row = listed.find((x) => x[2]!.replace(/\/$/, "") === p || `/${x[2]!.replace(/\/$/, "")}` === p)!;
      expect(row[1]).toBe(e.type === "dir" ? "-" : String(e.size));
    }
  });

  test("ls of a directory, any case", async () => {
    const r = await cli(["ls", sampleIso, "efi/boot"]);
    expect(r.stdout).toContain("BOOTX64.EFI");
    expect(r.stdout).toContain("BOOT.CFG");
  });

  test("cat writes the file as stored, byte-exact", async () => {
    for (const p of ["boot.cfg", "/B.B00", "efi/boot/bootx64.efi;1"]) {
      const proc = Bun.spawn([bun, join(repo, "src/main.ts"), "cat", sampleIso, p], { stdout: "pipe" });
      const out = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
      expect(await proc.exited).toBe(0);
      const key = [...want.keys()].find((k) => k.toLowerCase() === ("/" + p.replace(/^\//, "").replace(/;1$/, "")).toLowerCase())!;
      expect(sha256(out)).toBe(want.get(key)!.sha256!);
    }
  });

  test("bootcfg prints the rewritten boot.cfg", async () => {
    const r = await cli(["bootcfg", sampleIso, "--server", "http://10.0.0.1:8080", "--mac", "AA-BB-CC-DD-EE-FF", "--ks", "http://10.0.0.1:8080/ks/{mac}.cfg", "--name", "esxi"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("prefix=http://10.0.0.1:8080/esxi/\n");
    expect(r.stdout).toContain("kernelopt=runweasel ks=http://10.0.0.1:8080/ks/01-aa-bb-cc-dd-ee-ff.cfg\n");
    expect(r.stdout).toMatch(/modules=jumpstrt\.gz --- useropts\.gz/);
  });
});

describe("errors: one clear line and a non-zero exit", () => {
  test("missing source", async () => {
    const r = await cli(["ls", "/nonexistent/esxi.iso"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/nonexistent/esxi.iso: no such file or directory");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test("not an ISO", async () => {
    const r = await cli(["ls", join(repo, "package.json")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("not an ISO 9660 image");
  });

  test("bad arguments exit 2", async () => {
    for (const args of [
      ["serve", sampleIso, "--ip", "10.0.0.300"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", "http"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--name", "../x"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--tftp-max-blksize", "70000"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--tftp-port", "99999"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--dhcp", "sometimes"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--pool", "10.0.0.9-10.0.0.1"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--reserve", "nonsense"],
      ["serve", sampleIso, "--iface", "no-such-interface0"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--bsdp-priority", "70000"],
      ["serve", sampleIso, "--ip", "127.0.0.1", "--mac-bootfile", "../etc/passwd"],
      ["bootcfg", sampleIso, "--server", "ftp://x"],
      ["bootcfg", sampleIso, "--server", "http://x", "--mac", "zz"],
    ]) {
      const r = await cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr.trim().split("\n").filter((l) => l.trim()).length).toBeLessThanOrEqual(2);
    }
  });

  test("an unknown command or option: one line, exit 2, nothing started", async () => {
    // citty ignores options it does not know: `--dchp off` would have started a DHCP server on the link.
    const cases: Array<[string[], string]> = [
      [["bogus"], 'netboot: unknown command "bogus" (commands: serve, demo, ls, cat, bootcfg, check, hosts, power, reinstall, simulate, doctor; netboot --help)'],
      [["serve", sampleIso, "--ip", "127.0.0.1", "--dchp", "off"], "netboot serve: unknown option --dchp (did you mean --dhcp?); netboot serve --help lists them"],
      [["serve", sampleIso, "--ip", "127.0.0.1", "--secureboot"], "netboot serve: unknown option --secureboot (did you mean --secure-boot?); netboot serve --help lists them"],
      [["serve", sampleIso, "--ip=127.0.0.1", "--no-tftpp"], "netboot serve: unknown option --no-tftpp (did you mean --no-tftp?); netboot serve --help lists them"],
      [["ls", sampleIso, "-x"], "netboot ls: unknown option -x; netboot ls --help lists them"],
      [["hosts", "lst"], 'netboot hosts: unknown command "lst" (commands: list, log, rearm; netboot hosts --help)'],
      [["hosts", "rearm", "52:54:00:00:00:01", "--state", "/tmp"], "netboot hosts rearm: unknown option --state (did you mean --state-dir?); netboot hosts rearm --help lists them"],
    ];
    for (const [args, line] of cases) {
      const r = await cli(args);
      expect({ args, code: r.code, stderr: r.stderr.trim(), stdout: r.stdout }).toEqual({ args, code: 2, stderr: line, stdout: "" });
    }
    // What citty refuses after a page of usage: one line instead.
    const missing: Array<[string[], string]> = [
      [["ls"], "netboot ls: SOURCE is missing ("],
      [["cat", sampleIso], "netboot cat: PATH is missing ("],
      [["bootcfg", sampleIso], "netboot bootcfg: --server is required ("],
      [["hosts", "rearm"], "netboot hosts rearm: MAC is missing ("],
    ];
    for (const [args, start] of missing) {
      const r = await cli(args);
      expect({ args, code: r.code, lines: r.stderr.trim().split("\n").length, start: r.stderr.startsWith(start) }).toEqual({ args, code: 2, lines: 1, start: true });
    }
    // Mistakes citty would take silently, or read as something else.
    const taken: Array<[string[], string]> = [
      [["serve", sampleIso, "--no-dhcp"], "netboot serve: --no-dhcp is not an option: --dhcp takes a value; netboot serve --help"],
      [["serve", sampleIso, "--no-tftp=1"], "netboot serve: --no-tftp takes no value (write --no-tftp, or --tftp=false); netboot serve --help"],
      [["serve", sampleIso, "--iface", "--dhcp", "server"], "netboot serve: --iface needs a value, and the next word is the option --dhcp (a value that starts with - is written --iface=--dhcp); netboot serve --help"],
      [["serve", sampleIso, "--iface"], "netboot serve: --iface needs a value; netboot serve --help"],
      [["-v", "serve", sampleIso], "netboot: -v goes after the command (netboot serve -v …)"],
      [["cat", sampleIso, "--cache-dir", "-1"], "netboot cat: PATH is missing ("],
    ];
    for (const [args, start] of taken) {
      const r = await cli(args);
      expect({ args, code: r.code, lines: r.stderr.trim().split("\n").length, start: r.stderr.startsWith(start) }).toEqual({ args, code: 2, lines: 1, start: true });
    }
    // What is defined still parses: aliases, --no-x, --name=value, a value that looks like a negative number.
    const ok = await cli(["ls", sampleIso, "-R"]);
    expect(ok.code).toBe(0);
    // A value that starts with - (citty takes the next word whatever it is): bootcfg puts it into kernelopt.
    const dash = await cli(["bootcfg", sampleIso, "--server", "http://10.0.0.1", "--kernelopt", "-s"]);
    expect({ code: dash.code, kernelopt: /^kernelopt=.*-s$/m.test(dash.stdout) }).toEqual({ code: 0, kernelopt: true });
    const neg = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--cache-mem=-5", "--no-tftp", "-q"]);
    expect({ code: neg.code, stderr: neg.stderr.trim() }).toEqual({ code: 2, stderr: expect.stringContaining('--cache-mem: "-5" is not a whole number of 0 or more') });
  });

  test("hosts list of a broken hosts.json, hosts rearm into a state directory that cannot be written: one line each", async () => {
    const dir = tempDir();
    for (const text of ['{"hosts": {', "null", '{"hosts": 5}', '[{"hosts": 1}]', '{"hosts": []}']) {
      writeFileSync(join(dir, "hosts.json"), text);
      const r = await cli(["hosts", "list", "--state-dir", dir]);
      expect({ text, code: r.code, stderr: r.stderr.trim() }).toEqual({ text, code: 1, stderr: expect.stringContaining(`${join(dir, "hosts.json")} is not a host state file (`) });
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    // A record that is not one is skipped, as the server skips it.
    writeFileSync(join(dir, "hosts.json"), '{"version":1,"hosts":{"52:54:00:00:00:01":null,"52:54:00:00:00:02":{"phase":"done"}}}');
    const list = await cli(["hosts", "list", "--state-dir", dir]);
    expect({ code: list.code, stdout: list.stdout.trim(), stderr: list.stderr }).toEqual({ code: 0, stdout: "52:54:00:00:00:02  done", stderr: "" });
    // A MAC the store knows nothing of: a wrong --state-dir, or a typo.
    const r = await cli(["hosts", "rearm", "52:54:00:00:00:01", "--state-dir", "/proc/netboot-state"]);
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 1, stderr: expect.stringContaining("52:54:00:00:00:01: /proc/netboot-state/hosts.json knows nothing of it; is that the server's --state-dir (or is the MAC mistyped)?") });
    expect(r.stderr.trim().split("\n").length).toBe(1);
    // A done host in a state directory this user cannot write: one line, and the state as it was.
    const state = tempDir();
    writeFileSync(join(state, "hosts.json"), JSON.stringify({ format: "netboot-hosts", version: 2, hosts: { "52:54:00:00:00:03": { mac: "52:54:00:00:00:03", token: "0123456789abcdef0123456789abcdef", phase: "done", doneAt: 1 } } }));
    const nobody = await cli(["hosts", "rearm", "52:54:00:00:00:03", "--state-dir", state], { cmd: ["runuser", "-u", "nobody", "--", bun, join(repo, "src", "main.ts")] });
    expect({ code: nobody.code, lines: nobody.stderr.trim().split("\n").length }).toEqual({ code: 1, lines: 1 });
    expect(nobody.stderr).toContain(`cannot write ${join(state, "hosts.journal")}`);
    expect(nobody.stderr).not.toMatch(/\n\s+at /);
    const still = await cli(["hosts", "list", "--state-dir", state]);
    expect(still.stdout.trim()).toBe("52:54:00:00:00:03  done       done 1970-01-01T00:00:00.001Z");
  });

  test("a --cache-dir or --state-dir that cannot be made: one line, exit 2", async () => {
    if (process.getuid?.() !== 0) throw new Error("the directories are made when root is dropped; run the suite as root (CI does)");
    const http = await freePort();
    const r = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(http), "--no-tftp", "--dhcp", "off", "--cache-dir", "/proc/netboot-cache", "-q"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("/proc/netboot-cache cannot be created (no such file or directory): choose another --state-dir/--cache-dir");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  test("TFTP port in use: says so and suggests --tftp-port", async () => {
    const blocker = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const http = await freePort();
      const r = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(http), "--tftp-port", String(blocker.port)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`TFTP port ${blocker.port} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain("--tftp-port");
    } finally {
      blocker.close();
    }
  });

  test("port in use: says so and suggests --http-port", async () => {
    const blocker = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    try {
      const r = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(blocker.port)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`HTTP port ${blocker.port} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain("--http-port 8080");
    } finally {
      blocker.stop(true);
    }
  });

  test("privileged port without rights: says to use sudo or --http-port", async () => {
    requireTool("setpriv");
    if (process.getuid?.() !== 0) throw new Error("this test drops root with setpriv; run the suite as root (CI does)");
    const dir = tempDir();
    const r = await cli(["serve", sampleIso, "--ip", "127.0.0.1", "--http-port", "81"], {
      cmd: ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bun, join(repo, "src/main.ts")],
      env: { HOME: dir, BUN_INSTALL_CACHE_DIR: dir, TMPDIR: dir },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no permission to listen on HTTP port 81");
    expect(r.stderr).toMatch(/sudo.*--http-port 8080/);
  });
});

describe("serve", () => {
  test("serves until SIGTERM, then exits 0", async () => {
    const port = await freePort();
    const proc = Bun.spawn([bun, join(repo, "src/main.ts"), "serve", sampleIso, "--ip", "127.0.0.1", "--http-port", String(port), "--name", "esxi", "--dhcp", "off", "--no-tftp"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/esxi/b.b00`).catch(() => undefined))?.status === 200, 15_000, "serve");
      const cfg = await (await fetch(`http://127.0.0.1:${port}/esxi/boot.cfg`)).text();
      expect(cfg).toContain(`prefix=http://127.0.0.1:${port}/esxi/`);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      const log = await new Response(proc.stderr).text() + (await new Response(proc.stdout).text());
      expect(log).toContain("ESXi 8.0.2 (22380479)");
      expect(log).toMatch(/127\.0\.0\.1 "GET \/esxi\/boot\.cfg" 200/);
    } finally {
      proc.kill("SIGKILL");
    }
  });

  test("the demo command passes (the README's first command)", async () => {
    const r = await cli(["demo"], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    for (const route of ["uefi-http", "ipxe", "tftp", "bios"]) expect(r.stdout).toMatch(new RegExp(`^route ${route}: `, "m"));
    expect(r.stdout.match(/^  PASS: \d+ requests/gm)).toHaveLength(4);
    expect(r.stdout).toMatch(/^summary: 4 routes: PASS$/m);
    expect(r.stdout).toContain("kickstart");
    expect(r.stdout).not.toContain("FAIL");
  });

  test("package.json's start script is the demo", () => {
    const p = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
    expect(p.scripts.start).toContain("demo");
    expect(p.bin.netboot).toBe("src/main.ts");
  });
});
