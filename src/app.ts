/**
 * Composition root: opens the image, builds the boot namespace and the boot policy, starts the enabled
 * services (HTTP, TFTP, DHCP) and returns close(). The only module that knows every service.
 */
import { readFile } from "node:fs/promises";
import { createBootFiles, type BootFiles } from "./boot/files.ts";
import { imageNameFromSource, loadImage, type BootImage } from "./boot/image.ts";
import { IPXE_EFI, decideBoot, firmwareOf, type PolicyConfig } from "./boot/policy.ts";
import type { BootClient, BootDecision } from "./boot/types.ts";
import { bsdpCatalog } from "./bsdp/catalog.ts";
import type { BootImage as BsdpImage } from "./bsdp/options.ts";
import { bsdpOfferExtension, bsdpResponder, type BsdpConfig } from "./bsdp/responder.ts";
import { openSelectionStore } from "./bsdp/selections.ts";
import { httpBase, type DhcpMode, type ServeConfig } from "./config.ts";
import { LeasePool, type Lease } from "./dhcp/leases.ts";
import { COMPACT_AFTER, openLeaseStore, type LeaseStore } from "./dhcp/lease-store.ts";
import { probeDhcpServers } from "./dhcp/probe.ts";
import { proxyResponder, serverResponder, type Responder, type ScopedPool } from "./dhcp/responders.ts";
import { startDhcpServer, type DhcpExchange, type DhcpServerHandle } from "./dhcp/server.ts";
import type { TransmitOptions } from "./dhcp/transmit.ts";
import { ConfigError, ServiceError } from "./errors.ts";
import { ContentCache } from "./files/cache.ts";
import { loadIpxeBinaries, type IpxeBinaries } from "./files/ipxe.ts";
import { openTree } from "./files/open.ts";
import { createHttpApp, type HttpRequest, type HttpResponse } from "./http/handler.ts";
import { startHttpServer, type AccessEntry, type HttpServerHandle } from "./http/server.ts";
import type { Logger } from "./log.ts";
import { interfaceAddress, listIPv4 } from "./net/interfaces.ts";
import { openSignedLoaderMemory } from "./hosts/signed-loader.ts";
import { Neighbors } from "./net/neighbors.ts";
import { platformMaxBlksize } from "./tftp/negotiate.ts";
import { startTftpServer, type TftpClientInfo, type TftpServerHandle, type TransferEvent } from "./tftp/server.ts";
import { formatIPv4, inSubnet, parseIPv4, subnetOf } from "./wire/ipv4.ts";
import { parseMac } from "./wire/mac.ts";

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
  /** The boot policy with this app's settings (tests, the status page). */
  decide(client: BootClient): BootDecision;
  close(): Promise<void>;
}

export interface AppHooks {
  onHttpRequest?: (e: AccessEntry) => void;
  /** Tests: force the node:http edge under Bun. */
  httpRuntime?: "bun" | "node";
  /** Tests: force node:dgram under Bun. */
  udpRuntime?: "bun" | "node";
  onTftpTransfer?: (e: TransferEvent) => void;
  /** Tests: pick the TFTP engine ("auto" by default). */
  tftpEngine?: "auto" | "event-loop" | "worker";
  tftpClientInfo?: (address: string) => TftpClientInfo | undefined;
  onDhcpExchange?: (e: DhcpExchange) => void;
  /** Tests: where DHCP replies go (loopback instead of broadcast). */
  dhcpTransmit?: TransmitOptions;
  /** Tests: DHCP on a port of its own (0: any), and the PXE port (null: closed). */
  dhcpPorts?: { server: number; pxe: number | null };
  /** Extra responders put in front of DHCP/proxyDHCP (BSDP). */
  responders?: (ctx: { serverIp: number; decide: (c: BootClient) => BootDecision }) => Responder[];
}

export async function startApp(config: ServeConfig, log: Logger, hooks: AppHooks = {}): Promise<AppHandle> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    // --- image ---
    const tree = await openTree(config.source, { cacheDir: config.cacheDir, log: log.child("source") });
    cleanups.push(() => tree.close());
    const image = await loadImage(tree, config.name ?? imageNameFromSource(config.source));
    log.info(`image ${image.name}: ${tree.description}`);
    if (image.esxi) {
      const e = image.esxi;
      log.info(`ESXi installer: ${e.displayName}${e.summary.title ? ` — "${e.summary.title}"` : ""}; ${e.summary.modules.length} modules`);
      if (!e.efiLoader) log.warn(`${image.name}: no EFI/BOOT/BOOTX64.EFI, UEFI clients cannot boot it`);
    } else {
      log.warn(`${image.name}: no BOOT.CFG or EFI/BOOT/BOOT.CFG with a kernel= line; serving its files as they are (not an ESXi installer?)`);
    }

    const ksPath = config.boot.ks;
    if (ksPath) await readFile(ksPath).catch((err) => {
      throw new ConfigError("E_KS", `--ks ${ksPath}: ${(err as Error).message}`);
    });

    // --- iPXE binaries (served by TFTP and HTTP as ipxe/<name>) ---
    const ipxe = await loadIpxeBinaries(config.ipxe.dir);
    if (config.ipxe.dir && ipxe.files.size === 0) throw new ConfigError("E_IPXE_DIR", `--ipxe-dir ${config.ipxe.dir}: no undionly.kpxe, snponly.efi or ipxe.efi there`);
    if (ipxe.missing.length) {
      log.warn(`iPXE binaries missing: ${ipxe.missing.join(", ")} (looked in ${ipxe.source}); install Debian's ipxe package or pass --ipxe-dir. ` +
        `${ipxe.missing.includes("undionly.kpxe") ? "BIOS PXE clients cannot boot. " : ""}${ipxe.missing.includes("snponly.efi") ? "UEFI PXE clients get the ESXi loader by TFTP instead." : ""}`);
    } else {
      log.info(`iPXE: ${[...ipxe.files.keys()].join(", ")} from ${ipxe.source}`);
    }

    const neighbors = new Neighbors();
    /** MACs that spoke BSDP: Mac firmware, whose TFTP client needs blocks of 1460 bytes or less. */
    const macFirmware = new Set<string>();
    /** UEFI hosts whose iPXE never started (Secure Boot): they get the signed ESXi loader. */
    const signedLoader = openSignedLoaderMemory(config.stateDir, log.child("boot"));

    // --- HTTP: bind first, so the URLs we hand out carry the port really bound (port 0 in tests). ---
    let app: ((req: HttpRequest) => Promise<HttpResponse>) | undefined;
    const cache = config.cacheMem > 0 ? new ContentCache(config.cacheMem) : undefined;
    const http = await startHttpServer({
      cache,
      app: (req) => (app ? app(req) : Promise.reject(new Error("starting up"))),
      host: config.bind,
      port: config.http.port,
      log: log.child("http"),
      onRequest: (e) => {
        if (e.mac && e.path === "/boot.ipxe") signedLoader.ipxeStarted(e.mac);
        hooks.onHttpRequest?.(e);
      },
      // Bun.serve sends a stream chunked whatever Content-Length says, and mboot trusts Content-Length: a
      // source whose bytes are not in local files (a URL) is served by node:http, which keeps the length.
      runtime: hooks.httpRuntime ?? (tree.local ? undefined : "node"),
    });
    cleanups.push(() => http.close());
    const base = httpBase(config.ip, http.port);
    const files = createBootFiles({
      images: [image],
      httpBase: base,
      kickstart: ksPath ? async () => new Uint8Array(await readFile(ksPath)) : undefined,
      keepCdromBoot: config.boot.keepCdromBoot,
      extraKernelopt: config.boot.extraKernelopt,
      ipxe: ipxe.files,
      tftpBlksize: config.tftp.enabled ? Math.min(config.tftp.maxBlksize, BOOTCFG_TFTP_BLKSIZE, platformMaxBlksize(process.platform)) : undefined,
    });
    app = createHttpApp({ files, macForAddress: (a) => neighbors.lookup(a) });
    log.info(`HTTP on ${config.bind}:${http.port}; clients use ${base}/${image.name}/`);

    // --- the boot policy, one for every protocol ---
    const policy: PolicyConfig = {
      image,
      httpBase: base,
      ipxe: { undionly: ipxe.files.has("undionly.kpxe") && !config.ipxe.disabled, snponly: ipxe.files.has("snponly.efi") && !config.ipxe.disabled },
      noIpxe: config.ipxe.disabled,
      secureBoot: config.boot.secureBoot,
    };
    const decide = (c: BootClient) => {
      signedLoader.dhcp(c.mac, firmwareOf(c));
      return decideBoot(c, policy, { signedLoader: signedLoader.reason(c.mac) });
    };

    // --- TFTP: the same namespace as HTTP ---
    let tftp: TftpServerHandle | undefined;
    if (config.tftp.enabled) {
      tftp = await startTftpServer({
        files,
        host: config.bind,
        port: config.tftp.port,
        log: log.child("tftp"),
        maxBlksize: config.tftp.maxBlksize,
        maxWindowsize: config.tftp.maxWindowsize,
        cache,
        runtime: hooks.udpRuntime,
        onTransfer: (e) => {
          if (e.outcome === "sent" && e.mac && e.file.replace(/^\/+/, "").toLowerCase() === IPXE_EFI) signedLoader.ipxeSent(e.mac);
          hooks.onTftpTransfer?.(e);
        },
        clientInfo:
          hooks.tftpClientInfo ??
          ((a) => {
            const mac = neighbors.lookup(a);
            return { mac, maxBlksize: mac && macFirmware.has(mac) ? MAC_FIRMWARE_BLKSIZE : undefined };
          }),
        engine: hooks.tftpEngine,
      });
      cleanups.push(() => tftp!.close());
      log.info(`TFTP on ${config.bind}:${tftp.port} (${tftp.engine})`);
    }

    // --- DHCP / proxyDHCP / BSDP ---
    let dhcp: DhcpServerHandle | undefined;
    let mode: DhcpMode = config.dhcp.mode;
    let bsdpInfo: AppHandle["bsdp"];
    // With --dhcp off, BSDP may still answer alone, but only on a link named with --iface.
    const bsdpOn = config.bsdp.enabled && (mode !== "off" || config.iface !== undefined);
    if (config.bsdp.enabled && !bsdpOn) log.info("BSDP not answered: --dhcp off without --iface (give --iface to answer Macs, or --no-bsdp)");
    if (mode !== "off" || bsdpOn) {
      const serverIp = parseIPv4(config.ip);
      const link = resolveLink(config);
      if (mode !== "off") mode = await chooseDhcpMode(config, link, serverIp, log.child("dhcp"), hooks);
      if (link.iface && typeof Bun === "undefined" && listIPv4().filter((a) => !a.address.startsWith("127.")).length > 1 && !config.dhcp.force) {
        // No FFI under Node: the socket on 0.0.0.0:67 hears every link and cannot tell them apart.
        throw new ServiceError(
          "E_DHCP_NODE_IFACE",
          `under Node the DHCP socket cannot be tied to ${link.iface}, and this machine has several interfaces: it would answer on all of them`,
          "run the Bun build (dist/netboot-*) or pass --force if every link may be answered",
        );
      }
      const responders: Responder[] = [...(hooks.responders?.({ serverIp, decide }) ?? [])];
      let bsdp: BsdpConfig | undefined;
      if (bsdpOn) {
        const selections = openSelectionStore(config.stateDir);
        const images = bsdpCatalog([{ name: image.name, label: image.esxi?.displayName ?? image.name }]);
        bsdp = {
          serverIp,
          images,
          defaultImage: images[0]!.id,
          priority: config.bsdp.priority,
          bootFile: config.bsdp.bootFile,
          selections,
          refuse: (c) => policy.gate?.(c),
          onMac: (mac, address) => {
            macFirmware.add(mac);
            if (address) neighbors.learn(address, mac);
          },
          foldIntoOffers: mode === "server",
        };
        responders.push(bsdpResponder(bsdp));
        bsdpInfo = { images, selections: selections.path };
        const found = await files.resolve(config.bsdp.bootFile.split("/"));
        if (found.kind !== "file") log.warn(`BSDP: Macs are told to boot ${config.bsdp.bootFile}, which is not served (${found.kind === "missing" ? found.reason : "a directory"}); see --mac-bootfile`);
        log.info(`BSDP: Macs see "${images[0]!.name}" (image id 0x${images[0]!.id.toString(16)}), priority ${config.bsdp.priority}, boot ${config.bsdp.bootFile}; ${selections.size} remembered selection(s) in ${selections.path}`);
      }
      if (mode === "server") {
        const { scoped, store } = buildPools(config, link, serverIp, log.child("dhcp"));
        cleanups.push(() => {
          store.compact(scoped.flatMap((s) => s.pool.all()));
          store.close();
        });
        responders.push(
          serverResponder({
            serverIp,
            // A relay's address (giaddr) picks the pool of its subnet; that may be our own link too (a relay
            // agent on the same segment, or perfdhcp, which speaks as one).
            poolFor: (p) => (p.giaddr ? scoped.find((s) => inSubnet(p.giaddr, s.net.subnet)) : scoped.find((s) => !s.relayed)),
            decide,
            onBound: (mac, ip) => neighbors.learn(formatIPv4(ip), mac),
            extend: bsdp ? bsdpOfferExtension(bsdp) : undefined,
          }),
        );
      }
      if (mode !== "off") responders.push(proxyResponder({ serverIp, decide }));
      dhcp = await startDhcpServer({
        responders,
        iface: link.iface,
        serverPort: hooks.dhcpPorts?.server ?? config.dhcp.port,
        // BSDP alone needs no PXE boot-server port.
        pxePort: mode === "off" ? null : hooks.dhcpPorts ? hooks.dhcpPorts.pxe : config.dhcp.pxePort,
        log: log.child("dhcp"),
        runtime: hooks.udpRuntime,
        transmit: hooks.dhcpTransmit,
        allowUnfiltered: config.dhcp.force || listIPv4().filter((a) => !a.address.startsWith("127.")).length <= 1,
        onExchange: (e) => {
          if (e.from && !e.from.startsWith("0.0.0.0")) neighbors.learn(e.from.split(":")[0]!, e.mac);
          hooks.onDhcpExchange?.(e);
        },
      });
      cleanups.push(() => dhcp!.close());
      const what = mode === "server" ? "DHCP server" : mode === "proxy" ? "proxyDHCP" : "BSDP only (no DHCP)";
      log.info(`${what} on ${link.iface ?? "all interfaces"} (${dhcp.binding}), port ${dhcp.port}${dhcp.pxePort ? ` and ${dhcp.pxePort}` : ""}${bsdpOn && mode !== "off" ? "; BSDP for Macs" : ""}`);
    }

    return {
      config,
      images: [image],
      files,
      http,
      tftp,
      dhcp,
      dhcpMode: mode,
      bsdp: bsdpInfo,
      httpBase: base,
      ipxe,
      decide,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

// --- internal ---

/**
 * tftpblksize= in a boot.cfg read over TFTP (mboot asks for 1468 otherwise, esx-boot tftpfile.c): larger
 * blocks halve the loader's transfer time; capped by --tftp-max-blksize.
 */
const BOOTCFG_TFTP_BLKSIZE = 16384;

/** Intel Mac firmware's TFTP client fails with blocks larger than an Ethernet frame's payload allows. */
const MAC_FIRMWARE_BLKSIZE = 1460;

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
  if (!owner) throw new ConfigError("E_DHCP_IFACE", `DHCP needs the link to serve: --ip ${config.ip} is not an address of this machine; pass --iface`);
  return { iface: owner.iface, prefix: owner.prefix, mac: owner.mac };
}

async function chooseDhcpMode(config: ServeConfig, link: Link, serverIp: number, log: Logger, hooks: AppHooks): Promise<DhcpMode> {
  const mode = config.dhcp.mode;
  if (mode === "proxy" || (mode === "server" && config.dhcp.force) || hooks.dhcpPorts) return mode === "auto" ? "server" : mode;
  if (!link.iface || !link.mac) {
    if (mode === "auto") {
      log.warn(`no interface MAC to probe ${link.iface ?? "the link"} with: choosing proxyDHCP, the mode that cannot break a network`);
      return "proxy";
    }
    return mode;
  }
  log.info(`looking for other DHCP servers on ${link.iface} (${(config.dhcp.probeMs / 1000).toFixed(1)} s)…`);
  const probe = await probeDhcpServers({ iface: link.iface, mac: link.mac, ownIp: serverIp, log, timeoutMs: config.dhcp.probeMs, runtime: hooks.udpRuntime });
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
    if (!inSubnet(end, subnetOf(start, prefix))) throw new ConfigError("E_POOL", `--pool ${p.start}-${p.end}: not one /${prefix} subnet`);
    return { start, end, prefix, relayed: !isLocal };
  });
}

function buildPools(config: ServeConfig, link: Link, serverIp: number, log: Logger): { scoped: ScopedPool[]; store: LeaseStore } {
  const store = openLeaseStore(config.stateDir);
  const reservations = config.dhcp.reservations.map((r) => ({ mac: parseMac(r.mac), ip: parseIPv4(r.ip), hostname: r.hostname }));
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
      offerSeconds: 60,
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
