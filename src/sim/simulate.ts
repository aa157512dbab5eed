/**
 * `netboot simulate`: one machine booting on a real link, against netboot or any other PXE setup (dnsmasq,
 * ISC dhcpd + tftpd + nginx). Every step is what the firmware and the ESXi loader do, with their rules:
 *
 *   DHCP      DISCOVER → OFFERs (an address, a boot file; proxyDHCP beside another server), REQUEST → ACK
 *   BSDP      (mac) INFORM[LIST] → the images, INFORM[SELECT] → the boot file
 *   TFTP      the boot file as edk2 reads it: a size query (tsize), then the read (blksize, windowsize 4)
 *   iPXE      (when the boot file is iPXE) its own DHCP as iPXE, its script, then what the script says:
 *             chain the loader with -c <boot.cfg>, or sanboot the disc image, or exit (local boot)
 *   loader    the walk mboot makes (demo/mboot.ts): 01-<mac>/boot.cfg next to itself first, prefix=, HEAD
 *             (or tsize) of every module, then each module; Content-Length checked on every HTTP answer
 *   disc      (BIOS sanboot) the ISO read by sectors over HTTP ranges, its BOOT.CFG and every module on it
 *   installer the installed system's DHCP, then the kickstart named by ks= (and with reportDone, its
 *             done_url, as the kickstart's %post would call it)
 *
 * Each step is reported with its timing; the result is a verdict. Nothing here knows netboot's internals:
 * it speaks the protocols only.
 */
import { spawnSync } from "node:child_process";
import { getBootCfgValue, parseBootCfg, splitModules } from "../boot/esxi/bootcfg.ts";
import { Opt } from "../dhcp/constants.ts";
import { optIp } from "../dhcp/packet.ts";
import { httpTransport, tftpTransport, walkLikeMboot, dirOf, type LoaderTransport, type WalkStep } from "../demo/mboot.ts";
import { ServiceError } from "../errors.ts";
import { strictFetch } from "../http/client.ts";
import { IsoImage } from "../iso/image.ts";
import { listIPv4 } from "../net/interfaces.ts";
import { tftpRead, tftpSize } from "../tftp/client.ts";
import { maskToPrefix } from "../wire/ipv4.ts";
import { macDirName, type Mac } from "../wire/mac.ts";
import { runIpxeScript } from "./ipxe-script.ts";
import { bsdpInform, bsdpOf, clientPacket, describeAnswer, DhcpLink, MessageType, newXid, type Answer, type Asker, type SimArch } from "./dhcp.ts";

export interface SimStep {
  /** Seconds since the simulation started. */
  at: number;
  kind: "DHCP" | "BSDP" | "TFTP" | "HTTP" | "iPXE" | "disc" | "net";
  request: string;
  detail: string;
  bytes: number;
  ms: number;
  ok: boolean;
  problem?: string | undefined;
}

export type Expectation = "install" | "local" | "refused";

export interface SimOptions {
  /** The server under test: its answers are the ones followed. */
  server: string;
  iface: string;
  mac: Mac;
  arch: SimArch;
  /** What the server should make of this machine: boot the installer (default), send it to its disk, or not answer. */
  expect?: Expectation;
  /** Call the kickstart's done_url, as its %post would. */
  reportDone?: boolean;
  /** How long each DHCP exchange waits for answers. */
  dhcpWaitMs?: number;
  onStep?: (s: SimStep) => void;
}

export interface SimResult {
  ok: boolean;
  verdict: string;
  steps: SimStep[];
  seconds: number;
  bytes: number;
  /** The address the walk ran from. */
  address: string | undefined;
}

class Verdict extends Error {
  readonly ok: boolean;
  constructor(ok: boolean, message: string) {
    super(message);
    this.ok = ok;
  }
}

const fail = (message: string): never => {
  throw new Verdict(false, message);
};

export async function simulate(opts: SimOptions): Promise<SimResult> {
  const t0 = performance.now();
  const steps: SimStep[] = [];
  const expect = opts.expect ?? "install";
  const record = (s: Omit<SimStep, "at">) => {
    const step = { ...s, at: (performance.now() - t0) / 1000 - s.ms / 1000 };
    steps.push(step);
    opts.onStep?.(step);
    return step;
  };
  const sim = new Simulation(opts, record);
  let verdict: Verdict;
  try {
    verdict = await sim.run(expect);
  } catch (err) {
    verdict = err instanceof Verdict ? err : new Verdict(false, (err as Error).message);
  } finally {
    sim.cleanup();
  }
  return { ok: verdict.ok, verdict: verdict.message, steps, seconds: (performance.now() - t0) / 1000, bytes: steps.reduce((n, s) => n + s.bytes, 0), address: sim.address };
}

interface Lease {
  address: string;
  prefix: number;
  /** The server that leased it. */
  server: string;
  /** The answer with the boot file (the lease's own, or a proxyDHCP's). */
  boot: Answer | undefined;
}

class Simulation {
  readonly #o: SimOptions;
  readonly #record: (s: Omit<SimStep, "at">) => SimStep;
  #link: DhcpLink | undefined;
  #added: string | undefined;
  address: string | undefined;

  constructor(o: SimOptions, record: (s: Omit<SimStep, "at">) => SimStep) {
    this.#o = o;
    this.#record = record;
  }

  async run(expect: Expectation): Promise<Verdict> {
    const o = this.#o;
    this.#link = await DhcpLink.open(o.iface);
    const firmware = await this.#dhcp("firmware", expect);
    if (!firmware) return this.#refusedVerdict(expect);
    this.address = await this.#useAddress(firmware);
    let bootFile: string;
    let tftpServer: string;
    if (o.arch === "mac") {
      const chosen = await this.#bsdp(firmware);
      if (!chosen) return this.#refusedVerdict(expect);
      ({ bootFile, tftpServer } = chosen);
    } else {
      const boot = firmware.boot!;
      bootFile = boot.bootFile!;
      tftpServer = boot.nextServer ?? boot.server;
    }
    if (o.arch === "uefi-http") {
      if (!bootFile.startsWith("http://")) fail(`a UEFI HTTP client was offered ${bootFile}, not an http:// URL (option 60 should say HTTPClient and the boot file be a URL)`);
      await this.#http("HEAD", bootFile, "loader size (the firmware's HEAD)");
      await this.#http("GET", bootFile, "the loader, by the firmware");
      return this.#loader(httpTransport(), bootFile, undefined, expect);
    }
    // PXE: the boot file by TFTP, as the firmware reads it.
    const blksize = o.arch === "bios" ? 1432 : o.arch === "mac" ? 1460 : 1468;
    const nbp = await this.#tftp(bootFile, tftpServer, blksize, o.arch === "bios" ? 1 : 4, "boot file");
    if (isIpxe(bootFile, nbp)) return this.#ipxe(expect);
    if (isEsxiLoader(bootFile, nbp)) {
      if (o.arch === "bios") fail(`${bootFile} is the EFI loader, but this is a BIOS client`);
      return this.#loader(tftpTransport(tftpServer), bootFile, undefined, expect);
    }
    return fail(`the boot file ${bootFile} is neither iPXE nor the ESXi loader: simulate cannot follow it further`);
  }

  cleanup(): void {
    this.#link?.close();
    if (this.#added) {
      spawnSync("ip", ["addr", "del", this.#added, "dev", this.#o.iface]);
      this.#record({ kind: "net", request: "ip addr del", detail: `${this.#added} from ${this.#o.iface}`, bytes: 0, ms: 0, ok: true });
      this.#added = undefined;
    }
  }

  // --- the steps ---

  /** DISCOVER, the OFFERs, REQUEST, ACK; undefined when no boot answer came (and none was expected). */
  async #dhcp(asker: Asker, expect: Expectation): Promise<Lease | undefined> {
    const o = this.#o;
    const link = this.#link!;
    const wait = o.dhcpWaitMs ?? 10_000;
    const xid = newXid();
    // A Mac's DHCP only gets it an address: BSDP names the boot file.
    const wantsBoot = asker !== "installer" && !(o.arch === "mac" && asker === "firmware");
    const who = asker === "ipxe" ? "iPXE" : asker === "installer" ? "the installer" : o.arch === "mac" ? "the Mac" : "the firmware";
    const discover = clientPacket({ arch: o.arch, asker, mac: o.mac, xid, type: MessageType.Discover });
    // Firmware waits a moment for a proxyDHCP answer once it has an address: give both their chance.
    let firstAt = 0;
    const start = performance.now();
    const offers = await link.ask(discover, {
      waitMs: wait,
      enough: (a) => {
        const addressed = a.some((x) => x.type === "OFFER" && x.address);
        const booted = a.some((x) => x.type === "OFFER" && x.bootFile);
        if (!firstAt && addressed) firstAt = performance.now();
        if (!wantsBoot) return addressed;
        return (addressed && booted) || (addressed && performance.now() - firstAt > 3000);
      },
    });
    const ms = performance.now() - start;
    const detail = offers.length ? offers.map(describeAnswer).join("; ") : "no answer";
    const addressOffer = prefer(offers.filter((a) => a.type === "OFFER" && a.address), o.server);
    const bootOffer = prefer(offers.filter((a) => a.type === "OFFER" && a.bootFile), o.server);
    if (!addressOffer) {
      this.#record({ kind: "DHCP", request: `DISCOVER (${who})`, detail, bytes: 0, ms, ok: false, problem: `no address offered within ${(wait / 1000).toFixed(0)} s` });
      if (wantsBoot && expect === "refused" && !offers.some((a) => a.server === o.server)) return undefined;
      return fail(offers.length ? `${who}: answers, but no address offered (${detail}): is a DHCP server on this link? (netboot --dhcp server, or proxyDHCP beside one)` : `${who}: no DHCP answer within ${(wait / 1000).toFixed(0)} s: is the server running on this link with DHCP on? (netboot doctor --iface ${o.iface}; a firewall on UDP 67?)`);
    }
    if (wantsBoot && !bootOffer) {
      this.#record({ kind: "DHCP", request: `DISCOVER (${who})`, detail, bytes: 0, ms, ok: expect !== "install" || asker === "ipxe", problem: "no boot file offered" });
      if (expect === "refused" || expect === "local") return undefined;
      return fail(`${who}: an address from ${addressOffer.server}, but no boot file from anyone: is this machine listed (deny by default)? netboot's proxyDHCP running? (${detail})`);
    }
    if (wantsBoot && bootOffer && bootOffer.server !== o.server && bootOffer.from !== o.server) {
      this.#record({ kind: "DHCP", request: `DISCOVER (${who})`, detail, bytes: 0, ms, ok: false, problem: `boot file from ${bootOffer.server}, not from ${o.server}` });
      return fail(`${who}: the boot file came from ${bootOffer.server}, not from the server under test ${o.server}: another PXE server answers this client`);
    }
    this.#record({ kind: "DHCP", request: `DISCOVER (${who})`, detail, bytes: 0, ms, ok: true });
    // REQUEST the offered address from the server that offered it.
    const rxid = newXid();
    const request = clientPacket({ arch: o.arch, asker, mac: o.mac, xid: rxid, type: MessageType.Request, requested: addressOffer.address, serverId: addressOffer.server });
    const t = performance.now();
    const acks = await link.ask(request, { waitMs: Math.min(wait, 6000), enough: (a) => a.some((x) => (x.type === "ACK" || x.type === "NAK") && x.server === addressOffer.server) });
    const ack = acks.find((a) => a.type === "ACK" && a.server === addressOffer.server);
    const nak = acks.find((a) => a.type === "NAK");
    const ackDetail = acks.length ? acks.map(describeAnswer).join("; ") : "no answer";
    if (!ack) {
      this.#record({ kind: "DHCP", request: `REQUEST ${addressOffer.address} (${who})`, detail: ackDetail, bytes: 0, ms: performance.now() - t, ok: false, problem: nak ? "NAK" : "no ACK" });
      return fail(`${who}: ${addressOffer.server} offered ${addressOffer.address} but ${nak ? "refused the REQUEST (NAK)" : "never ACKed the REQUEST"}`);
    }
    this.#record({ kind: "DHCP", request: `REQUEST ${addressOffer.address} (${who})`, detail: ackDetail, bytes: 0, ms: performance.now() - t, ok: true });
    const mask = optIp(ack.packet, Opt.SubnetMask) ?? optIp(addressOffer.packet, Opt.SubnetMask);
    // The ACK of a full server carries the boot file again; a proxy's offer is the boot answer otherwise.
    const boot = bootOffer && ack.bootFile && ack.server === bootOffer.server ? ack : bootOffer;
    return { address: ack.address ?? addressOffer.address!, prefix: mask !== undefined ? maskToPrefix(mask) : 24, server: addressOffer.server, boot };
  }

  /** The interface's own address if it has one on the link; else (root, Linux) the leased one, for the walk. */
  async #useAddress(lease: Lease): Promise<string> {
    const own = listIPv4().find((a) => a.iface === this.#o.iface);
    if (own) {
      if (own.address !== lease.address) this.#record({ kind: "net", request: "address", detail: `the walk runs from ${own.address}, ${this.#o.iface}'s own address (the leased ${lease.address} is not configured)`, bytes: 0, ms: 0, ok: true });
      return own.address;
    }
    if (process.platform !== "linux" || process.getuid?.() !== 0) {
      throw new ServiceError("E_SIM_ADDRESS", `${this.#o.iface} has no IPv4 address for the walk`, "give it one on the server's subnet, or run simulate as root on Linux (it then uses the leased address for the walk)");
    }
    const cidr = `${lease.address}/${lease.prefix}`;
    const r = spawnSync("ip", ["addr", "add", cidr, "dev", this.#o.iface], { encoding: "utf8" });
    if (r.status !== 0) throw new ServiceError("E_SIM_ADDRESS", `cannot put ${cidr} on ${this.#o.iface}: ${(r.stderr || r.error?.message || "").trim()}`);
    this.#added = cidr;
    this.#record({ kind: "net", request: "ip addr add", detail: `${cidr} on ${this.#o.iface} for the walk (taken away at the end)`, bytes: 0, ms: 0, ok: true });
    return lease.address;
  }

  /** A Mac's INFORM[LIST], then INFORM[SELECT] of the server's default image. */
  async #bsdp(lease: Lease): Promise<{ bootFile: string; tftpServer: string } | undefined> {
    const o = this.#o;
    const link = this.#link!;
    const t = performance.now();
    const lists = await link.ask(bsdpInform({ mac: o.mac, xid: newXid(), ciaddr: this.address ?? lease.address, message: "list" }), { waitMs: o.dhcpWaitMs ?? 10_000, enough: (a) => a.some((x) => x.server === o.server) });
    const ours = lists.find((a) => a.server === o.server && a.type === "ACK");
    const list = ours ? bsdpOf(ours.packet) : undefined;
    const detail = lists.length ? lists.map((a) => `${a.type} from ${a.server}${bsdpOf(a.packet)?.images ? `: ${bsdpOf(a.packet)!.images!.map((i) => `"${i.name}"`).join(", ")}` : ""}`).join("; ") : "no answer";
    if (!ours || !list?.images?.length) {
      this.#record({ kind: "BSDP", request: "INFORM[LIST]", detail, bytes: 0, ms: performance.now() - t, ok: this.#o.expect === "refused", problem: ours ? "no images listed" : `no ACK[LIST] from ${o.server}` });
      if (this.#o.expect === "refused") return undefined;
      return fail(ours ? `${o.server} answered the Mac's INFORM[LIST] with no image` : `no BSDP answer from ${o.server}: BSDP off (--no-bsdp), this Mac not listed, or --dhcp off without --iface?`);
    }
    this.#record({ kind: "BSDP", request: "INFORM[LIST]", detail, bytes: 0, ms: performance.now() - t, ok: true });
    const image = list.defaultImage ?? list.images[0]!.id;
    const t2 = performance.now();
    const selects = await link.ask(bsdpInform({ mac: o.mac, xid: newXid(), ciaddr: this.address ?? lease.address, message: "select", serverId: o.server, image }), { waitMs: o.dhcpWaitMs ?? 10_000, enough: (a) => a.some((x) => x.server === o.server) });
    const ack = selects.find((a) => a.server === o.server && a.type === "ACK");
    const bootFile = ack?.bootFile;
    if (!ack || !bootFile) {
      this.#record({ kind: "BSDP", request: `INFORM[SELECT] image 0x${image.toString(16)}`, detail: selects.map(describeAnswer).join("; ") || "no answer", bytes: 0, ms: performance.now() - t2, ok: false, problem: "no boot file" });
      return fail(`${o.server} did not give the Mac a boot file for image ${image}`);
    }
    this.#record({ kind: "BSDP", request: `INFORM[SELECT] image 0x${image.toString(16)}`, detail: describeAnswer(ack), bytes: 0, ms: performance.now() - t2, ok: true });
    return { bootFile, tftpServer: ack.nextServer ?? o.server };
  }

  /** A file by TFTP as edk2 reads it: the size query, then the read, the size checked. */
  async #tftp(name: string, server: string, blksize: number, windowsize: number, what: string): Promise<Uint8Array> {
    const t = performance.now();
    let size: number;
    try {
      size = await tftpSize(name, { server, blksize });
    } catch (err) {
      this.#record({ kind: "TFTP", request: "size", detail: `${name} from ${server}`, bytes: 0, ms: performance.now() - t, ok: false, problem: (err as Error).message });
      return fail(`TFTP ${name} from ${server}: ${(err as Error).message}`);
    }
    this.#record({ kind: "TFTP", request: "size", detail: `${name} from ${server}: ${size} bytes`, bytes: 0, ms: performance.now() - t, ok: true });
    const t2 = performance.now();
    try {
      const r = await tftpRead(name, { server, blksize, windowsize });
      const ok = r.bytes.length === size;
      this.#record({ kind: "TFTP", request: "read", detail: `${name} (${what}), blksize ${r.oack?.get("blksize") ?? 512}`, bytes: r.bytes.length, ms: performance.now() - t2, ok, problem: ok ? undefined : `tsize said ${size}, ${r.bytes.length} bytes came` });
      if (!ok) fail(`TFTP ${name}: the size query said ${size} bytes, the read gave ${r.bytes.length}`);
      return r.bytes;
    } catch (err) {
      this.#record({ kind: "TFTP", request: "read", detail: name, bytes: 0, ms: performance.now() - t2, ok: false, problem: (err as Error).message });
      return fail(`TFTP ${name} from ${server}: ${(err as Error).message}`);
    }
  }

  /** One HTTP request as strict as the loader; the body (empty for HEAD) and the Content-Length. */
  async #http(method: "HEAD" | "GET", url: string, what: string, userAgent?: string): Promise<{ body: Uint8Array; length: number }> {
    const t = performance.now();
    try {
      const r = await strictFetch(method, url, { userAgent });
      this.#record({ kind: "HTTP", request: method, detail: `${url} (${what}): ${r.length} bytes`, bytes: r.body.length, ms: performance.now() - t, ok: true });
      return r;
    } catch (err) {
      const problem = (err as Error).message.replace(`${url}: `, "");
      this.#record({ kind: "HTTP", request: method, detail: `${url} (${what})`, bytes: 0, ms: performance.now() - t, ok: false, problem });
      return fail(`${method} ${url}: ${problem}`);
    }
  }

  /** iPXE: its own DHCP, its script, and what the script does. */
  async #ipxe(expect: Expectation): Promise<Verdict> {
    const lease = await this.#dhcp("ipxe", expect);
    const file = lease?.boot?.bootFile;
    if (!lease || !file) return fail("iPXE got no boot file in its own DHCP: the server should hand iPXE (user class iPXE) a script URL");
    let scriptBytes: Uint8Array;
    if (file.startsWith("http://")) scriptBytes = (await this.#http("GET", file, "iPXE script", "iPXE/1.21.1")).body;
    else scriptBytes = await this.#tftp(file, lease.boot!.nextServer ?? lease.boot!.server, 1432, 1, "iPXE script");
    const settings: Record<string, string> = {
      mac: this.#o.mac,
      "mac:hexhyp": macDirName(this.#o.mac).slice(3),
      ip: this.address ?? "",
      "next-server": lease.boot!.nextServer ?? "",
      filename: file,
      platform: this.#o.arch === "bios" ? "pcbios" : "efi",
      buildarch: this.#o.arch === "bios" ? "i386" : "x86_64",
    };
    const run = runIpxeScript(new TextDecoder().decode(scriptBytes), settings);
    for (const e of run.echoed) this.#record({ kind: "iPXE", request: "echo", detail: e, bytes: 0, ms: 0, ok: true });
    const out = run.outcome;
    switch (out.kind) {
      case "exit":
        this.#record({ kind: "iPXE", request: "exit", detail: "the script ends iPXE: the firmware boots the next device (its disk)", bytes: 0, ms: 0, ok: expect === "local" });
        if (expect === "local") return new Verdict(true, "the server sends this machine to its own disk (iPXE script: exit), as expected");
        return fail("the server sends this machine to its own disk (iPXE script: exit): mode local, or installed in mode once (netboot hosts rearm MAC)");
      case "chain": {
        this.#record({ kind: "iPXE", request: "chain", detail: out.line, bytes: 0, ms: 0, ok: true });
        if (!out.url.startsWith("http://")) return fail(`the script chains ${out.url}: simulate follows http:// URLs only`);
        const c = out.args.indexOf("-c");
        await this.#http("GET", out.url, "the loader, by iPXE", "iPXE/1.21.1");
        return this.#loader(httpTransport(), out.url, c >= 0 ? out.args[c + 1] : undefined, expect);
      }
      case "sanboot":
        this.#record({ kind: "iPXE", request: "sanboot", detail: out.line, bytes: 0, ms: 0, ok: true });
        return this.#disc(out.url, expect);
      case "stuck":
        this.#record({ kind: "iPXE", request: "script", detail: file, bytes: 0, ms: 0, ok: false, problem: out.why });
        return fail(`iPXE's script: ${out.why}`);
    }
  }

  /** The ESXi loader's walk, then the installer. */
  async #loader(transport: LoaderTransport, bootFile: string, config: string | undefined, expect: Expectation): Promise<Verdict> {
    const walk = await walkLikeMboot({ transport, bootFile, mac: this.#o.mac, config, kickstart: false, onStep: (s) => this.#walkStep(s) });
    if (!walk.ok) {
      const bad = walk.steps.find((s) => !s.ok);
      return fail(`the loader's walk failed at ${bad?.request ?? "?"} ${bad?.path ?? ""}: ${bad?.problem ?? "?"}`);
    }
    const where = transport.kind === "tftp" ? `TFTP (prefix=${walk.prefix || dirOf(walk.configPath ?? "")})` : "HTTP";
    return this.#installer(walk.kernelopt, `${walk.files.length} files over ${where}, ${formatMiB(walk.bytes)}`, expect);
  }

  /** BIOS: the disc image by HTTP ranges as iPXE's SAN CD-ROM reads it, then BOOT.CFG and its modules. */
  async #disc(url: string, expect: Expectation): Promise<Verdict> {
    const size = (await this.#http("HEAD", url, "disc image size")).length;
    let requests = 0;
    let bytes = 0;
    const read = async (offset: number, length: number) => {
      const end = Math.min(size, offset + length);
      if (end <= offset) return new Uint8Array(0);
      requests++;
      const r = await strictFetch("GET", url, { range: [offset, end], userAgent: "iPXE/1.21.1" });
      bytes += r.body.length;
      return r.body;
    };
    const t = performance.now();
    let iso: IsoImage;
    try {
      iso = await IsoImage.open({ size, read });
    } catch (err) {
      this.#record({ kind: "disc", request: "open", detail: url, bytes, ms: performance.now() - t, ok: false, problem: (err as Error).message });
      return fail(`${url} is not an ISO 9660 image: ${(err as Error).message}`);
    }
    if (!iso.elTorito) fail(`${url} has no El Torito boot record: BIOS cannot boot it`);
    const cfgEntry = await iso.lookup("/BOOT.CFG");
    if (!cfgEntry) fail(`${url} has no BOOT.CFG`);
    const cfgText = new TextDecoder().decode(await iso.read(cfgEntry!));
    this.#record({ kind: "disc", request: "read", detail: `El Torito boot record, BOOT.CFG (${cfgEntry!.size} bytes), ${requests} range requests`, bytes, ms: performance.now() - t, ok: true });
    const cfg = parseBootCfg(cfgText);
    const kernel = getBootCfgValue(cfg, "kernel");
    if (!kernel) fail("the disc's BOOT.CFG has no kernel=");
    const names = [kernel!, ...splitModules(getBootCfgValue(cfg, "modules") ?? "")].map((m) => m.split(/\s+/)[0]!);
    const t2 = performance.now();
    const before = { requests, bytes };
    for (const name of names) {
      const e = await iso.lookup("/" + name.replace(/^[/\\]+/, ""));
      if (!e || e.type !== "file") {
        this.#record({ kind: "disc", request: "read", detail: name, bytes: 0, ms: 0, ok: false, problem: "not on the disc" });
        return fail(`BOOT.CFG names ${name}, which is not on the disc`);
      }
      await iso.read(e);
    }
    this.#record({ kind: "disc", request: "read", detail: `kernel and ${names.length - 1} modules as mboot.c32 reads them from the CD, ${requests - before.requests} range requests`, bytes: bytes - before.bytes, ms: performance.now() - t2, ok: true });
    return this.#installer(getBootCfgValue(cfg, "kernelopt") ?? "", `${names.length} files from the disc image, ${formatMiB(bytes)}`, expect);
  }

  /** The installed system: its DHCP, then its kickstart, and done_url when asked. */
  async #installer(kernelopt: string, loaded: string, expect: Expectation): Promise<Verdict> {
    if (expect !== "install") return fail(`the server boots this machine into the installer (${loaded}), but ${expect === "local" ? "a boot from its disk" : "no boot answer"} was expected`);
    await this.#dhcp("installer", expect);
    const ks = /(?:^|\s)ks=(\S+)/.exec(kernelopt)?.[1];
    if (!ks) return new Verdict(true, `PASS: the loader got ${loaded}; no ks= in kernelopt: the interactive installer starts`);
    if (!ks.startsWith("http://")) return new Verdict(true, `PASS: the loader got ${loaded}; ks=${ks} is not fetched by simulate`);
    const text = new TextDecoder().decode((await this.#http("GET", ks, "kickstart, by the installer", "esx-boot/2.0")).body);
    if (!/^\s*(vmaccepteula|accepteula)\b/m.test(text)) fail(`${ks} does not look like an ESXi kickstart (no vmaccepteula line)`);
    if (this.#o.reportDone) {
      const done = /https?:\/\/[^\s"']+\/done\?token=[0-9a-f]+/.exec(text)?.[0];
      if (!done) fail("--report-done: the kickstart has no done_url to call");
      await this.#http("GET", done!, "done_url, as the kickstart's %post calls it", "Wget");
      return new Verdict(true, `PASS: the loader got ${loaded}, the installer its kickstart, and done_url was called`);
    }
    return new Verdict(true, `PASS: the loader got ${loaded}, the installer its kickstart (${text.length} bytes)`);
  }

  #walkStep(s: WalkStep): void {
    const kind = s.request.startsWith("TFTP") ? "TFTP" : "HTTP";
    this.#record({ kind, request: s.request.replace(/^TFTP /, ""), detail: `${s.path} (${s.what})`, bytes: s.bytes, ms: s.ms, ok: s.ok, problem: s.problem });
  }

  #refusedVerdict(expect: Expectation): Verdict {
    if (expect === "refused") return new Verdict(true, "the server gives this machine no boot answer, as expected");
    if (expect === "local") return new Verdict(true, "the server gives this machine no boot answer: the firmware goes on to its disk, as expected");
    return fail("no boot answer");
  }
}

/** The answer from the server under test when it gave one, else the first. */
function prefer(answers: Answer[], server: string): Answer | undefined {
  return answers.find((a) => a.server === server || a.from === server) ?? answers[0];
}

function isIpxe(name: string, bytes: Uint8Array): boolean {
  if (/(^|\/)(undionly|snponly|ipxe|snp)[^/]*\.(kpxe|efi|pxe)$/i.test(name)) return true;
  return indexOf(bytes, "ipxe.org") >= 0;
}

function isEsxiLoader(name: string, bytes: Uint8Array): boolean {
  return /(mboot|bootx64)\.efi$/i.test(name) || (bytes[0] === 0x4d && bytes[1] === 0x5a);
}

function indexOf(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let k = 0; k < needle.length; k++) if (bytes[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

function formatMiB(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}
