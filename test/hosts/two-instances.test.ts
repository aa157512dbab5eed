/**
 * Two instances, one lab: two `netboot serve` processes in two network namespaces, each the DHCP server of
 * its own link, one lab file, one PostgreSQL (Debian's, on a Unix socket: reachable from every namespace).
 * busybox udhcpc and wget are the machines. Host A installs through instance 1 and host B through
 * instance 2; a token minted by one is accepted by the other; --until-done on either exits 0 once both are
 * done (the other's marks reach it through LISTEN/NOTIFY); `netboot hosts list --store` shows both; the
 * leases stay with the instance that serves each link.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli } from "../helpers/cli.ts";
import { udhcpc } from "../helpers/dhcp-clients.ts";
import { makeEsxiIso } from "../helpers/esxi-iso.ts";
import { createLan, type Lan } from "../helpers/lan.ts";
import { requireRoot } from "../helpers/netns.ts";
import { startPostgres, type Postgres } from "../helpers/postgres.ts";
import { serve, type Served } from "../helpers/serve.ts";
import { requireTool, tempDir } from "../helpers/tools.ts";

for (const t of ["ip", "busybox", "psql", "runuser"]) requireTool(t);
requireRoot();

const N1 = 241;
const N2 = 242;
const A = { mac: "52:54:00:00:41:01", ip: `10.${N1}.0.11`, hostname: "esx-a" };
const B = { mac: "52:54:00:00:42:02", ip: `10.${N2}.0.12`, hostname: "esx-b" };
const PXE = ["-V", "PXEClient:Arch:00007:UNDI:003000"];
const SECRET = "Two-Instances-rootpw";

let pg: Postgres;
let lan1: Lan;
let lan2: Lan;
const servers: Served[] = [];

beforeAll(() => {
  pg = startPostgres();
  lan1 = createLan(N1, [{ name: "srv" }, { name: "a", ip: null, mac: A.mac }]);
  lan2 = createLan(N2, [{ name: "srv" }, { name: "b", ip: null, mac: B.mac }]);
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  lan1?.destroy();
  lan2?.destroy();
  pg?.stop();
});

const wget = (lan: Lan, node: string, url: string) => lan.exec(node, ["busybox", "wget", "-q", "-O", "-", url]);

test("host A through instance 1, host B through instance 2; tokens cross; --until-done on either exits 0 once both are done", async () => {
  const url = pg.createDb("lab");
  const dir = tempDir("two-");
  writeFileSync(join(dir, "esxi.ks"), ["vmaccepteula", "rootpw {{rootpw}}", "{{network}}", "%post --interpreter=busybox", 'wget -q -O /dev/null "{{done_url}}" || true', ""].join("\n"));
  const lab = join(dir, "lab.yaml");
  writeFileSync(
    lab,
    `server: { dhcp: server, force: true, http-port: 8080, tftp-port: 6969, store: "${url}" }
images:
  esxi: ${makeEsxiIso()}
defaults: { image: esxi, mode: once, kickstart: ${join(dir, "esxi.ks")}, vars: { rootpw: { env: TEST_ROOTPW } } }
hosts:
  - { mac: "${A.mac}", hostname: ${A.hostname}, ip: ${A.ip} }
  - { mac: "${B.mac}", hostname: ${B.hostname}, ip: ${B.ip} }
`,
  );
  const state1 = tempDir("two-state1-");
  const state2 = tempDir("two-state2-");
  const env = { TEST_ROOTPW: SECRET };
  // Started together: both create the schema (one at a time) and agree on each host's token.
  const [s1, s2] = await Promise.all([
    serve(["--config", lab, "--iface", "lan0", "--state-dir", state1, "--until-done", "--timeout", "90s", "--json"], { ns: lan1.nodes.srv!.ns, env }),
    serve(["--config", lab, "--iface", "lan0", "--state-dir", state2, "--until-done", "--timeout", "90s", "--json"], { ns: lan2.nodes.srv!.ns, env }),
  ]);
  servers.push(s1, s2);
  expect(s1.log()).toContain(`hosts kept in postgres://netboot@localhost/lab?host=${pg.socketDir}`);

  // Each machine gets its lease, and its boot file, from the instance on its own link.
  const leaseA = await udhcpc(lan1, "a", PXE);
  const leaseB = await udhcpc(lan2, "b", PXE);
  expect([leaseA.ip, leaseB.ip]).toEqual([A.ip, B.ip]);
  expect(leaseA.boot_file ?? leaseA.bootfile).toBe("ipxe/snponly.efi");
  lan1.exec("a", ["ip", "addr", "add", `${A.ip}/24`, "dev", "lan0"]);
  lan2.exec("b", ["ip", "addr", "add", `${B.ip}/24`, "dev", "lan0"]);

  // The installers fetch their kickstarts, each from its own instance.
  const ksUrl = (srv: string, mac: string) => `http://${srv}:8080/esxi/01-${mac.replaceAll(":", "-")}/ks.cfg`;
  const ksA = wget(lan1, "a", ksUrl(`10.${N1}.0.1`, A.mac));
  const ksB = wget(lan2, "b", ksUrl(`10.${N2}.0.1`, B.mac));
  expect(ksA.code).toBe(0);
  expect(ksB.code).toBe(0);
  expect(ksA.out).toContain(`rootpw ${SECRET}`);
  const doneUrl = (ks: string) => /wget -q -O \/dev\/null "([^"]+)"/.exec(ks)![1]!;
  const tokenA = /token=([0-9a-f]{32})$/.exec(doneUrl(ksA.out))![1]!;
  expect(doneUrl(ksA.out)).toStartWith(`http://10.${N1}.0.1:8080/api/hosts/${A.mac}/done?token=`);
  expect(doneUrl(ksB.out)).toStartWith(`http://10.${N2}.0.1:8080/api/hosts/${B.mac}/done?token=`);

  // A's token, minted for instance 1's kickstart, is accepted by instance 2 (asked from instance 2's own
  // namespace: the done callback needs the token, not an address). A wrong one is refused by both.
  const srv2 = `http://10.${N2}.0.1:8080/api/hosts`;
  expect(wget(lan2, "srv", `${srv2}/${A.mac}/done?token=${"0".repeat(32)}`).err).toMatch(/403/);
  expect(wget(lan1, "srv", `http://10.${N1}.0.1:8080/api/hosts/${A.mac}/done?token=${"0".repeat(32)}`).err).toMatch(/403/);
  expect(wget(lan2, "srv", `${srv2}/${A.mac}/done?token=${tokenA}`).code).toBe(0);
  // Instance 1 hears of A's done through the database, and waits on for B.
  await s1.waitLog(new RegExp(`"type":"host.done","mac":"${A.mac}"`), 5000);
  expect(s1.proc.exitCode).toBeNull();
  // B's %post calls its own instance; instance 1 hears of it and exits 0 (so does instance 2).
  expect(lan2.exec("b", ["busybox", "wget", "-q", "-O", "/dev/null", doneUrl(ksB.out)]).code).toBe(0);
  expect(await s1.proc.exited).toBe(0);
  expect(await s2.proc.exited).toBe(0);
  expect(s1.log()).toMatch(/--until-done: every host reported done/);
  expect(s2.log()).toMatch(/--until-done: every host reported done/);
  // Instance 1's events: B's phases came from instance 2 (B never spoke to instance 1).
  const events1 = s1.log().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { type: string; mac?: string; phase?: string });
  expect(events1.filter((e) => e.mac === B.mac).map((e) => `${e.type}${e.phase ? `:${e.phase}` : ""}`)).toContain("host.done");
  expect(events1.some((e) => e.mac === B.mac && e.type === "dhcp.request")).toBe(false);

  // The store, as `netboot hosts list --store` shows it: both done. No secret anywhere in the logs.
  // (The lab's secrets are not needed to list its hosts: no TEST_ROOTPW here.)
  const list = await cli(["hosts", "list", "--store", url, "--config", lab]);
  expect(list.stderr).toBe("");
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(new RegExp(`^${A.mac}  esx-a +done +done \\d{4}-`, "m"));
  expect(list.stdout).toMatch(new RegExp(`^${B.mac}  esx-b +done +done \\d{4}-`, "m"));
  for (const s of [s1, s2]) {
    expect(s.log()).not.toContain(SECRET);
    expect(s.log()).not.toContain(tokenA);
  }
  // Leases stay per instance: each journal holds its own link's machine only.
  expect(readFileSync(join(state1, "leases.json"), "utf8")).toContain(A.mac);
  expect(readFileSync(join(state1, "leases.json"), "utf8")).not.toContain(B.mac);
  expect(readFileSync(join(state2, "leases.json"), "utf8")).toContain(B.mac);
  expect(readFileSync(join(state2, "leases.json"), "utf8")).not.toContain(A.mac);

  // A restart of instance 1 still has both done: A boots from its disk (no boot file).
  const again = await serve(["--config", lab, "--iface", "lan0", "--state-dir", state1], { ns: lan1.nodes.srv!.ns, env });
  servers.push(again);
  lan1.exec("a", ["ip", "addr", "flush", "dev", "lan0"]);
  const back = await udhcpc(lan1, "a", PXE);
  expect(back.ip).toBe(A.ip);
  expect(back.boot_file ?? back.bootfile ?? "").toBe("");
  expect(again.log()).toMatch(new RegExp(`${A.mac}: boots from its own disk \\(installed`));
  // `netboot hosts rearm --store` reaches the running instance at once, through the database.
  const rearm = await cli(["hosts", "rearm", B.mac, "--store", url]);
  expect(rearm.code).toBe(0);
  await again.waitLog(new RegExp(`${B.mac}: armed again`), 3000);
}, 180_000);
