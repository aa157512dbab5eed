/**
 * `netboot simulate` on a link in network namespaces: against netboot as the DHCP server and as proxyDHCP
 * beside dnsmasq, for every client kind; against the seed recipe without netboot (dnsmasq answering UEFI
 * HTTP boot with a URL, nginx serving an extracted ISO whose boot.cfg was edited by hand; dnsmasq's own TFTP
 * with a TFTP-relative prefix); and against servers that frame their answers in ways the ESXi loader refuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bun, cli, repo, type CliResult } from "../helpers/cli.ts";
import { startDnsmasq } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, run, tempDir } from "../helpers/tools.ts";

const rootOnly = process.getuid?.() === 0 ? describe : describe.skip;

const NET = 226;
const SRV = `10.${NET}.0.1`;
const SITE = `10.${NET}.0.3`;
const MACS = { bios: "52:54:00:26:00:01", uefi: "52:54:00:26:00:02", "uefi-http": "52:54:00:26:00:03", mac: "52:54:00:26:00:04" } as const;
const UNLISTED = "52:54:00:26:00:09";

interface SimJson {
  ok: boolean;
  verdict: string;
  steps: Array<{ kind: string; request: string; detail: string; bytes: number; ok: boolean; problem?: string }>;
}

async function simulate(lan: Lan, args: string[]): Promise<CliResult & { result: SimJson }> {
  const r = await cli(["simulate", "--iface", "lan0", "--dhcp-wait", "4s", "--json", ...args], { cmd: ["ip", "netns", "exec", lan.nodes.pc!.ns, bun, join(repo, "src/main.ts")], timeoutMs: 90_000 });
  let result: SimJson;
  try {
    result = JSON.parse(r.stdout) as SimJson;
  } catch {
    throw new Error(`simulate printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, result };
}

const requests = (r: SimJson, kind: string) => r.steps.filter((s) => s.kind === kind).map((s) => `${s.request} ${s.detail}`);

rootOnly("simulate in namespaces", () => {
  let lan: Lan;
  const iso = makeEsxiIso({ elTorito: true });
  beforeAll(() => {
    for (const t of ["ip", "dnsmasq", "nginx", "xorriso"]) requireTool(t);
    lan = createLan(NET, [{ name: "srv" }, { name: "pc", ip: null }, { name: "site", ip: SITE }]);
  });
  afterAll(() => lan?.destroy());

  test("netboot as the DHCP server: every client kind reaches the installer; an unlisted one is refused", async () => {
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "server", "--force", "--state-dir", tempDir("sim-state-"), "--allow", Object.values(MACS).join(",")], { ns: lan.nodes.srv!.ns });
      for (const arch of ["uefi-http", "uefi", "bios", "mac"] as const) {
        const r = await simulate(lan, ["--server", SRV, "--mac", MACS[arch], "--arch", arch]);
        expect({ arch, ok: r.result.ok, verdict: r.result.verdict, code: r.code }).toMatchObject({ arch, ok: true, code: 0 });
        // Every HTTP answer was checked by the strict client (Content-Length); the walk got the loader's files.
        const http = requests(r.result, "HTTP");
        const mac = MACS[arch].replaceAll(":", "-");
        if (arch === "bios") {
          // The ISO as a CD through iPXE's sanboot: read by ranges, its BOOT.CFG and modules on it.
          expect(requests(r.result, "iPXE").join(" ")).toMatch(/sanboot/);
          const disc = requests(r.result, "disc");
          expect(disc.some((p) => /^read El Torito boot record, BOOT\.CFG \(\d+ bytes\)/.test(p))).toBe(true);
          expect(disc.some((p) => /^read kernel and \d+ modules as mboot\.c32 reads them from the CD/.test(p))).toBe(true);
        } else {
          expect(http.some((p) => p.includes(`/esxi/01-${mac}/boot.cfg`))).toBe(true);
          expect(http.filter((p) => p.startsWith("HEAD ")).length).toBeGreaterThan(5);
          expect(http.some((p) => /^GET \S*\/b\.b00 /i.test(p))).toBe(true);
        }
        if (arch === "mac") expect(requests(r.result, "BSDP").length).toBe(2);
        if (arch === "uefi" || arch === "bios" || arch === "mac") expect(requests(r.result, "TFTP").some((p) => /ipxe\/(snponly\.efi|undionly\.kpxe)/.test(p))).toBe(true);
      }
      const refused = await simulate(lan, ["--server", SRV, "--mac", UNLISTED, "--arch", "uefi", "--expect", "refused"]);
      expect({ ok: refused.result.ok, code: refused.code }).toEqual({ ok: true, code: 0 });
      const wrong = await simulate(lan, ["--server", SRV, "--mac", UNLISTED, "--arch", "uefi"]);
      expect(wrong.code).toBe(1);
      expect(wrong.result.verdict).toMatch(/no boot file from anyone: is this machine listed/);
    } finally {
      await srv?.stop();
    }
  }, 240_000);

  test("netboot as proxyDHCP beside dnsmasq: addresses from dnsmasq, the boot from netboot", async () => {
    const dnsmasq = await startDnsmasq(lan, "site", 100, 150);
    let srv: Served | undefined;
    try {
      srv = await serve([iso, "--name", "esxi", "--iface", "lan0", "--dhcp", "proxy", "--state-dir", tempDir("sim-state-")], { ns: lan.nodes.srv!.ns });
      for (const arch of ["uefi", "uefi-http", "bios", "mac"] as const) {
        const r = await simulate(lan, ["--server", SRV, "--mac", MACS[arch], "--arch", arch]);
        expect({ arch, ok: r.result.ok, verdict: r.result.verdict }).toMatchObject({ arch, ok: true });
        const dhcp = r.result.steps.find((s) => s.kind === "DHCP")!;
        expect(dhcp.detail).toContain(SITE); // dnsmasq's offer of an address
        expect(r.result.steps.find((s) => s.kind === "DHCP" && s.request.startsWith("REQUEST"))!.request).toMatch(/^REQUEST 10\.226\.0\.(1[0-4]\d|150) /);
      }
    } finally {
      await srv?.stop();
      await dnsmasq.stop();
    }
  }, 120_000);

  describe("the seed recipe without netboot: dnsmasq, its TFTP, nginx, an extracted ISO edited by hand", () => {
    const root = tempDir("sim-recipe-");
    chmodSync(root, 0o755);
    const httpRoot = join(root, "http");
    const tftpRoot = join(root, "tftp");
    let site: { stop(): Promise<void> } | undefined;

    /** The ISO's files as `mount -o loop` shows them (lower case), mboot.efi beside them, boot.cfg edited as the recipe says. */
    const extract = (into: string, prefix: string) => {
      const dir = join(into, "esxi");
      mkdirSync(into, { recursive: true });
      run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", dir]);
      const lower = (d: string) => {
        for (const n of readdirSync(d)) {
          const p = join(d, n);
          if (n !== n.toLowerCase()) renameSync(p, join(d, n.toLowerCase()));
          if (statSync(join(d, n.toLowerCase())).isDirectory()) lower(join(d, n.toLowerCase()));
        }
      };
      run("chmod", ["-R", "u+w,a+rX", dir]);
      lower(dir);
      copyFileSync(join(dir, "efi/boot/bootx64.efi"), join(dir, "mboot.efi"));
      // sed -e 's#/##g' boot.cfg, then prefix= by hand (VMware's PXE instructions).
      const cfg = readFileSync(join(dir, "efi/boot/boot.cfg"), "utf8").replaceAll("/", "").replace(/^prefix=.*\n?/m, "");
      writeFileSync(join(dir, "boot.cfg"), `${cfg.trimEnd()}\nprefix=${prefix}\n`);
      run("chmod", ["-R", "a+rX", into]);
    };

    beforeAll(async () => {
      extract(httpRoot, `http://${SITE}/esxi/`);
      extract(tftpRoot, "esxi");
      const conf = join(root, "nginx.conf");
      writeFileSync(
        conf,
        `user root; worker_processes 1; pid ${root}/nginx.pid; error_log ${root}/error.log warn;
events { worker_connections 64; }
http { access_log ${root}/access.log; sendfile on; default_type application/octet-stream;
  client_body_temp_path ${root}; proxy_temp_path ${root}; fastcgi_temp_path ${root}; uwsgi_temp_path ${root}; scgi_temp_path ${root};
  server { listen ${SITE}:80; root ${httpRoot}; } }
`,
      );
      // A server whose answers the loader would refuse: chunked, or shorter than its Content-Length.
      const bad = join(root, "bad-http.ts");
      writeFileSync(
        bad,
        `import { createServer } from "node:net";
createServer((s) => {
  let buf = "";
  s.on("data", (d) => {
    buf += d;
    if (!buf.includes("\\r\\n\\r\\n")) return;
    const [method, path] = buf.split(" ");
    buf = "";
    if (path.startsWith("/chunked/")) s.write("HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n" + (method === "HEAD" ? "" : "5\\r\\nhello\\r\\n0\\r\\n\\r\\n"));
    else if (method === "HEAD") s.write("HTTP/1.1 200 OK\\r\\nContent-Length: 1000\\r\\n\\r\\n");
    else s.end("HTTP/1.1 200 OK\\r\\nContent-Length: 1000\\r\\nConnection: close\\r\\n\\r\\n0123456789");
  });
}).listen(8081, "${SITE}");
`,
      );
      const ns = lan.nodes.site!.ns;
      const procs = [
        Bun.spawn(["ip", "netns", "exec", ns, "nginx", "-c", conf, "-g", "daemon off;"], { stdout: "ignore", stderr: "ignore" }),
        Bun.spawn(["ip", "netns", "exec", ns, bun, bad], { stdout: "ignore", stderr: "ignore" }),
        Bun.spawn(
          [
            "ip", "netns", "exec", ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces", "--user=root", "--group=root", "--log-dhcp",
            `--dhcp-range=10.${NET}.0.100,10.${NET}.0.150,255.255.255.0,10m`, `--dhcp-leasefile=${join(root, "leases")}`,
            // UEFI HTTP boot: the loader by URL, option 60 HTTPClient (the firmware ignores the offer without it).
            "--dhcp-vendorclass=set:efihttp,HTTPClient", "--dhcp-option-force=tag:efihttp,60,HTTPClient",
            `--dhcp-host=${UNLISTED},set:chunked`, "--dhcp-host=52:54:00:26:00:0a,set:short",
            `--dhcp-boot=tag:efihttp,tag:!chunked,tag:!short,http://${SITE}/esxi/mboot.efi`,
            `--dhcp-boot=tag:efihttp,tag:chunked,http://${SITE}:8081/chunked/mboot.efi`,
            `--dhcp-boot=tag:efihttp,tag:short,http://${SITE}:8081/short/mboot.efi`,
            // UEFI PXE: the loader by dnsmasq's own TFTP, boot.cfg with prefix=esxi (relative to the TFTP root).
            "--dhcp-boot=tag:!efihttp,esxi/mboot.efi", "--enable-tftp", `--tftp-root=${tftpRoot}`,
          ],
          { stdout: "ignore", stderr: "ignore" },
        ),
      ];
      site = {
        async stop() {
          for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
          await Promise.all(procs.map((p) => p.exited));
        },
      };
      await Bun.sleep(800);
    });
    afterAll(async () => site?.stop());

    test("UEFI HTTP boot: dnsmasq's URL, nginx's files, the hand-edited boot.cfg", async () => {
      const r = await simulate(lan, ["--server", SITE, "--mac", MACS["uefi-http"], "--arch", "uefi-http"]);
      expect({ ok: r.result.ok, verdict: r.result.verdict, code: r.code }).toMatchObject({ ok: true, code: 0 });
      const http = requests(r.result, "HTTP");
      // mboot asks for its per-MAC boot.cfg first (nginx: 404), then the one beside it.
      expect(http.some((p) => p.includes(`/esxi/01-${MACS["uefi-http"].replaceAll(":", "-")}/boot.cfg`))).toBe(true);
      expect(http).toContain(`GET http://${SITE}/esxi/boot.cfg (boot.cfg)`);
      expect(http.some((p) => p.startsWith(`GET http://${SITE}/esxi/b.b00 `))).toBe(true);
      expect(readFileSync(join(root, "access.log"), "utf8")).toMatch(/"HEAD \/esxi\/b\.b00 HTTP\/1\.1" 200/);
    }, 90_000);

    test("UEFI PXE: the loader and every module over dnsmasq's TFTP, prefix relative to the TFTP root", async () => {
      const r = await simulate(lan, ["--server", SITE, "--mac", MACS.uefi, "--arch", "uefi"]);
      expect({ ok: r.result.ok, verdict: r.result.verdict, code: r.code }).toMatchObject({ ok: true, code: 0 });
      const tftp = requests(r.result, "TFTP");
      expect(tftp.some((p) => p.startsWith("read esxi/mboot.efi (boot file)"))).toBe(true);
      expect(tftp).toContain("read esxi/boot.cfg (boot.cfg)");
      expect(tftp.some((p) => p.startsWith("read esxi/b.b00 "))).toBe(true);
      expect(requests(r.result, "HTTP")).toEqual([]);
    }, 90_000);

    test("an answer framed chunked, or shorter than its Content-Length, fails with that reason", async () => {
      const chunked = await simulate(lan, ["--server", SITE, "--mac", UNLISTED, "--arch", "uefi-http"]);
      expect(chunked.code).toBe(1);
      expect(chunked.result.verdict).toMatch(/Transfer-Encoding: chunked \(the loader reads Content-Length only\)/);
      const short = await simulate(lan, ["--server", SITE, "--mac", "52:54:00:26:00:0a", "--arch", "uefi-http"]);
      expect(short.code).toBe(1);
      expect(short.result.verdict).toMatch(/connection closed after 10 of 1000 bytes/);
    }, 90_000);
  });
});
