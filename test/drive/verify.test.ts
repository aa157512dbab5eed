/**
 * "Done" means the installed ESXi answers: the /sdk probe (drive/verify.ts) against the harness's stand-in
 * for ESXi's hostd (helpers/esxi-sdk.ts; a mock: there is no ESXi here); verify: firstboot through the
 * API; a wrong build fails the host naming both builds. On loopback, no root needed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startApp, type AppHandle } from "../../src/app.ts";
import { RedfishDriver } from "../../src/bmc/redfish.ts";
import { makeConfig, validateServeConfig } from "../../src/config.ts";
import { reinstall } from "../../src/drive/reinstall.ts";
import { probeEsxi } from "../../src/drive/verify.ts";
import type { NetbootEvent } from "../../src/events.ts";
import { parseLabFile } from "../../src/hosts/lab.ts";
import { memoryLogger } from "../../src/log.ts";
import { serveOptionNames } from "../../src/cli/args.ts";
import { sampleIso } from "../helpers/app.ts";
import { freePort } from "../helpers/cli.ts";
import { startSdk } from "../helpers/esxi-sdk.ts";
import { recordingMachine, startRedfishMock } from "../helpers/redfish-mock.ts";
import { run, tempDir } from "../helpers/tools.ts";

const MAC = "52:54:00:00:17:01";
let tls: { cert: string; key: string };
beforeAll(() => {
  const d = tempDir("verify-tls-");
  run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(d, "k.pem"), "-out", join(d, "c.pem"), "-days", "2", "-subj", "/CN=esx", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  tls = { cert: readFileSync(join(d, "c.pem"), "utf8"), key: readFileSync(join(d, "k.pem"), "utf8") };
});

describe("the /sdk probe", () => {
  test("reads about.build from RetrieveServiceContent (the host's own certificate is not checked); says why when there is none", async () => {
    const port = await freePort();
    const sdk = startSdk("127.0.0.1", "22380479", tls, port);
    try {
      expect(await probeEsxi(`https://127.0.0.1:${port}`)).toEqual({ build: "22380479", fullName: "VMware ESXi 8.0.2 build-22380479" });
    } finally {
      sdk.stop(true);
    }
    const closed = await probeEsxi(`https://127.0.0.1:${port}`);
    expect("error" in closed && closed.error).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/sdk: /);
    const plain = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("<html>starting</html>", { status: 503 }) });
    try {
      expect(await probeEsxi(`http://127.0.0.1:${plain.port}`)).toEqual({ error: `http://127.0.0.1:${plain.port}/sdk: 503, no about.build in the answer` });
    } finally {
      plain.stop(true);
    }
  });
});

function labApp(verify: string, probe?: (url: string) => ReturnType<typeof probeEsxi>): Promise<AppHandle> {
  const dir = tempDir("verify-lab-");
  writeFileSync(join(dir, "ks.cfg"), "vmaccepteula\n# {{firstboot_url}}\n");
  const path = join(dir, "lab.yaml");
  writeFileSync(path, `images: { esxi: ${sampleIso} }\ndefaults: { kickstart: ${join(dir, "ks.cfg")}, verify: ${verify} }\nhosts:\n  - { mac: "${MAC}", hostname: esx-v, ip: 127.0.0.1 }\n`);
  const lab = parseLabFile(readFileSync(path, "utf8"), path, serveOptionNames);
  const config = validateServeConfig(makeConfig(sampleIso, "127.0.0.1", { name: "esxi", bind: "127.0.0.1", http: { port: 0 }, tftp: { enabled: false, port: 0 }, dhcp: { mode: "off" }, cacheMem: 0, stateDir: tempDir("verify-state-") }));
  return startApp({ ...config, images: lab.images.map((i) => ({ source: i.source, name: i.name })) }, memoryLogger(), { lab, probe });
}

describe("verify: firstboot", () => {
  let app: AppHandle;
  const events: NetbootEvent[] = [];
  beforeAll(async () => {
    app = await labApp("firstboot");
    app.bus.subscribe((e) => events.push(e));
  });
  afterAll(() => app?.close());

  test("done_url makes it installed (and nothing boots it then); firstboot_url makes it done, and not before", async () => {
    const token = await app.store.token(MAC as never);
    const api = `${app.httpBase}/api/hosts/${MAC}`;
    expect((await fetch(`${api}/firstboot?token=${token}`)).status).toBe(409);
    expect((await fetch(`${api}/done?token=${token}`)).status).toBe(200);
    expect(app.store.get(MAC as never)?.phase).toBe("installed");
    const d = app.decide({ mac: MAC as never, arch: 7, vendorClass: "PXEClient:Arch:00007:UNDI:003000", userClass: [], ipxeOptions: false, uuid: undefined, relayed: false });
    expect(d.action).toBe("local");
    expect((await fetch(`${app.httpBase}/esxi/01-${MAC.replaceAll(":", "-")}/boot.cfg`)).status).toBe(403);
    expect((await fetch(`${api}/firstboot?token=wrong`)).status).toBe(403);
    expect((await fetch(`${api}/firstboot?token=${token}`)).status).toBe(200);
    expect(app.store.get(MAC as never)?.phase).toBe("done");
    expect(events.find((e) => e.type === "host.verified")).toMatchObject({ mac: MAC, how: "firstboot" });
    // The kickstart template gets the URL.
    const ks = await fetch(`${app.httpBase}/esxi/01-${MAC.replaceAll(":", "-")}/ks.cfg`);
    expect(ks.status).toBe(403); // done: not armed any more
  });
});

describe("verify: https with the wrong build", () => {
  test("the host fails naming both builds; the BMC's override was cleared after the install", async () => {
    const port = await freePort();
    const app = await labApp("https", () => probeEsxi(`https://127.0.0.1:${port}`));
    const machine = recordingMachine();
    const mock = startRedfishMock({ user: "admin", password: "pw-verify", machine });
    const sdk = startSdk("127.0.0.1", "11111111", tls, port);
    const origReset = machine.reset;
    // The machine: on power on it shows up (offered) and its installer calls done_url (installed).
    machine.reset = (type) => {
      origReset(type);
      setTimeout(async () => {
        await app.store.mark(MAC as never, "offered", { restart: true });
        await app.store.installed(MAC as never);
      }, 50);
    };
    try {
      const entry = app.store.book.lookup(MAC as never)!;
      const build = app.images[0]!.esxi!.summary.buildNumber;
      expect(build).toBeDefined();
      const [r] = await reinstall(
        [{ entry, driver: new RedfishDriver({ url: mock.url, user: "admin", password: "pw-verify" }), isoUrl: `${app.httpBase}/esxi/x.iso`, build }],
        { staggerMs: 0, batch: 1, retries: 0, timeoutMs: 20_000, signOfLifeMs: 5000 },
        { store: app.store, bus: app.bus, log: memoryLogger(), ipOf: () => "127.0.0.1", stopped: new Promise(() => {}), secrets: ["pw-verify"] },
      );
      expect(r!.ok).toBe(false);
      expect(r!.reason).toBe(`the installed ESXi at 127.0.0.1 is build 11111111, the image is build ${build}`);
      expect(r!.phase).toBe("installed");
      expect(r!.hint).toContain("boot order");
      expect(mock.boot.BootSourceOverrideEnabled).toBe("Disabled");
      expect(app.store.get(MAC as never)?.phase).toBe("failed");
      expect(JSON.stringify(r)).not.toContain("pw-verify");
    } finally {
      sdk.stop(true);
      mock.stop();
      await app.close();
    }
  });
});
