/**
 * The Redfish driver against the test service (helpers/redfish-mock.ts, a mock: nothing Debian packages
 * serves Redfish), which Debian's redfishtool drives too, so the mock answers what an independent client
 * expects. TLS with the BMC's own certificate checked against ca:, or skipped with insecure: true.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { describeKept } from "../../src/bmc/driver.ts";
import { RedfishDriver } from "../../src/bmc/redfish.ts";
import { recordingMachine, startRedfishMock, type RedfishMock } from "../helpers/redfish-mock.ts";
import { run, tempDir } from "../helpers/tools.ts";

const PW = "rf-s3cret-pw";
let tls: { cert: string; key: string; ca: string };

beforeAll(() => {
  const dir = tempDir("redfish-tls-");
  run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=bmc.test", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  tls = { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8"), ca: join(dir, "cert.pem") };
});

describe("sessions, boot override, power, virtual media", () => {
  let mock: RedfishMock;
  const machine = recordingMachine();
  beforeAll(() => {
    mock = startRedfishMock({ user: "admin", password: PW, machine, requireIfMatch: true, tls: { cert: tls.cert, key: tls.key } });
  });
  afterAll(() => mock?.stop());

  test("follows the links, logs in with a session, sets the next boot once and reads it back, deletes the session", async () => {
    const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW, ca: tls.ca });
    const kept = await d.setBootOnce("pxe");
    expect(kept).toMatchObject({ target: "pxe", once: true, uefi: true });
    expect(describeKept({ target: "pxe" }, kept)).toBeUndefined();
    const patch = mock.calls.find((c) => c.method === "PATCH")!;
    expect(patch.body).toEqual({ Boot: { BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Once", BootSourceOverrideMode: "UEFI" } });
    expect(patch.auth).toBe("session");
    expect(mock.sessions.size).toBe(1);
    await d.close();
    expect(mock.sessions.size).toBe(0);
    expect(mock.calls.some((c) => c.method === "DELETE" && c.path.startsWith("/redfish/v1/SessionService/Sessions/"))).toBe(true);
    // Nothing guessed: every path it used came from an answer.
    expect(mock.calls.map((c) => c.path)).not.toContain("/redfish/v1/Systems/1");
  });

  test("UEFI HTTP boot of the machine's own ISO: UefiHttp with HttpBootUri", async () => {
    const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW, ca: tls.ca });
    const uri = "http://10.77.0.1/esxi/01-52-54-00-00-22-01.iso";
    const kept = await d.setBootOnce("http", { uri });
    expect(kept).toMatchObject({ target: "http", once: true, uefi: true, uri });
    expect(mock.boot.HttpBootUri).toBe(uri);
    await d.clearBoot();
    expect(mock.boot.BootSourceOverrideEnabled).toBe("Disabled");
    await d.close();
  });

  test("power: On when off, PowerCycle when on, ForceOff; virtual media inserted (ejecting what was there) and ejected", async () => {
    const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW, ca: tls.ca });
    machine.power = "Off";
    expect(await d.powerState()).toBe("off");
    await d.power("cycle");
    await d.power("cycle");
    await d.power("off");
    await d.power("off");
    expect(machine.log.filter((l) => l.startsWith("reset"))).toEqual(["reset On", "reset PowerCycle", "reset ForceOff"]);
    await d.insertMedia("http://10.77.0.1/a.iso");
    await d.insertMedia("http://10.77.0.1/b.iso");
    expect(machine.log.slice(-3)).toEqual(["insert http://10.77.0.1/a.iso", "eject", "insert http://10.77.0.1/b.iso"]);
    expect(mock.media).toEqual({ Image: "http://10.77.0.1/b.iso", Inserted: true });
    await d.ejectMedia();
    expect(mock.media.Inserted).toBe(false);
    await d.close();
  });

  test("a wrong password is one line naming the user, never the password; a certificate nobody vouched for is refused", async () => {
    const bad = new RedfishDriver({ url: mock.url, user: "admin", password: "not-the-password", ca: tls.ca });
    const err = await bad.powerState().catch((e: Error) => e);
    expect(String(err)).toContain("refused user admin");
    expect(String(err)).not.toContain("not-the-password");
    const untrusted = new RedfishDriver({ url: mock.url, user: "admin", password: PW });
    const tlsErr = await untrusted.powerState().catch((e: Error) => e);
    expect(String(tlsErr)).toMatch(/certificate|self.signed|SELF_SIGNED|verify/i);
    const insecure = new RedfishDriver({ url: mock.url, user: "admin", password: PW, insecure: true });
    expect(await insecure.powerState()).toBe("off");
    await insecure.close();
  });
});

describe("quirks of real services", () => {
  test("no SessionService: basic authentication", async () => {
    const machine = recordingMachine();
    const mock = startRedfishMock({ user: "admin", password: PW, machine, sessions: false });
    try {
      const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW });
      await d.power("on");
      expect(machine.log).toEqual(["reset On"]);
      expect(mock.calls.filter((c) => c.path.includes("Systems")).every((c) => c.auth === "basic")).toBe(true);
      await d.close();
    } finally {
      mock.stop();
    }
  });

  test("a service that keeps the override Continuous (as sushy-tools does) gets one line saying so", async () => {
    const mock = startRedfishMock({ user: "admin", password: PW, machine: recordingMachine(), keepContinuous: true });
    try {
      const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW });
      const kept = await d.setBootOnce("cd");
      expect(kept.once).toBe(false);
      expect(describeKept({ target: "cd" }, kept)).toBe("kept Cd, Continuous, UEFI: not next boot only (it kept every boot)");
      await d.close();
    } finally {
      mock.stop();
    }
  });

  test("a service that does not answer is retried, then one line", async () => {
    const d = new RedfishDriver({ url: "http://127.0.0.1:9", user: "admin", password: PW });
    const t0 = Date.now();
    const err = await d.powerState().catch((e: Error) => e);
    expect(String(err)).toMatch(/Redfish http:\/\/127\.0\.0\.1:9: GET \/redfish\/v1\/: .*\(3 tries\)/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900); // 1 s, then 2 s of back-off
  });
});

describe("redfishtool (Debian) drives the same service", () => {
  test("Systems get, setBootOverride, reset: the mock answers an independent client as it answers netboot", { timeout: 30_000 }, async () => {
    const machine = recordingMachine();
    const mock = startRedfishMock({ user: "admin", password: PW, machine });
    try {
      const host = mock.url.replace("http://", "");
      // Asynchronously: the mock answers from this process's event loop.
      const rt = async (...args: string[]) => {
        const p = Bun.spawn(["redfishtool", "-r", host, "-u", "admin", "-p", PW, "-S", "Never", "-A", "Session", ...args], { stdout: "pipe", stderr: "pipe" });
        const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
        if (code !== 0) throw new Error(`redfishtool ${args.join(" ")}: ${code}: ${err}`);
        return out;
      };
      const system = JSON.parse(await rt("Systems", "-1"));
      expect(system.PowerState).toBe("Off");
      await rt("Systems", "-1", "setBootOverride", "Once", "Pxe");
      expect(mock.boot).toMatchObject({ BootSourceOverrideEnabled: "Once", BootSourceOverrideTarget: "Pxe" });
      await rt("Systems", "-1", "reset", "On");
      expect(machine.log).toEqual(["reset On"]);
      // And netboot reads what redfishtool set.
      const d = new RedfishDriver({ url: mock.url, user: "admin", password: PW });
      expect(await d.readBoot()).toMatchObject({ target: "pxe", once: true });
      expect(await d.powerState()).toBe("on");
      await d.close();
      expect(mock.sessions.size).toBe(0);
    } finally {
      mock.stop();
    }
  });
});
