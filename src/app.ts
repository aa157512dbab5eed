/**
 * Composition root: the one module that knows every service. startApp is a short list of named steps:
 * open the images, build the host book and registry, then HTTP, the boot namespace and the policy, TFTP
 * and DHCP/BSDP, each emitting into the one event bus; close() undoes them in reverse.
 */
import { createBootFiles, type BootFiles, type ClientHint } from "./boot/files.ts";
import { bootBytes, imageNameFromSource, loadImage, type BootImage } from "./boot/image.ts";
import { renderTemplate } from "./boot/kickstart.ts";
import { IPXE_EFI, decideBoot, firmwareOf, type HostSnapshot, type PolicyConfig } from "./boot/policy.ts";
import type { BootClient, BootDecision } from "./boot/types.ts";
import { bsdpCatalog } from "./bsdp/catalog.ts";
import type { BootImage as BsdpImage } from "./bsdp/options.ts";
import { bsdpOfferExtension, bsdpResponder, type BsdpConfig } from "./bsdp/responder.ts";
import { openSelectionStore, type SelectionStore } from "./bsdp/selections.ts";
import { httpBase, type DhcpMode, type ServeConfig } from "./config.ts";
import { LeasePool, type Lease } from "./dhcp/leases.ts";
import { COMPACT_AFTER, openLeaseStore, type LeaseStore } from "./dhcp/lease-store.ts";
import { Opt } from "./dhcp/constants.ts";
import { optString, type DhcpPacket } from "./dhcp/packet.ts";
import { probeDhcpServers } from "./dhcp/probe.ts";
import { proxyResponder, serverResponder, type Responder, type ScopedPool } from "./dhcp/responders.ts";
import { startDhcpServer, type DhcpExchange, type DhcpServerHandle } from "./dhcp/server.ts";
import { ConfigError, ServiceError } from "./errors.ts";
import { EventBus } from "./events.ts";
import { ContentCache } from "./files/cache.ts";
import { loadIpxeBinaries, type IpxeBinaries } from "./files/ipxe.ts";
import { openTree } from "./files/open.ts";
import { createHttpApp, type HttpRequest, type HttpResponse } from "./http/handler.ts";
import { startHttpServer, type HttpServerHandle } from "./http/server.ts";
import { hostsApi, type StatusInfo } from "./hosts/api.ts";
import { HintWatcher } from "./hosts/explain.ts";
import { bookFromFlags, bookFromLab, type HostBook } from "./hosts/book.ts";
import type { LabFile } from "./hosts/lab.ts";
import { HostRegistry } from "./hosts/registry.ts";
import { openSignedLoaderMemory, type SignedLoaderMemory } from "./hosts/signed-loader.ts";
import { kickstartVariables } from "./hosts/variables.ts";
import { recordingLogger, type Logger, type Warning } from "./log.ts";
import { interfaceAddress, listIPv4 } from "./net/interfaces.ts";
import { Neighbors } from "./net/neighbors.ts";
import { platformMaxBlksize } from "./tftp/negotiate.ts";
import { startTftpServer, type TftpServerHandle } from "./tftp/server.ts";
import { statusPage } from "./ui/page.ts";
import { formatIPv4, inSubnet, parseIPv4, subnetOf } from "./wire/ipv4.ts";
import { parseMac, type Mac } from "./wire/mac.ts";

export interface AppHandle {
  readonly config: ServeConfig;
  readonly images: readonly BootImage[];
  readonly files: BootFiles;
  readonly http: HttpServerHandle;
  readonly tftp: TftpServerHandle | undefined;
  readonly dhcp: DhcpServerHandle | undefined;
  /** What --dhcp auto decided (or the mode given). */
  readonly dhcpMode: DhcpMode;
  /** What Macs see in their picker, when BSDP is answered. */
  readonly bsdp: { images: readonly BsdpImage[]; selections: string } | undefined;
  /** "http://IP[:PORT]" as clients see it (with the port actually bound). */
  readonly httpBase: string;
  readonly ipxe: IpxeBinaries;
  /** Every server emits here (events.ts). */
  readonly bus: EventBus;
  readonly hosts: HostRegistry;
  /** Which MAC is behind an address: learned from DHCP, else the ARP table (a simulated client on loopback tells it here). */
  readonly neighbors: Neighbors;
  /** What each machine's state means when it looks stuck, and the link as a whole (hosts/explain.ts). */
  readonly hints: HintWatcher;
  /** The last warnings and errors logged (the status page). */
  readonly warnings: readonly Warning[];
  /** The app's logger: what is logged here as a warning shows on the status page too. */
  readonly log: Logger;
  /** The link served ("eth1"), when known. */
  readonly iface: string | undefined;
  /** Mode, interface, images, BSDP: what the status page and the terminal footer show. */
  status(): StatusInfo;
  /** The boot policy with this app's settings and the host's snapshot (tests, the status page). */
  decide(client: BootClient): BootDecision;
  close(): Promise<void>;
}

export interface AppOptions {
  /** The lab file, already read and checked (cli/serve.ts). */
  lab?: LabFile | undefined;
  /** A bus to emit into (the CLI's, already subscribed); a new one otherwise. */
  bus?: EventBus;
}

export async function startApp(config: ServeConfig, baseLog: Logger, options: AppOptions = {}): Promise<AppHandle> {
  const cleanups: Cleanups = [];
  const warnings: Warning[] = [];
  const log = recordingLogger(baseLog, warnings);
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    const ctx = await prepare(config, log, options, cleanups);
    const web = await startHttp(ctx);
    const boot = bootPolicy(ctx, web.base);
    const files = bootNamespace(ctx, boot, web.base);
    let mode: DhcpMode = config.dhcp.mode;
    const hints = new HintWatcher({ hosts: ctx.hosts, bus: ctx.bus, log: log.child("hosts"), mode: () => mode });
    cleanups.push(() => hints.close());
    let status: () => StatusInfo = () => ({ mode, iface: config.iface, httpBase: web.base, images: [], bsdp: false, tftp: config.tftp.enabled, secureBoot: config.boot.secureBoot });
    web.serve(
      createHttpApp({
        files,
        macForAddress: (a) => ctx.neighbors.lookup(a),
        api: hostsApi({ hosts: ctx.hosts, bus: ctx.bus, log: log.child("api"), status: () => status(), hints, warnings, page: statusPage }),
      }),
    );
    log.info(`HTTP on ${config.bind}:${web.http.port}; clients use ${ctx.images.map((i) => `${web.base}/${i.name}/`).join(", ")}`);
    const tftp = await startTftp(ctx, files);
    const dhcp = await startDhcp(ctx, boot, files);
    mode = dhcp.mode;
    const iface = config.iface ?? listIPv4().find((a) => a.address === config.ip)?.iface;
    const bootSizes = new Map<string, number | undefined>();
    for (const i of ctx.images) bootSizes.set(i.name, await bootBytes(i));
    ctx.hosts.setBootBytes((name) => bootSizes.get(name));
    status = () => ({
      mode,
      iface,
      httpBase: web.base,
      images: ctx.images.map((i) => ({ name: i.name, title: i.esxi?.displayName ?? i.tree.kind, source: i.tree.description, bootBytes: bootSizes.get(i.name) })),
      bsdp: dhcp.bsdp !== undefined,
      tftp: tftp !== undefined,
      secureBoot: config.boot.secureBoot,
    });
    return {
      config,
      images: ctx.images,
      files,
      http: web.http,
      tftp,
      dhcp: dhcp.server,
      dhcpMode: dhcp.mode,
      bsdp: dhcp.bsdp,
      httpBase: web.base,
      ipxe: ctx.ipxe,
      bus: ctx.bus,
      hosts: ctx.hosts,
      neighbors: ctx.neighbors,
      hints,
      warnings,
      log,
      iface,
      status: () => status(),
      decide: boot.decide,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

type Cleanups = Array<() => Promise<void> | void>;

/** What the steps share: the images, the hosts, and what the servers learn about clients. */
interface Context {
  config: ServeConfig;
  log: Logger;
  lab: LabFile | undefined;
  bus: EventBus;
  cleanups: Cleanups;
  images: BootImage[];
  book: HostBook;
  hosts: HostRegistry;
  ipxe: IpxeBinaries;
  cache: ContentCache | undefined;
  /** Which MAC is behind an address (DHCP, ARP). */
  neighbors: Neighbors;
  /** MAC → the address netboot leased it (server mode). */
  leases: Map<Mac, string>;
  /** MACs that spoke BSDP: Mac firmware, whose TFTP client needs blocks of 1460 bytes or less. */
  macFirmware: Set<Mac>;
  /** UEFI hosts whose iPXE never started (Secure Boot): they get the signed ESXi loader. */
  signedLoader: SignedLoaderMemory;
  /** The Macs' picker: their remembered choices and the ids of the images (set when BSDP is answered). */
  bsdp: { selections: SelectionStore | undefined; ids: BsdpImage[] };
}

interface BootPolicy {
  policy: PolicyConfig;
  snapshot(mac: Mac): HostSnapshot;
  decide(c: BootClient): BootDecision;
}

/** Images, the host book and registry, iPXE: everything before a socket opens. */
async function prepare(config: ServeConfig, log: Logger, options: AppOptions, cleanups: Cleanups): Promise<Context> {
  const bus = options.bus ?? new EventBus();
  const images = await openImages(config, log, cleanups);
  const book = buildBook(config, options.lab, images);
  const hosts = new HostRegistry(book, config.stateDir, bus, log.child("hosts"));
  cleanups.push(() => hosts.close());
  describeBook(book, log);
  return {
    config,
    log,
    lab: options.lab,
    bus,
    cleanups,
    images,
    book,
    hosts,
    ipxe: await loadIpxe(config, log),
    cache: config.cacheMem > 0 ? new ContentCache(config.cacheMem) : undefined,
    neighbors: new Neighbors(),
    leases: new Map(),
    macFirmware: new Set(),
    signedLoader: openSignedLoaderMemory(config.stateDir, log.child("boot")),
    bsdp: { selections: undefined, ids: [] },
  };
}

/** HTTP binds first, so the URLs handed out carry the port really bound (port 0 in tests). */
async function startHttp(ctx: Context): Promise<{ http: HttpServerHandle; base: string; serve(app: (req: HttpRequest) => Promise<HttpResponse>): void }> {
  const { config, bus, neighbors } = ctx;
  let app: ((req: HttpRequest) => Promise<HttpResponse>) | undefined;
  const http = await startHttpServer({
    cache: ctx.cache,
    app: (req) => {
      const path = req.target.split("?")[0]!;
      if (!isOperatorPath(path)) bus.emit({ type: "http.start", ip: req.remoteAddress, mac: req.remoteAddress ? neighbors.lookup(req.remoteAddress) : undefined, method: req.method, path });
      return app ? app(req) : Promise.reject(new Error("starting up"));
    },
    host: config.bind,
    port: config.http.port,
    log: ctx.log.child("http"),
    limits: config.http.limits,
    onRequest: (e) => {
      // The status page and the API are the operator's, not a client's boot (and the page follows the bus).
      if (isOperatorPath(e.path)) return;
      // A module's path names no MAC: the address does.
      bus.emit({ type: "http.end", ip: e.client, mac: e.mac ?? neighbors.lookup(e.client), method: e.method, path: e.path, status: e.status, bytes: e.bytes, what: e.what, note: e.note, aborted: e.aborted || undefined });
      if (e.mac && e.path === "/boot.ipxe") ctx.signedLoader.ipxeStarted(e.mac);
    },
    onAbort: (e) => {
      if (isOperatorPath(e.path)) return;
      bus.emit({ type: "http.abort", ip: e.client, mac: e.mac ?? neighbors.lookup(e.client), method: e.method, path: e.path, bytes: e.bytes, what: e.what });
    },
    // Bun.serve sends a stream chunked whatever Content-Length says, and mboot trusts Content-Length: a
    // source whose bytes are not in local files (a URL) is served by node:http, which keeps the length.
    runtime: config.http.edge ?? (ctx.images.every((i) => i.tree.local) ? undefined : "node"),
  });
  ctx.cleanups.push(() => http.close());
  return { http, base: httpBase(config.ip, http.port), serve: (a) => (app = a) };
}

/** The status page, the API and the metrics: requests of the operator (and CI), not of a booting client. */
function isOperatorPath(path: string): boolean {
  return path === "/" || path === "/metrics" || path === "/favicon.ico" || path.startsWith("/api/");
}

/** The boot policy, one for every protocol, asked with the host's snapshot. */
function bootPolicy(ctx: Context, base: string): BootPolicy {
  const { config, hosts, book, images, signedLoader } = ctx;
  const policy: PolicyConfig = {
    images,
    httpBase: base,
    ipxe: { undionly: ctx.ipxe.files.has("undionly.kpxe") && !config.ipxe.disabled, snponly: ctx.ipxe.files.has("snponly.efi") && !config.ipxe.disabled },
    noIpxe: config.ipxe.disabled,
    secureBoot: config.boot.secureBoot,
    macBootFile: config.bsdp.bootFile === IPXE_EFI ? undefined : config.bsdp.bootFile,
  };
  const snapshot = (mac: Mac): HostSnapshot => {
    const s: HostSnapshot = { ...hosts.snapshot(mac), signedLoader: signedLoader.reason(mac) };
    // A Mac's own choice in its picker names the image, unless the lab file gives the host one.
    const chosen = ctx.bsdp.selections?.get(mac);
    const picked = chosen !== undefined ? images[ctx.bsdp.ids.findIndex((b) => b.id === chosen)] : undefined;
    if (picked && !(ctx.lab && book.lookup(mac))) s.image = picked.name;
    return s;
  };
  const decide = (c: BootClient): BootDecision => {
    signedLoader.dhcp(c.mac, firmwareOf(c));
    const d = decideBoot(c, snapshot(c.mac), policy);
    if (d.action === "boot") hosts.note(c.mac, `boot ${d.file}`, false);
    else if (d.action === "local") hosts.note(c.mac, `boots from its own disk (${d.reason})`);
    else if (!d.reason.startsWith("not a network-boot request")) hosts.note(c.mac, `no boot answer (${d.reason})`, book.listed);
    else if (!hosts.get(c.mac)?.phase) hosts.note(c.mac, "not network-booting (a plain DHCP client)", false);
    return d;
  };
  return { policy, snapshot, decide };
}

/** The boot namespace: the images' files, boot.cfg per host and route, kickstarts, the iPXE script. */
function bootNamespace(ctx: Context, boot: BootPolicy, base: string): BootFiles {
  const { config, book, hosts, images, neighbors, leases, bus } = ctx;
  const ipxeClient = (mac: Mac): BootClient => ({ mac, arch: undefined, vendorClass: undefined, userClass: ["iPXE"], ipxeOptions: true, uuid: undefined, relayed: false });
  const site = { base, netmask: formatIPv4(subnetOf(parseIPv4(config.ip), config.prefix ?? 24).mask), gateway: config.dhcp.router, dns: config.dhcp.dns };
  const refuse = (mac: Mac, image: BootImage, why: string) => {
    ctx.log.child("hosts").warn(`${mac}: kickstart refused: ${why}`);
    bus.emit({ type: "ks.served", mac, image: image.name, refused: why });
    return { refused: why };
  };
  const kickstartFor = async (mac: Mac | undefined, image: BootImage, client: ClientHint): Promise<Uint8Array | { refused: string }> => {
    if (!mac) {
      // --allow-any: the one kickstart for whoever asks (no per-host variables: there is no host).
      const any = book.unlisted === "kickstart" ? book.fallback.kickstart : undefined;
      if (!any) return { refused: "no MAC in the path: ask for /NAME/01-<mac>/ks.cfg" };
      return new TextEncoder().encode(renderTemplate(any.text, { ...kickstartVariables(undefined, "" as Mac, image.name, site, undefined, ""), done_url: "", failed_url: "" }));
    }
    const { entry, why } = hosts.armed(mac);
    if (why) return refuse(mac, image, why);
    // A listed host's kickstart goes only to the machine itself: the address its lease (or the neighbour
    // table) ties to that MAC. (--allow-any hands the kickstart to anyone anyway.)
    const from = client.address;
    if (entry && (!from || (neighbors.lookup(from) !== mac && leases.get(mac) !== from))) return refuse(mac, image, `asked from ${from ?? "?"}, which is not ${mac}'s address`);
    const source = entry?.kickstart ?? book.fallback.kickstart;
    if (!source) return refuse(mac, image, "no kickstart for it");
    const text = renderTemplate(source.text, kickstartVariables(entry, mac, image.name, site, leases.get(mac), hosts.token(mac)));
    bus.emit({ type: "ks.served", mac, ip: from, image: image.name, refused: undefined });
    return new TextEncoder().encode(text);
  };
  // A boot.cfg handed to a host, over either protocol, is an event of its own.
  bus.subscribe((e) => {
    if (!e.mac || (e.type !== "http.end" && e.type !== "tftp.end") || e.what !== "boot.cfg") return;
    if (e.type === "http.end" ? e.status !== 200 : e.outcome !== "sent") return;
    const path = (e.type === "tftp.end" ? e.file : e.path).replace(/^\/+/, "").toLowerCase();
    const image = images.find((i) => path.startsWith(`${i.name.toLowerCase()}/`))?.name ?? images[0]!.name;
    bus.emit({ type: "bootcfg.served", mac: e.mac, ip: e.ip, image, via: e.type === "tftp.end" ? "tftp" : "http" });
  });
  return createBootFiles({
    images,
    httpBase: base,
    kickstart: book.hosts.some((h) => h.kickstart) || book.fallback.kickstart ? kickstartFor : undefined,
    hasKickstart: (mac) => (mac ? hosts.armed(mac).why === undefined : book.unlisted === "kickstart"),
    ipxeDecision: (mac) => (mac ? boot.decide(ipxeClient(mac)) : decideBoot(ipxeClient("00:00:00:00:00:00" as Mac), book.listed ? { refused: "this server does not know the client's MAC" } : {}, boot.policy)),
    imageFor: (mac) => images.find((i) => i.name === (mac ? boot.snapshot(mac).image : undefined)) ?? images[0],
    keepCdromBoot: config.boot.keepCdromBoot,
    extraKernelopt: config.boot.extraKernelopt,
    ipxe: ctx.ipxe.files,
    tftpBlksize: config.tftp.enabled ? Math.min(config.tftp.maxBlksize, BOOTCFG_TFTP_BLKSIZE, platformMaxBlksize(process.platform)) : undefined,
  });
}

/** TFTP: the same namespace as HTTP. */
async function startTftp(ctx: Context, files: BootFiles): Promise<TftpServerHandle | undefined> {
  const { config, bus, neighbors, signedLoader } = ctx;
  if (!config.tftp.enabled) return undefined;
  const tftp = await startTftpServer({
    files,
    host: config.bind,
    port: config.tftp.port,
    log: ctx.log.child("tftp"),
    maxBlksize: config.tftp.maxBlksize,
    maxWindowsize: config.tftp.maxWindowsize,
    cache: ctx.cache,
    runtime: config.udp,
    onStart: (s) => bus.emit({ type: "tftp.start", ip: s.client.address, mac: s.mac, client: `${s.client.address}:${s.client.port}`, file: s.file, size: s.data.size, blksize: s.granted.blksize, windowsize: s.granted.windowsize }),
    onTransfer: (e) => {
      if (e.outcome === "sent" && e.mac && e.file.replace(/^\/+/, "").toLowerCase() === IPXE_EFI) signedLoader.ipxeSent(e.mac);
      bus.emit({ type: "tftp.end", ip: e.client.split(":")[0], mac: e.mac, client: e.client, file: e.file, outcome: e.outcome, bytes: e.bytes, seconds: e.seconds, retransmits: e.retransmits, reason: e.reason, what: e.what });
    },
    clientInfo: (a) => {
      const mac = neighbors.lookup(a);
      return { mac, maxBlksize: mac && ctx.macFirmware.has(mac) ? MAC_FIRMWARE_BLKSIZE : undefined };
    },
    engine: config.tftp.engine,
  });
  ctx.cleanups.push(() => tftp.close());
  // How far each running transfer is, once a second: the operator's progress bars move during a big module.
  const sent = new Map<string, number>();
  const timer = setInterval(() => {
    const running = tftp.transfers();
    const keys = new Set<string>();
    for (const t of running) {
      const key = `${t.client} ${t.file}`;
      keys.add(key);
      if (sent.get(key) === t.bytes) continue;
      sent.set(key, t.bytes);
      bus.emit({ type: "tftp.progress", ip: t.client.split(":")[0], mac: t.mac, client: t.client, file: t.file, bytes: t.bytes, size: t.size });
    }
    for (const k of sent.keys()) if (!keys.has(k)) sent.delete(k);
  }, 1000);
  timer.unref?.();
  ctx.cleanups.push(() => clearInterval(timer));
  ctx.log.info(`TFTP on ${config.bind}:${tftp.port} (${tftp.engine})`);
  return tftp;
}

/** DHCP server, proxyDHCP or BSDP alone, with the responders for the mode --dhcp chose or auto found. */
async function startDhcp(ctx: Context, boot: BootPolicy, files: BootFiles): Promise<{ server: DhcpServerHandle | undefined; mode: DhcpMode; bsdp: AppHandle["bsdp"] }> {
  const { config, log, neighbors, images, book } = ctx;
  let mode: DhcpMode = config.dhcp.mode;
  // With --dhcp off, BSDP may still answer alone, but only on a link named with --iface.
  const bsdpOn = config.bsdp.enabled && (mode !== "off" || config.iface !== undefined);
  if (config.bsdp.enabled && !bsdpOn) log.info("BSDP not answered: --dhcp off without --iface (give --iface to answer Macs, or --no-bsdp)");
  if (mode === "off" && !bsdpOn) return { server: undefined, mode, bsdp: undefined };
  const serverIp = parseIPv4(config.ip);
  const link = resolveLink(config);
  if (mode !== "off") mode = await chooseDhcpMode(config, link, serverIp, log.child("dhcp"));
  if (link.iface && typeof Bun === "undefined" && listIPv4().filter((a) => !a.address.startsWith("127.")).length > 1 && !config.dhcp.force) {
    // No FFI under Node: the socket on 0.0.0.0:67 hears every link and cannot tell them apart.
    throw new ServiceError(
      "E_DHCP_NODE_IFACE",
      `under Node the DHCP socket cannot be tied to ${link.iface}, and this machine has several interfaces: it would answer on all of them`,
      "run the Bun build (dist/netboot-*) or pass --force if every link may be answered",
    );
  }
  const responders: Responder[] = [];
  let bsdp: BsdpConfig | undefined;
  let bsdpInfo: AppHandle["bsdp"];
  if (bsdpOn) {
    const selections = openSelectionStore(config.stateDir);
    const ids = bsdpCatalog(images.map((i) => ({ name: i.name, label: i.esxi?.displayName ?? i.name })));
    ctx.bsdp = { selections, ids };
    bsdp = {
      serverIp,
      images: ids,
      defaultImage: ids[0]!.id,
      priority: config.bsdp.priority,
      selections,
      decide: boot.decide,
      onMac: (mac, address) => {
        ctx.macFirmware.add(mac);
        if (address) neighbors.learn(address, mac);
      },
      foldIntoOffers: mode === "server",
    };
    responders.push(bsdpResponder(bsdp));
    bsdpInfo = { images: ids, selections: selections.path };
    const found = await files.resolve(config.bsdp.bootFile.split("/"));
    if (found.kind !== "file") log.warn(`BSDP: Macs are told to boot ${config.bsdp.bootFile}, which is not served (${found.kind === "missing" ? found.reason : "not a file"}); see --mac-bootfile`);
    log.info(`BSDP: Macs see ${ids.map((b) => `"${b.name}"`).join(", ")}, priority ${config.bsdp.priority}, boot ${config.bsdp.bootFile}; ${selections.size} remembered selection(s) in ${selections.path}`);
  }
  let commit: (() => Promise<void>) | undefined;
  if (mode === "server") {
    const { scoped, store } = buildPools(config, link, serverIp, book, log.child("dhcp"));
    ctx.cleanups.push(() => {
      store.compact(scoped.flatMap((s) => s.pool.all()));
      store.close();
    });
    // An ACK goes out once its lease is on disk (one fsync for all the ACKs of a turn).
    commit = () => store.sync();
    responders.push(
      serverResponder({
        serverIp,
        // A relay's address (giaddr) picks the pool of its subnet; that may be our own link too (a relay
        // agent on the same segment, or perfdhcp, which speaks as one).
        poolFor: (p) => (p.giaddr ? scoped.find((s) => inSubnet(p.giaddr, s.net.subnet)) : scoped.find((s) => !s.relayed)),
        decide: boot.decide,
        onBound: (mac, ip) => {
          neighbors.learn(formatIPv4(ip), mac);
          ctx.leases.set(mac, formatIPv4(ip));
        },
        extend: bsdp ? bsdpOfferExtension(bsdp) : undefined,
      }),
    );
  }
  if (mode !== "off") responders.push(proxyResponder({ serverIp, decide: boot.decide }));
  const server = await startDhcpServer({
    responders,
    iface: link.iface,
    serverPort: config.dhcp.port,
    // BSDP alone needs no PXE boot-server port.
    pxePort: mode === "off" ? null : config.dhcp.pxePort,
    log: log.child("dhcp"),
    runtime: config.udp,
    transmit: config.dhcp.transmit,
    commit,
    allowUnfiltered: config.dhcp.force || listIPv4().filter((a) => !a.address.startsWith("127.")).length <= 1,
    onExchange: (e) => {
      if (e.from && !e.from.startsWith("0.0.0.0")) neighbors.learn(e.from.split(":")[0]!, e.mac);
      emitExchange(ctx.bus, e);
    },
  });
  ctx.cleanups.push(() => server.close());
  const what = mode === "server" ? "DHCP server" : mode === "proxy" ? "proxyDHCP" : "BSDP only (no DHCP)";
  log.info(`${what} on ${link.iface ?? "all interfaces"} (${server.binding}), port ${server.port}${server.pxePort ? ` and ${server.pxePort}` : ""}${bsdpOn && mode !== "off" ? "; BSDP for Macs" : ""}`);
  return { server, mode, bsdp: bsdpInfo };
}

// --- steps ---

/**
 * tftpblksize= in a boot.cfg read over TFTP (mboot asks for 1468 otherwise, esx-boot tftpfile.c): larger
 * blocks halve the loader's transfer time (measured under QEMU: 34 MB in 2.5 s at 16384, 4.9 s at 1468,
 * 2.5 s at 65464); capped by --tftp-max-blksize.
 */
const BOOTCFG_TFTP_BLKSIZE = 16384;

/** Intel Mac firmware's TFTP client fails with blocks larger than an Ethernet frame's payload allows. */
const MAC_FIRMWARE_BLKSIZE = 1460;

async function openImages(config: ServeConfig, log: Logger, cleanups: Array<() => Promise<void> | void>): Promise<BootImage[]> {
  const images: BootImage[] = [];
  for (const spec of config.images) {
    const tree = await openTree(spec.source, { cacheDir: config.cacheDir, log: log.child("source") });
    cleanups.push(() => tree.close());
    const name = spec.name ?? imageNameFromSource(spec.source);
    if (images.some((i) => i.name.toLowerCase() === name.toLowerCase())) throw new ConfigError("E_NAME", `two images are named ${name}: give them names (the lab file's images:, or --name for one)`);
    const image = await loadImage(tree, name);
    images.push(image);
    log.info(`image ${image.name}: ${tree.description}`);
    if (image.esxi) {
      const e = image.esxi;
      log.info(`ESXi installer: ${e.displayName}${e.summary.title ? ` — "${e.summary.title}"` : ""}; ${e.summary.modules.length} modules`);
      if (!e.efiLoader) log.warn(`${image.name}: no EFI/BOOT/BOOTX64.EFI, UEFI clients cannot boot it`);
    } else {
      log.warn(`${image.name}: no BOOT.CFG or EFI/BOOT/BOOT.CFG with a kernel= line; serving its files as they are (not an ESXi installer?)`);
    }
  }
  return images;
}

function buildBook(config: ServeConfig, lab: LabFile | undefined, images: readonly BootImage[]): HostBook {
  if (lab) {
    const book = bookFromLab(lab, images.map((i) => i.name));
    if (config.boot.ks) throw new ConfigError("E_KS", "--ks and a lab file: give the kickstart in the lab file (defaults: kickstart:, or per host)");
    return book;
  }
  const allow = config.hosts.allow.map((m) => parseMac(m));
  if (config.boot.ks && allow.length === 0 && !config.hosts.allowAny) {
    throw new ConfigError("E_KS_UNLISTED", "a kickstart wipes disks: list the machines with --allow MAC,… or pass --allow-any (every machine that network-boots here gets it)");
  }
  return bookFromFlags({ allow, allowAny: config.hosts.allowAny, ks: config.boot.ks, image: images[0]!.name });
}

function describeBook(book: HostBook, log: Logger): void {
  if (book.hosts.length) {
    const modes = new Map<string, number>();
    for (const h of book.hosts) modes.set(h.mode, (modes.get(h.mode) ?? 0) + 1);
    log.info(`hosts: ${book.hosts.length} listed (${[...modes].map(([m, n]) => `${n} ${m}`).join(", ")}); unlisted machines: ${book.unlisted === "deny" ? "no boot answer" : book.unlisted === "interactive" ? "the interactive installer, no kickstart" : "the kickstart"}`);
    const install = book.hosts.filter((h) => h.mode === "install");
    if (install.length) log.warn(`mode install: ${install.map((h) => h.hostname ?? h.mac).join(", ")} reinstall on every network boot`);
  }
  if (book.unlisted === "kickstart") log.warn("--allow-any: every machine that network-boots from this server gets the kickstart and is wiped");
}

async function loadIpxe(config: ServeConfig, log: Logger): Promise<IpxeBinaries> {
  const ipxe = await loadIpxeBinaries(config.ipxe.dir);
  if (config.ipxe.dir && ipxe.files.size === 0) throw new ConfigError("E_IPXE_DIR", `--ipxe-dir ${config.ipxe.dir}: no undionly.kpxe, snponly.efi or ipxe.efi there`);
  if (ipxe.missing.length) {
    log.warn(
      `iPXE binaries missing: ${ipxe.missing.join(", ")} (looked in ${ipxe.source}); install Debian's ipxe package or pass --ipxe-dir. ` +
        `${ipxe.missing.includes("undionly.kpxe") ? "BIOS PXE clients cannot boot. " : ""}${ipxe.missing.includes("snponly.efi") ? "UEFI PXE clients get the ESXi loader by TFTP instead." : ""}`,
    );
  } else {
    log.info(`iPXE: ${[...ipxe.files.keys()].join(", ")} from ${ipxe.source}`);
  }
  return ipxe;
}

/** A DHCP exchange on the bus: what was asked, by which firmware, what went back. */
function emitExchange(bus: EventBus, e: DhcpExchange): void {
  const answer = e.answers[0];
  const file = answer ? bootFileOf(answer.packet) : undefined;
  const ip = e.from && !e.from.startsWith("0.0.0.0") ? e.from.split(":")[0] : answer?.packet.yiaddr ? formatIPv4(answer.packet.yiaddr) : undefined;
  const what = answer?.note.split(/[ ,(]/)[0];
  if (e.responder === "BSDP") bus.emit({ type: "bsdp.request", mac: e.mac, ip, message: e.type, answer: answer?.note, ignored: e.ignored });
  else bus.emit({ type: "dhcp.request", mac: e.mac, ip, message: e.type, port: e.viaPxePort ? 4011 : 67, relay: e.relay, answer: what, file, ignored: e.ignored, firmware: e.client ? firmwareOf(e.client) : undefined });
}

function bootFileOf(p: DhcpPacket): string | undefined {
  return optString(p, Opt.BootfileName) ?? (p.file || undefined);
}

interface Link {
  iface: string | undefined;
  prefix: number;
  mac: string | undefined;
}

/** The served link: --iface, else the interface that holds --ip. */
function resolveLink(config: ServeConfig): Link {
  if (config.iface) {
    const a = interfaceAddress(config.iface);
    return { iface: config.iface, prefix: config.prefix ?? a.prefix, mac: a.mac };
  }
  const owner = listIPv4().find((a) => a.address === config.ip);
  if (!owner) throw new ConfigError("E_DHCP_IFACE", `DHCP needs the link to serve: --ip ${config.ip} is not an address of this machine; pass --iface, or --dhcp off`);
  return { iface: owner.iface, prefix: owner.prefix, mac: owner.mac };
}

async function chooseDhcpMode(config: ServeConfig, link: Link, serverIp: number, log: Logger): Promise<DhcpMode> {
  const mode = config.dhcp.mode;
  if (mode === "proxy" || (mode === "server" && config.dhcp.force)) return mode;
  if (!link.iface || !link.mac) {
    if (mode === "auto") {
      log.warn(`no interface MAC to probe ${link.iface ?? "the link"} with: choosing proxyDHCP, the mode that cannot break a network`);
      return "proxy";
    }
    return mode;
  }
  log.info(`looking for other DHCP servers on ${link.iface} (${(config.dhcp.probeMs / 1000).toFixed(1)} s)…`);
  const probe = await probeDhcpServers({ iface: link.iface, mac: link.mac, ownIp: serverIp, log, timeoutMs: config.dhcp.probeMs, runtime: config.udp });
  const found = probe.servers.length > 0 || probe.uncertain !== undefined;
  const what = probe.servers.length ? `DHCP server(s) ${probe.servers.join(", ")} answered` : (probe.uncertain ?? "no other DHCP server answered");
  if (mode === "server") {
    if (found) {
      throw new ServiceError("E_DHCP_OTHER_SERVER", `--dhcp server refused: ${what} on ${link.iface}; a second DHCP server breaks networks`, "use --dhcp proxy (or auto), or --force if you are sure");
    }
    return "server";
  }
  // auto
  if (found) {
    log.warn(`--dhcp auto: ${what} on ${link.iface}, so netboot runs as proxyDHCP beside it (addresses come from that server)`);
    return "proxy";
  }
  log.warn(`--dhcp auto: ${what} on ${link.iface}, so netboot runs as the DHCP server for this link (pool ${describePools(config, link, serverIp)})`);
  return "server";
}

function describePools(config: ServeConfig, link: Link, serverIp: number): string {
  return poolSpecs(config, link, serverIp)
    .map((p) => `${formatIPv4(p.start)}-${formatIPv4(p.end)}`)
    .join(", ");
}

function poolSpecs(config: ServeConfig, link: Link, serverIp: number): Array<{ start: number; end: number; prefix: number; relayed: boolean }> {
  const local = subnetOf(serverIp, link.prefix);
  if (config.dhcp.pools.length === 0) {
    if (link.prefix > 30) throw new ConfigError("E_POOL", `the link's subnet /${link.prefix} is too small for a pool; pass --pool`);
    return [{ start: local.network + 1, end: local.broadcast - 1, prefix: link.prefix, relayed: false }];
  }
  return config.dhcp.pools.map((p) => {
    const start = parseIPv4(p.start);
    const end = parseIPv4(p.end);
    const isLocal = inSubnet(start, local);
    const prefix = p.prefix ?? (isLocal ? link.prefix : 24);
    if (!inSubnet(end, subnetOf(start, prefix))) throw new ConfigError("E_POOL", `pool ${p.start}-${p.end}: not one /${prefix} subnet`);
    return { start, end, prefix, relayed: !isLocal };
  });
}

/** How long an offer is held: for the lab's hosts, and for any other MAC (short: see PoolConfig). */
const OFFER_SECONDS = 60;
const UNLISTED_OFFER_SECONDS = 10;

function buildPools(config: ServeConfig, link: Link, serverIp: number, book: HostBook, log: Logger): { scoped: ScopedPool[]; store: LeaseStore } {
  const store = openLeaseStore(config.stateDir, { warn: (m) => log.warn(m) });
  // The lab file's host IPs are reservations too (with the hostname), next to --reserve.
  const reservations = [
    ...config.dhcp.reservations.map((r) => ({ mac: parseMac(r.mac), ip: parseIPv4(r.ip), hostname: r.hostname })),
    ...book.hosts.filter((h) => h.ip && !config.dhcp.reservations.some((r) => parseMac(r.mac) === h.mac)).map((h) => ({ mac: h.mac, ip: parseIPv4(h.ip!), hostname: h.hostname })),
  ];
  const reservedMacs = new Set(reservations.map((r) => r.mac));
  const router = config.dhcp.router ? parseIPv4(config.dhcp.router) : undefined;
  const dns = config.dhcp.dns.map((d) => parseIPv4(d));
  const scoped = poolSpecs(config, link, serverIp).map((spec): ScopedPool => {
    const subnet = subnetOf(spec.start, spec.prefix);
    const pool = new LeasePool({
      start: spec.start,
      end: spec.end,
      subnet,
      exclude: [serverIp, ...(router ? [router] : []), subnet.network, subnet.broadcast],
      reservations: reservations.filter((r) => inSubnet(r.ip, subnet)),
      leaseSeconds: config.dhcp.leaseSeconds,
      offerSeconds: OFFER_SECONDS,
      unlistedOfferSeconds: UNLISTED_OFFER_SECONDS,
      listed: (mac) => book.lookup(mac) !== undefined || reservedMacs.has(mac),
      declineSeconds: 600,
    });
    pool.load(store.loaded.filter((l: Lease) => inSubnet(l.ip, subnet)));
    pool.onChange = (l) => {
      store.record(l);
      if (store.pending >= COMPACT_AFTER) store.compact(scopedAll());
    };
    return { pool, net: { subnet, router: spec.relayed ? undefined : router, dns, domain: config.dhcp.domain }, relayed: spec.relayed };
  });
  const scopedAll = () => scoped.flatMap((s) => s.pool.all());
  log.info(`leases in ${store.dir} (${store.loaded.length} loaded); pools ${scoped.map((s) => `${formatIPv4(s.pool.config.start)}-${formatIPv4(s.pool.config.end)}/${s.net.subnet.prefix}${s.relayed ? " (relayed)" : ""}`).join(", ")}`);
  return { scoped, store };
}
