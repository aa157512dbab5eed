/**
 * Composition root: builds the services and hands them to each other, in the order a safe start needs.
 *
 *   1. before any socket: the images, the host book, iPXE, the DHCP role (a probe of the link)
 *   2. every socket bound, nothing answered yet (requests wait, DHCP's are held)
 *   3. the caller's drop of root (cli/serve.ts), so that nothing is read for a client or written to the
 *      state directory as root
 *   4. the state: the host store, the leases; the tracker and the view that follow the bus
 *   5. the boot namespace and the policy, and the servers start answering
 *
 * close() undoes it: the servers first, then what follows them, then the state, then the sources. No rule
 * lives here: each is in the unit that owns it.
 */
import { createBootFiles, type BootFiles } from "./boot/files.ts";
import { imageSummaries, openImages, type BootImage } from "./boot/image.ts";
import { policyFor } from "./boot/policy.ts";
import type { BootClient, BootDecision } from "./boot/types.ts";
import { bsdpService, type Bsdp } from "./bsdp/service.ts";
import { httpBase, type DhcpMode, type ServeConfig } from "./config.ts";
import { dhcpLine, planDhcp } from "./dhcp/mode.ts";
import { poolsFor } from "./dhcp/pools.ts";
import { respondersFor } from "./dhcp/responders.ts";
import { startDhcpServer, type DhcpServerHandle } from "./dhcp/server.ts";
import { errorMessage } from "./errors.ts";
import { EventBus } from "./events.ts";
import { ContentCache } from "./files/cache.ts";
import { loadIpxe, type IpxeBinaries } from "./files/ipxe.ts";
import { createHttpApp } from "./http/handler.ts";
import { startHttpServer, type HttpServerHandle } from "./http/server.ts";
import { hostsApi, type StatusInfo } from "./hosts/api.ts";
import { bookFor, describeBook, wantsKickstarts } from "./hosts/book.ts";
import { HintWatcher } from "./hosts/explain.ts";
import { kickstarts } from "./hosts/kickstart-gate.ts";
import type { LabFile, Verify } from "./hosts/lab.ts";
import { HostPolicy, storeSelections, tftpBlockCap } from "./hosts/policy.ts";
import { SignedLoaderWatch } from "./hosts/signed-loader.ts";
import { openHostStore } from "./hosts/store/open.ts";
import type { HostStore } from "./hosts/store/store.ts";
import { HostTracker } from "./hosts/tracker.ts";
import { siteFacts } from "./hosts/variables.ts";
import { HostViews } from "./hosts/view.ts";
import { HttpsVerifier, type VerifierOptions } from "./drive/verify.ts";
import { recordingLogger, type Logger, type Warning } from "./log.ts";
import { listIPv4 } from "./net/interfaces.ts";
import { Neighbors } from "./net/neighbors.ts";
import { ensureStateDir } from "./state/atomic.ts";
import { claimStateDir } from "./state/lock.ts";
import { bootCfgBlksize } from "./tftp/negotiate.ts";
import { startTftpServer, type TftpServerHandle } from "./tftp/server.ts";
import { statusPage } from "./ui/page.ts";
import type { Mac } from "./wire/mac.ts";

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
  readonly bsdp: Bsdp | undefined;
  /** "http://IP[:PORT]" as clients see it (with the port actually bound). */
  readonly httpBase: string;
  readonly ipxe: IpxeBinaries;
  /** Every server emits here (events.ts). */
  readonly bus: EventBus;
  /** What is known of each host (hosts/store/), and what the screens show (hosts/view.ts). */
  readonly store: HostStore;
  readonly views: HostViews;
  readonly policy: HostPolicy;
  /** Which MAC is behind an address: learned from DHCP, else the ARP table (a simulated client on loopback tells it here). */
  readonly neighbors: Neighbors;
  /** What each machine's state means when it looks stuck, and the link as a whole (hosts/explain.ts). */
  readonly hints: HintWatcher;
  /** The last warnings and errors logged (the status page). */
  readonly warnings: readonly Warning[];
  readonly log: Logger;
  /** The link served ("eth1"), when known. */
  readonly iface: string | undefined;
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
  /**
   * Runs once every socket is bound and before anything is served or the state is opened: the CLI drops
   * root here and checks, as the user it became, every path the servers go on using.
   */
  beforeServe?: (what: { images: readonly BootImage[] }) => Promise<void>;
  /** What "done" means for a host where the lab file says nothing (verify:): serve's callback alone, or reinstall's installed ESXi for its hosts. */
  verifyDefault?: Verify | ((mac: Mac) => Verify);
  /** How an installed ESXi is asked for its build (tests point it elsewhere; drive/verify.ts probeEsxi). */
  probe?: VerifierOptions["probe"];
}

/** What close() undoes, phase by phase (servers first, sources last); a failing step is logged and the next runs. */
function cleanups(log: Logger) {
  const phases = { servers: [] as Array<() => unknown>, followers: [] as Array<() => unknown>, state: [] as Array<() => unknown>, sources: [] as Array<() => unknown> };
  return {
    add: (phase: keyof typeof phases, fn: () => unknown) => void phases[phase].push(fn),
    async run() {
      for (const list of Object.values(phases)) for (const fn of list.splice(0).reverse()) await Promise.resolve().then(fn).catch((err) => log.warn(`while stopping: ${errorMessage(err)}`));
    },
  };
}

export async function startApp(config: ServeConfig, baseLog: Logger, options: AppOptions = {}): Promise<AppHandle> {
  const warnings: Warning[] = [];
  const log = recordingLogger(baseLog, warnings);
  const bus = options.bus ?? new EventBus(log);
  const stop = cleanups(log);
  try {
    // 1. Before any socket: nothing can be served while the DHCP probe listens.
    const opened = await openImages(config.images, { cacheDir: config.cacheDir, log });
    stop.add("sources", opened.close);
    const images = opened.images;
    const book = bookFor(config, options.lab, images.map((i) => i.name), options.verifyDefault);
    describeBook(book, log);
    const ipxe = await loadIpxe(config.ipxe.dir, log);
    const plan = await planDhcp(config, log.child("dhcp"));

    // 2. Every socket bound; requests wait for step 5.
    const neighbors = new Neighbors();
    const http = await startHttpServer({
      host: config.bind,
      port: config.http.port,
      log: log.child("http"),
      limits: config.http.limits,
      cache: config.cacheMem > 0 ? new ContentCache(config.cacheMem) : undefined,
      events: bus.emit,
      macOf: (a) => neighbors.lookup(a),
      runtime: config.http.edge,
      allLocal: images.every((i) => i.tree.local),
    });
    stop.add("servers", () => http.close());
    const base = httpBase(config.ip, http.port);
    let store: HostStore | undefined;
    const tftp = config.tftp.enabled
      ? await startTftpServer({
          host: config.bind,
          port: config.tftp.port,
          log: log.child("tftp"),
          maxBlksize: config.tftp.maxBlksize,
          maxWindowsize: config.tftp.maxWindowsize,
          runtime: config.udp,
          engine: config.tftp.engine,
          events: bus.emit,
          clientInfo: (a) => {
            const mac = neighbors.lookup(a);
            return { mac, maxBlksize: tftpBlockCap(store, mac) };
          },
        })
      : undefined;
    if (tftp) stop.add("servers", () => tftp.close());
    const dhcp =
      plan.link !== undefined
        ? await startDhcpServer({
            iface: plan.link.iface,
            serverPort: config.dhcp.port,
            pxePort: plan.pxePort,
            log: log.child("dhcp"),
            runtime: config.udp,
            transmit: config.dhcp.transmit,
            allowUnfiltered: plan.allowUnfiltered,
            events: bus.emit,
            learn: (address, mac) => neighbors.learn(address, mac),
          })
        : undefined;
    if (dhcp) stop.add("servers", () => dhcp.close());

    // 3. Root is dropped here (the CLI), before the state is opened and before anything is answered.
    await options.beforeServe?.({ images });

    // 4. The state, as the user netboot runs as.
    ensureStateDir(config.stateDir);
    stop.add("state", claimStateDir(config.stateDir));
    store = await openHostStore({ url: config.store, stateDir: config.stateDir }, book, log.child("hosts"));
    stop.add("state", () => store!.close());
    let views: HostViews | undefined;
    const tracker = new HostTracker({ store, bus, log: log.child("hosts"), ip: (m) => views?.ipOf(m) });
    views = new HostViews({ store, bus, log: log.child("hosts") });
    const signed = new SignedLoaderWatch({ store, bus, log: log.child("boot") });
    let policy!: HostPolicy;
    // verify: https: installed → done once the installed ESXi answers at its image's build.
    const buildOf = (m: Mac) => (images.find((i) => i.name === policy?.imageOf(m)) ?? images[0])?.esxi?.summary.buildNumber;
    const verifier = new HttpsVerifier({ store, bus, log: log.child("hosts"), ipOf: (m) => views?.ipOf(m), buildOf, probe: options.probe });
    stop.add("followers", () => [tracker, views!, signed, verifier].forEach((f) => f.close()));
    const pools = poolsFor(plan, config, book, log.child("dhcp"));
    if (pools) stop.add("state", () => pools.close());

    // 5. The policy and the boot namespace; then every server answers.
    const bsdp = plan.bsdp
      ? bsdpService({
          images,
          serverIp: plan.serverIp,
          config: config.bsdp,
          selections: storeSelections(store),
          decide: (c) => policy.decide(c),
          onMac: (mac, address) => {
            void store!.bsdp(mac);
            if (address) neighbors.learn(address, mac);
          },
          foldIntoOffers: plan.mode === "server",
        })
      : undefined;
    policy = new HostPolicy({ store, signed, labImages: options.lab !== undefined, bsdpImage: bsdp?.imageOf, policy: policyFor(config, images, base, ipxe.files) });
    const files = createBootFiles({
      images,
      httpBase: base,
      kickstart: wantsKickstarts(book)
          ? kickstarts({ store, policy, site: siteFacts(config, base), macOf: (a) => neighbors.lookup(a), leasedAddress: (m) => pools?.leasedAddress(m), events: bus.emit, log: log.child("hosts") })
          : undefined,
      ...policy.bootFileHooks(),
      keepCdromBoot: config.boot.keepCdromBoot,
      extraKernelopt: config.boot.extraKernelopt,
      ipxe: ipxe.files,
      tftpBlksize: bootCfgBlksize(config.tftp),
    });
    const hints = new HintWatcher({ hosts: views, armed: (m) => policy.isArmed(m), bus, log: log.child("hosts"), mode: () => plan.mode });
    stop.add("followers", () => hints.close());
    const summaries = await imageSummaries(images);
    views.setBootBytes((name) => summaries.find((i) => i.name === name)?.bootBytes);
    const iface = config.iface ?? plan.link?.iface ?? listIPv4().find((a) => a.address === config.ip)?.iface;
    const status = (): StatusInfo => ({ mode: plan.mode, iface, httpBase: base, images: summaries, bsdp: bsdp !== undefined, tftp: tftp !== undefined, secureBoot: config.boot.secureBoot, store: store!.where });
    http.serve(createHttpApp({ files, macForAddress: (a) => neighbors.lookup(a), api: hostsApi({ views, bus, log: log.child("api"), status, hints, warnings, page: statusPage }) }));
    log.info(`HTTP on ${config.bind}:${http.port}; clients use ${images.map((i) => `${base}/${i.name}/`).join(", ")}`);
    tftp?.serve(files);
    if (tftp) log.info(`TFTP on ${config.bind}:${tftp.port} (${tftp.engine})`);
    if (dhcp) {
      // An ACK goes out once its lease is on disk (one fsync for all the ACKs of a turn).
      dhcp.serve(respondersFor({ mode: plan.mode, serverIp: plan.serverIp, decide: (c) => policy.decide(c), pools, bsdp, onBound: (mac, ip) => neighbors.leased(mac as Mac, ip) }), pools ? () => pools.store.sync() : undefined);
      log.info(dhcpLine(plan, dhcp));
    }
    if (bsdp) await bsdp.describe(files, log.child("dhcp"), { count: await storeSelections(store).count(), where: store.where });
    log.info(`hosts kept in ${store.where}`);
    return { config, images, files, http, tftp, dhcp, dhcpMode: plan.mode, bsdp, httpBase: base, ipxe, bus, store, views, policy, neighbors, hints, warnings, log, iface, status, decide: (c) => policy.decide(c), close: () => stop.run() };
  } catch (err) {
    await stop.run();
    throw err;
  }
}
