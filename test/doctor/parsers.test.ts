/**
 * doctor/ports.ts and doctor/firewall.ts: the pure readers under `netboot doctor`. /proc/net tables in the
 * kernel's own layout (addresses as host-order hex: 00000000:0043 is 0.0.0.0:67), a fake /proc tree for
 * the inode → process match (fd symlinks "socket:[N]", comm, cmdline, status), the holders named in the
 * words of the fix, `systemctl list-sockets`, and `nft -j list ruleset` JSON with an input chain that
 * drops by default, with and without accept rules for UDP 67/69/4011 and TCP 80. Commands are injected
 * (`run`, `readFile`): nothing here runs a real nft, ufw or systemctl.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { firewallFindings, nftFindings, type Run } from "../../src/doctor/firewall.ts";
import { describeHolder, hexToIPv4, hexToIPv6, parseListSockets, parseProcNet, portUsers, type Holder } from "../../src/doctor/ports.ts";

// --- /proc/net samples, in the kernel's format (net/ipv4/udp.c, tcp_ipv4.c, ipv6/datagram.c) ---

const UDP_HEADER = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
const UDP = [
  UDP_HEADER,
  // 0.0.0.0:67, root, dnsmasq's
  " 1075: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20411 2 ffff8f2a4b8c1c00 0",
  // 127.0.0.53:53, systemd-resolved (uid 101)
  " 2101: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 18822 2 ffff8f2a4b8c0000 0",
  // 10.77.0.1:68 connected to 10.77.0.254:67 (a DHCP client), state 01
  " 3301: 01004D0A:0044 FE004D0A:0043 01 00000000:00000000 00:00000000 00000000     0        0 19001 2 ffff8f2a4b8c0400 0",
  // 127.0.0.1:69, uid 1000, nobody we can name
  " 4410: 0100007F:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 40069 2 ffff8f2a4b8c0800 0",
  "",
].join("\n");

const UDP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
  // [::]:69, in.tftpd's
  "  773: 00000000000000000000000000000000:0045 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20733 2 ffff8f2a4b8c2400 0",
  // [fe80::5054:ff:fe12:3456]:546 (DHCPv6 client)
  "  900: 000080FE00000000FF005450563412FE:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21000 2 ffff8f2a4b8c2800 0",
  "",
].join("\n");

const TCP = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  // 0.0.0.0:80 LISTEN, www-data (uid 33)
  "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 30080 1 ffff8f2a4a1e0000 100 0 0 10 0",
  // 10.77.0.1:80 ← 10.77.0.60:54321 ESTABLISHED: not a listener
  "   1: 01004D0A:0050 3C004D0A:D431 01 00000000:00000000 02:000A1B2C 00000000    33        0 30081 2 ffff8f2a4a1e0880 20 4 30 10 -1",
  "",
].join("\n");

const TCP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  // [::ffff:10.77.0.1]:8080 LISTEN
  "   0: 0000000000000000FFFF000001004D0A:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 30990 1 ffff8f2a4a1e1000 100 0 0 10 0",
  // [::1]:80 LISTEN, uid 1000
  "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 30091 1 ffff8f2a4a1e1800 100 0 0 10 0",
  "",
].join("\n");

/** The URL parser writes an IPv6 address in its one canonical form: compare values, not spellings. */
const v6 = (a: string) => new URL(`http://[${a}]/`).hostname;

describe("/proc/net parsing", () => {
  test("udp: every socket line, addresses and ports decoded, uid and inode read", () => {
    const s = parseProcNet(UDP, "udp");
    expect(s).toHaveLength(4);
    expect(s[0]).toEqual({ proto: "udp", address: "0.0.0.0", port: 67, state: 7, uid: 0, inode: 20411 });
    expect(s[1]).toMatchObject({ address: "127.0.0.53", port: 53, uid: 101, inode: 18822 });
    expect(s[2]).toMatchObject({ address: "10.77.0.1", port: 68, state: 1 });
    expect(s[3]).toMatchObject({ address: "127.0.0.1", port: 69, uid: 1000 });
  });

  test("udp6: [::] and a link-local address", () => {
    const s = parseProcNet(UDP6, "udp6");
    expect(s).toHaveLength(2);
    expect(s[0]).toMatchObject({ proto: "udp6", address: "::", port: 69, inode: 20733 });
    expect(v6(s[1]!.address)).toBe("[fe80::5054:ff:fe12:3456]");
    expect(s[1]!.port).toBe(546);
  });

  test("tcp and tcp6: LISTEN is state 0A; ::ffff:-mapped IPv4 is written as IPv4", () => {
    const t = parseProcNet(TCP, "tcp");
    expect(t.map((x) => [x.address, x.port, x.state])).toEqual([
      ["0.0.0.0", 80, 0x0a],
      ["10.77.0.1", 80, 0x01],
    ]);
    const t6 = parseProcNet(TCP6, "tcp6");
    expect(t6[0]).toMatchObject({ address: "::ffff:10.77.0.1", port: 8080, state: 0x0a, uid: 1000 });
    expect(v6(t6[1]!.address)).toBe("[::1]");
  });

  test("the header, blank lines and short or broken lines are skipped", () => {
    expect(parseProcNet(UDP_HEADER, "udp")).toEqual([]);
    expect(parseProcNet(`${UDP_HEADER}\n\n   7: garbage\n`, "udp")).toEqual([]);
    expect(parseProcNet("", "tcp")).toEqual([]);
  });

  test("hexToIPv4 reads the host-order word (little-endian)", () => {
    expect(hexToIPv4("00000000")).toBe("0.0.0.0");
    expect(hexToIPv4("0100007F")).toBe("127.0.0.1");
    expect(hexToIPv4("0100A8C0")).toBe("192.168.0.1");
    expect(hexToIPv4("FFFFFFFF")).toBe("255.255.255.255");
    expect(hexToIPv4("FE004D0A")).toBe("10.77.0.254");
  });

  test("hexToIPv6: each 32-bit word in host order", () => {
    expect(hexToIPv6("00000000000000000000000000000000")).toBe("::");
    expect(v6(hexToIPv6("00000000000000000000000001000000"))).toBe("[::1]");
    expect(v6(hexToIPv6("B80D0120000000000000000001000000"))).toBe("[2001:db8::1]");
    expect(hexToIPv6("0000000000000000FFFF00000501A8C0")).toBe("::ffff:192.168.1.5");
  });
});

// --- a fake /proc ---

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fakeProc(): string {
  const proc = mkdtempSync(join(tmpdir(), "netboot-proc-"));
  dirs.push(proc);
  mkdirSync(join(proc, "net"));
  writeFileSync(join(proc, "net", "udp"), UDP);
  writeFileSync(join(proc, "net", "udp6"), UDP6);
  writeFileSync(join(proc, "net", "tcp"), TCP);
  // no tcp6: a kernel without IPv6
  const pid = (n: number, comm: string, argv: string[], uid: number, sockets: number[] | undefined) => {
    const d = join(proc, String(n));
    mkdirSync(d);
    writeFileSync(join(d, "comm"), `${comm}\n`);
    writeFileSync(join(d, "cmdline"), argv.join("\0") + "\0");
    writeFileSync(join(d, "status"), `Name:\t${comm}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t${n}\nPid:\t${n}\nPPid:\t1\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${uid}\t${uid}\t${uid}\t${uid}\n`);
    if (sockets === undefined) return; // another user's process: its fd/ is unreadable, here absent
    mkdirSync(join(d, "fd"));
    symlinkSync("/dev/null", join(d, "fd", "0"));
    sockets.forEach((inode, i) => symlinkSync(`socket:[${inode}]`, join(d, "fd", String(3 + i))));
  };
  pid(412, "dnsmasq", ["/usr/sbin/dnsmasq", "--conf-file=/var/lib/libvirt/dnsmasq/default.conf", "--leasefile-ro", "--dhcp-script=/usr/libexec/libvirt_leaseshelper"], 0, [18000, 20411]);
  pid(733, "in.tftpd", ["/usr/sbin/in.tftpd", "--listen", "--user", "tftp", "--address", ":69", "--secure", "/srv/tftp"], 0, [20733]);
  pid(1290, "nginx", ["nginx: worker process"], 33, undefined);
  pid(1300, "bash", ["-bash"], 33, undefined);
  mkdirSync(join(proc, "self")); // not a pid: ignored
  return proc;
}

describe("portUsers: who holds a port", () => {
  const proc = fakeProc();

  test("UDP 67: the socket's inode is found among a process's fds", () => {
    const u = portUsers(67, "udp", proc);
    expect(u).toHaveLength(1);
    expect(u[0]!.socket).toMatchObject({ proto: "udp", address: "0.0.0.0", port: 67, inode: 20411 });
    expect(u[0]!.holder).toEqual({
      pid: 412,
      uid: 0,
      comm: "dnsmasq",
      cmdline: "/usr/sbin/dnsmasq --conf-file=/var/lib/libvirt/dnsmasq/default.conf --leasefile-ro --dhcp-script=/usr/libexec/libvirt_leaseshelper",
      how: "inode",
    });
  });

  test("UDP 69: IPv4 and IPv6 sockets both; one matched by inode, one nobody can name", () => {
    const u = portUsers(69, "udp", proc);
    expect(u.map((x) => `${x.socket.proto} ${x.socket.address}`).sort()).toEqual(["udp 127.0.0.1", "udp6 ::"]);
    const v6sock = u.find((x) => x.socket.proto === "udp6")!;
    expect(v6sock.holder).toMatchObject({ pid: 733, comm: "in.tftpd", how: "inode" });
    const v4sock = u.find((x) => x.socket.proto === "udp")!;
    expect(v4sock.holder).toEqual({ pid: undefined, uid: 1000, comm: undefined, cmdline: undefined, how: "unknown" });
  });

  test("TCP 80: only the listener; without its fds, a known server of the socket's uid is the guess", () => {
    const u = portUsers(80, "tcp", proc);
    expect(u).toHaveLength(1);
    expect(u[0]!.socket).toMatchObject({ address: "0.0.0.0", port: 80, state: 0x0a, uid: 33 });
    expect(u[0]!.holder).toMatchObject({ pid: 1290, uid: 33, comm: "nginx", how: "uid" });
  });

  test("a free port, a missing table, a missing /proc: nothing", () => {
    expect(portUsers(4011, "udp", proc)).toEqual([]);
    expect(portUsers(8080, "tcp", proc)).toEqual([]); // only in tcp6, which this kernel lacks
    expect(portUsers(67, "udp", join(proc, "nowhere"))).toEqual([]);
  });

  // Doctor without root guesses among the uid's processes: a web server is no suspect for UDP 67.
  test("the uid guess for a DHCP port does not pick a web server", () => {
    const p = mkdtempSync(join(tmpdir(), "netboot-proc-"));
    dirs.push(p);
    mkdirSync(join(p, "net"));
    writeFileSync(join(p, "net", "udp"), `${UDP_HEADER}\n    1: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55501 2 ffff8f2a4b8c1c00 0\n`);
    mkdirSync(join(p, "900"));
    writeFileSync(join(p, "900", "comm"), "nginx\n");
    writeFileSync(join(p, "900", "cmdline"), "nginx: master process /usr/sbin/nginx\0");
    writeFileSync(join(p, "900", "status"), "Name:\tnginx\nUid:\t0\t0\t0\t0\n");
    const u = portUsers(67, "udp", p);
    expect(u).toHaveLength(1);
    expect(u[0]!.holder.comm).not.toBe("nginx");
  });
});

describe("describeHolder: named in the words of the fix", () => {
  const h = (comm: string, cmdline = "", pid = 4242): Holder => ({ pid, uid: 0, comm, cmdline, how: "inode" });

  test("dnsmasq: libvirt's (with its network), NetworkManager's, or a plain one", () => {
    const libvirt = describeHolder(h("dnsmasq", "/usr/sbin/dnsmasq --conf-file=/var/lib/libvirt/dnsmasq/isolated.conf --leasefile-ro"), 67, "udp");
    expect(libvirt.name).toContain("libvirt's dnsmasq");
    expect(libvirt.name).toContain('"isolated"');
    expect(libvirt.name).toContain("PID 4242");
    expect(libvirt.fix).toContain("virsh net-destroy isolated");

    const nm = describeHolder(h("dnsmasq", "/usr/sbin/dnsmasq --conf-file=/dev/null --no-hosts --keep-in-foreground --bind-interfaces --listen-address=10.42.0.1 --dhcp-range=10.42.0.10,10.42.0.254,60m --dhcp-leasefile=/var/lib/NetworkManager/dnsmasq-eth1.leases --pid-file=/run/nm-dnsmasq-eth1.pid --conf-dir=/etc/NetworkManager/dnsmasq-shared.d"), 67, "udp");
    expect(nm.name).toContain("NetworkManager's dnsmasq");
    expect(nm.fix).toContain("nmcli");

    const plain = describeHolder(h("dnsmasq", "/usr/sbin/dnsmasq -x /run/dnsmasq/dnsmasq.pid -u dnsmasq"), 67, "udp");
    expect(plain.name).toBe("dnsmasq (PID 4242)");
    expect(plain.fix).toContain("systemctl stop dnsmasq");
    expect(plain.fix).toContain("--dhcp proxy");
  });

  test("systemd-networkd (comm is cut to 15 characters by the kernel)", () => {
    const d = describeHolder(h("systemd-network", "/lib/systemd/systemd-networkd"), 67, "udp");
    expect(d.name).toContain("systemd-networkd");
    expect(d.fix).toContain("DHCPServer=yes");
  });

  test("TFTP servers: in.tftpd is tftpd-hpa; atftpd", () => {
    const hpa = describeHolder(h("in.tftpd"), 69, "udp");
    expect(hpa.name).toStartWith("tftpd-hpa");
    expect(hpa.fix).toContain("--tftp-port");
    const a = describeHolder(h("atftpd"), 69, "udp");
    expect(a.name).toStartWith("atftpd");
    expect(a.fix).toContain("systemctl stop atftpd");
  });

  test("ISC dhcpd and Kea", () => {
    expect(describeHolder(h("dhcpd"), 67, "udp").fix).toContain("systemctl stop isc-dhcp-server");
    expect(describeHolder(h("kea-dhcp4"), 67, "udp").fix).toContain("systemctl stop kea-dhcp4");
  });

  test("PID 1: a socket unit from systemctl list-sockets, by the port it listens on", () => {
    const units = parseListSockets(LIST_SOCKETS);
    const d = describeHolder(h("systemd", "/sbin/init", 1), 69, "udp", units);
    expect(d.name).toContain("tftpd-hpa.socket");
    expect(d.name).toContain("tftpd-hpa.service");
    expect(d.fix).toBe("sudo systemctl stop tftpd-hpa.socket tftpd-hpa.service");
    // A port no unit lists (":4011" must not match ":40110" or "…:4011x").
    const none = describeHolder(h("systemd", "/sbin/init", 1), 4011, "udp", units);
    expect(none.name).toContain("socket-activated unit");
    expect(none.fix).toContain("list-sockets");
  });

  test("port 80 holders, another netboot, and a process nobody can name", () => {
    const web = describeHolder(h("caddy", "/usr/bin/caddy run"), 80, "tcp");
    expect(web.name).toBe("caddy (PID 4242)");
    expect(web.fix).toContain("--http-port");
    expect(describeHolder(h("bun", "bun /opt/netboot/src/main.ts serve"), 69, "udp").name).toStartWith("another netboot");
    const anon = describeHolder({ pid: undefined, uid: 1000, comm: undefined, cmdline: undefined, how: "unknown" }, 67, "udp");
    expect(anon.name).toContain("uid 1000");
    expect(anon.fix).toContain("sudo netboot doctor");
  });
});

const LIST_SOCKETS = `LISTEN                          UNIT                            ACTIVATES
/run/dbus/system_bus_socket     dbus.socket                     dbus.service
/run/systemd/journal/stdout     systemd-journald.socket         systemd-journald.service
/run/udev/control               systemd-udevd-control.socket    systemd-udevd.service
0.0.0.0:40110                   other.socket                    other.service
[::]:69                         tftpd-hpa.socket                tftpd-hpa.service
[::]:22                         ssh.socket                      ssh.service
/run/lvm/lvmpolld.socket        lvm2-lvmpolld.socket            -

7 sockets listed.
Pass --all to see loaded but inactive sockets, too.
`;

describe("parseListSockets", () => {
  test("one entry per listening socket unit; the header and the summary lines are not units", () => {
    const units = parseListSockets(LIST_SOCKETS);
    expect(units.map((u) => u.unit)).toEqual(["dbus.socket", "systemd-journald.socket", "systemd-udevd-control.socket", "other.socket", "tftpd-hpa.socket", "ssh.socket", "lvm2-lvmpolld.socket"]);
    expect(units.find((u) => u.unit === "tftpd-hpa.socket")).toEqual({ listen: "[::]:69", unit: "tftpd-hpa.socket", activates: "tftpd-hpa.service" });
    expect(parseListSockets("0 sockets listed.\nPass --all to see loaded but inactive sockets, too.\n")).toEqual([]);
  });
});

// --- nft -j list ruleset ---

type Rule = Record<string, unknown>;
const metainfo = { metainfo: { version: "1.0.6", release_name: "Lester Gooch #5", json_schema_version: 1 } };
const table = (family = "inet", name = "filter") => ({ table: { family, name, handle: 1 } });
const chain = (name: string, hook: string | undefined, policy: string | undefined, family = "inet", tbl = "filter") => ({
  chain: { family, table: tbl, name, handle: 1, ...(hook ? { type: "filter", hook, prio: 0, policy } : {}) },
});
let handle = 10;
const rule = (chainName: string, expr: unknown[], family = "inet", tbl = "filter"): Rule => ({ rule: { family, table: tbl, chain: chainName, handle: handle++, expr } });
const dport = (proto: "udp" | "tcp", right: unknown) => ({ match: { op: "==", left: { payload: { protocol: proto, field: "dport" } }, right } });
const ctEstablished = { match: { op: "in", left: { ct: { key: "state" } }, right: ["established", "related"] } };
const iifLo = { match: { op: "==", left: { meta: { key: "iifname" } }, right: "lo" } };
const accept = { accept: null };
const ruleset = (...items: unknown[]) => JSON.stringify({ nftables: [metainfo, table(), ...items] });

/** The usual desktop/server ruleset: input policy drop, established and lo accepted, ssh open. */
const base = () => [chain("input", "input", "drop"), rule("input", [ctEstablished, accept]), rule("input", [iifLo, accept]), rule("input", [dport("tcp", 22), accept]), chain("forward", "forward", "drop"), chain("output", "output", "accept")];

describe("nftFindings", () => {
  test("input policy drop with no rule for netboot's ports: a warning naming all four and the fix", () => {
    const f = nftFindings(ruleset(...base()));
    expect(f).toHaveLength(1); // forward (policy drop) is not input: not reported
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("inet filter input");
    expect(f[0]!.text).toContain("policy drop");
    expect(f[0]!.text).toContain("67, 69, 4011, 80");
    expect(f[0]!.fix).toBe("sudo nft insert rule inet filter input udp dport { 67, 69, 4011 } accept && sudo nft insert rule inet filter input tcp dport 80 accept");
  });

  test("policy drop with accept rules for udp dport { 67, 69, 4011 } and tcp dport 80: ok", () => {
    const f = nftFindings(ruleset(...base(), rule("input", [dport("udp", { set: [67, 69, 4011] }), accept]), rule("input", [dport("tcp", 80), accept])));
    expect(f).toHaveLength(1);
    expect(f[0]!.level).toBe("ok");
    expect(f[0]!.text).toContain("67, 69, 4011 and 80");
  });

  test("one rule per port; only the missing ones are named", () => {
    const f = nftFindings(ruleset(...base(), rule("input", [dport("udp", 67), accept]), rule("input", [dport("udp", 69), accept])));
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toMatch(/ports 4011, 80$/);
  });

  test("a set of look-alike ports (6700, 6900, 40110) opens none of them", () => {
    const f = nftFindings(ruleset(...base(), rule("input", [dport("udp", { set: [6700, 6900, 40110] }), accept]), rule("input", [dport("tcp", 80), accept])));
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toMatch(/ports 67, 69, 4011$/);
  });

  test("another HTTP port is the one looked for", () => {
    const open = [rule("input", [dport("udp", { set: [67, 69, 4011] }), accept])];
    expect(nftFindings(ruleset(...base(), ...open, rule("input", [dport("tcp", 8080), accept])), 8080)[0]!.level).toBe("ok");
    const f = nftFindings(ruleset(...base(), ...open, rule("input", [dport("tcp", 80), accept])), 8080);
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toMatch(/ports 8080$/);
    expect(f[0]!.fix).toContain("tcp dport 8080 accept");
  });

  test("an accepting input chain without drop or reject rules: nothing to say", () => {
    expect(nftFindings(ruleset(chain("input", "input", "accept"), rule("input", [ctEstablished, accept])))).toEqual([]);
  });

  test("policy accept but ending in a reject rule: warned, without 'policy drop'", () => {
    const f = nftFindings(ruleset(chain("input", "input", "accept"), rule("input", [ctEstablished, accept]), rule("input", [dport("tcp", 22), accept]), rule("input", [{ reject: { type: "icmpx", expr: "admin-prohibited" } }])));
    expect(f).toHaveLength(1);
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("hook input");
    expect(f[0]!.text).not.toContain("policy drop");
  });

  test("accept rules in another chain or table do not open the input chain", () => {
    const f = nftFindings(
      JSON.stringify({
        nftables: [metainfo, table(), table("ip", "nat"), ...base(), rule("forward", [dport("udp", { set: [67, 69, 4011] }), accept]), rule("forward", [dport("tcp", 80), accept]), chain("input", undefined, undefined, "ip", "nat"), rule("input", [dport("tcp", 80), accept], "ip", "nat")],
      }),
    );
    expect(f).toHaveLength(1);
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("67, 69, 4011, 80");
  });

  test("two families with input hooks: each judged on its own rules", () => {
    const f = nftFindings(
      JSON.stringify({
        nftables: [metainfo, table("ip", "filter"), table("ip6", "filter"), chain("input", "input", "drop", "ip"), rule("input", [dport("udp", { set: [67, 69, 4011] }), accept], "ip"), rule("input", [dport("tcp", 80), accept], "ip"), chain("input", "input", "drop", "ip6")],
      }),
    );
    expect(f.map((x) => [x.level, x.text.includes("ip6") ? "ip6" : "ip"])).toEqual([
      ["ok", "ip"],
      ["warn", "ip6"],
    ]);
  });

  test("not JSON (an old nft without -j): said, not thrown", () => {
    const f = nftFindings("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n");
    expect(f).toEqual([{ level: "info", text: "nft's ruleset could not be read as JSON" }]);
    expect(nftFindings(JSON.stringify({ nftables: [metainfo] }))).toEqual([]);
  });

  test("tcp dport 8080 accept does not open port 80", () => {
    const f = nftFindings(ruleset(...base(), rule("input", [dport("udp", { set: [67, 69, 4011] }), accept]), rule("input", [dport("tcp", 8080), accept])));
    expect(f[0]!.level).toBe("warn");
  });

  test("rules that drop netboot's ports do not open them (the verdict is read)", () => {
    const drop = { drop: null };
    const f = nftFindings(ruleset(...base(), rule("input", [dport("udp", { set: [67, 69, 4011] }), drop]), rule("input", [dport("tcp", 80), drop])));
    expect(f[0]!.level).toBe("warn");
  });
});

// --- firewallFindings, with every command and file injected ---

function runner(outputs: Record<string, { code?: number; out: string }>): Run & { calls: string[] } {
  const calls: string[] = [];
  const run = ((argv: string[]) => {
    const key = argv.join(" ");
    calls.push(key);
    const o = outputs[key];
    return o ? { code: o.code ?? 0, out: o.out } : undefined; // undefined: no such command
  }) as Run & { calls: string[] };
  run.calls = calls;
  return run;
}
const files = (m: Record<string, string>) => (p: string) => m[p];

describe("firewallFindings", () => {
  const ufwOn = files({ "/etc/ufw/ufw.conf": "# /etc/ufw/ufw.conf\n\nENABLED=yes\nLOGLEVEL=low\n" });

  test("nothing active: ok, and as non-root no root-only command is run", () => {
    const run = runner({ "systemctl is-active firewalld": { code: 3, out: "inactive\n" }, "systemctl is-active nftables": { code: 3, out: "inactive\n" } });
    const f = firewallFindings({ root: false, platform: "linux", run, readFile: files({}) });
    expect(f).toEqual([{ level: "ok", text: "no active ufw or firewalld (nftables rules need root to read)" }]);
    expect(run.calls.some((c) => c.startsWith("nft ") || c.startsWith("ufw ") || c.startsWith("firewall-cmd"))).toBe(false);
  });

  test("ufw active, not root: a warning that says rules need root, with the allow commands", () => {
    const f = firewallFindings({ root: false, platform: "linux", run: runner({}), readFile: ufwOn });
    expect(f).toHaveLength(1);
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("as root");
    expect(f[0]!.fix).toBe("sudo ufw allow 67,69,4011/udp && sudo ufw allow 80/tcp");
  });

  const ufwStatus = (lines: string[]) => ({ out: ["Status: active", "", "To                         Action      From", "--                         ------      ----", ...lines, ""].join("\n") });

  test("ufw active as root: ok when 67, 69, 4011/udp and 80/tcp are allowed", () => {
    const run = runner({ "ufw status": ufwStatus(["22/tcp                     ALLOW       Anywhere", "67,69,4011/udp             ALLOW       Anywhere", "80/tcp                     ALLOW       Anywhere"]) });
    const f = firewallFindings({ root: true, platform: "linux", run, readFile: ufwOn });
    expect(f[0]).toEqual({ level: "ok", text: "ufw is active and allows UDP 67, 69, 4011 and HTTP" });
  });

  test("ufw active as root: a missing port, or a DENY, is a warning", () => {
    const missing = runner({ "ufw status": ufwStatus(["22/tcp                     ALLOW       Anywhere", "67/udp                     ALLOW       Anywhere", "69/udp                     ALLOW       Anywhere", "80/tcp                     ALLOW       Anywhere"]) });
    expect(firewallFindings({ root: true, platform: "linux", run: missing, readFile: ufwOn })[0]!.level).toBe("warn");
    const denied = runner({ "ufw status": ufwStatus(["67,69,4011/udp             DENY        Anywhere", "80/tcp                     ALLOW       Anywhere"]) });
    const f = firewallFindings({ root: true, platform: "linux", run: denied, readFile: ufwOn });
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("does not allow");
  });

  test("firewalld as root: names the services its zone lacks", () => {
    const run = runner({ "systemctl is-active firewalld": { out: "active\n" }, "firewall-cmd --list-services": { out: "cockpit dhcpv6-client ssh dhcp tftp\n" } });
    const f = firewallFindings({ root: true, platform: "linux", run, readFile: files({}) });
    const fw = f.find((x) => x.text.startsWith("firewalld"))!;
    expect(fw.level).toBe("warn");
    expect(fw.text).toContain("lacks proxy-dhcp, http");
    expect(fw.fix).toContain("firewall-cmd --add-service={dhcp,proxy-dhcp,tftp,http}");
    const all = runner({ "systemctl is-active firewalld": { out: "active\n" }, "firewall-cmd --list-services": { out: "ssh dhcp proxy-dhcp tftp http\n" } });
    expect(firewallFindings({ root: true, platform: "linux", run: all, readFile: files({}) }).find((x) => x.text.startsWith("firewalld"))!.level).toBe("ok");
  });

  test("as root, nft's ruleset is read (with the HTTP port asked for)", () => {
    const run = runner({ "nft -j list ruleset": { out: ruleset(...base(), rule("input", [dport("udp", { set: [67, 69, 4011] }), accept])) } });
    const f = firewallFindings({ root: true, platform: "linux", run, readFile: files({}), httpPort: 8080 });
    expect(f).toHaveLength(1);
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toMatch(/ports 8080$/);
  });

  test("as root without nft: iptables' INPUT policy DROP is a warning unless the ports are opened", () => {
    const drop = runner({ "iptables -S INPUT": { out: "-P INPUT DROP\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n" } });
    const f = firewallFindings({ root: true, platform: "linux", run: drop, readFile: files({}) });
    expect(f[0]!.level).toBe("warn");
    expect(f[0]!.text).toContain("INPUT policy DROP");
    expect(f[0]!.fix).toContain("--dports 67,69,4011");
    const opened = runner({ "iptables -S INPUT": { out: "-P INPUT DROP\n-A INPUT -p udp -m multiport --dports 67,69,4011 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n" } });
    expect(firewallFindings({ root: true, platform: "linux", run: opened, readFile: files({}) })).toEqual([{ level: "ok", text: "no firewall rules in the way (ufw, firewalld, nftables)" }]);
    const accepting = runner({ "iptables -S INPUT": { out: "-P INPUT ACCEPT\n" } });
    expect(firewallFindings({ root: true, platform: "linux", run: accepting, readFile: files({}) })[0]!.level).toBe("ok");
  });

  test("not root with nftables active: says its rules need root", () => {
    const run = runner({ "systemctl is-active nftables": { out: "active\n" } });
    const f = firewallFindings({ root: false, platform: "linux", run, readFile: files({}) });
    expect(f).toEqual([{ level: "info", text: "nftables is active: its rules need root to read (sudo netboot doctor)" }]);
  });

  test("macOS: the application firewall off, on, blocking all, or not askable", () => {
    const fw = "/usr/libexec/ApplicationFirewall/socketfilterfw";
    const off = runner({ [`${fw} --getglobalstate`]: { out: "Firewall is disabled. (State = 0)\n" } });
    expect(firewallFindings({ root: false, platform: "darwin", run: off })[0]!.level).toBe("ok");
    const on = runner({ [`${fw} --getglobalstate`]: { out: "Firewall is enabled. (State = 1)\n" }, [`${fw} --getblockall`]: { out: "Firewall has block all state set to disabled.\n" } });
    const w = firewallFindings({ root: false, platform: "darwin", run: on });
    expect(w[0]!.level).toBe("warn");
    expect(w[0]!.fix).toContain("--unblockapp");
    const all = runner({ [`${fw} --getglobalstate`]: { out: "Firewall is enabled. (State = 1)\n" }, [`${fw} --getblockall`]: { out: "Block all ENABLED!\n" } });
    const b = firewallFindings({ root: false, platform: "darwin", run: all });
    expect(b[0]!.level).toBe("fail");
    expect(b[0]!.fix).toContain("--setblockall off");
    expect(firewallFindings({ root: false, platform: "darwin", run: runner({}) })[0]!.level).toBe("info");
  });
});
