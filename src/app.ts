/** Composition root: opens the image, builds the boot namespace, starts the enabled services, returns close(). */
import { readFile } from "node:fs/promises";
import { createBootFiles, type BootFiles } from "./boot/files.ts";
import { imageNameFromSource, loadImage, type BootImage } from "./boot/image.ts";
import { httpBase, type ServeConfig } from "./config.ts";
import { ConfigError } from "./errors.ts";
import { ContentCache } from "./files/cache.ts";
import { openTree } from "./files/open.ts";
import { createHttpApp, type HttpRequest, type HttpResponse } from "./http/handler.ts";
import { startHttpServer, type AccessEntry, type HttpServerHandle } from "./http/server.ts";
import type { Logger } from "./log.ts";
import { startTftpServer, type TftpClientInfo, type TftpServerHandle, type TransferEvent } from "./tftp/server.ts";

export interface AppHandle {
  readonly config: ServeConfig;
  readonly images: readonly BootImage[];
  readonly files: BootFiles;
  readonly http: HttpServerHandle;
  readonly tftp: TftpServerHandle | undefined;
  /** "http://IP[:PORT]" as clients see it (with the port actually bound). */
  readonly httpBase: string;
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
}

export async function startApp(config: ServeConfig, log: Logger, hooks: AppHooks = {}): Promise<AppHandle> {
  const cleanups: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    // --- image ---
    const tree = await openTree(config.source);
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

    // --- HTTP: bind first, so the URLs we hand out carry the port really bound (port 0 in tests). ---
    let app: ((req: HttpRequest) => Promise<HttpResponse>) | undefined;
    const cache = config.cacheMem > 0 ? new ContentCache(config.cacheMem) : undefined;
    const http = await startHttpServer({
      cache,
      app: (req) => (app ? app(req) : Promise.reject(new Error("starting up"))),
      host: config.bind,
      port: config.http.port,
      log: log.child("http"),
      onRequest: hooks.onHttpRequest,
      runtime: hooks.httpRuntime,
    });
    cleanups.push(() => http.close());
    const base = httpBase(config.ip, http.port);
    const files = buildFiles(config, [image], base);
    app = createHttpApp({ files });
    log.info(`HTTP on ${config.bind}:${http.port}; clients use ${base}/${image.name}/`);

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
        onTransfer: hooks.onTftpTransfer,
        clientInfo: hooks.tftpClientInfo,
        engine: hooks.tftpEngine,
      });
      cleanups.push(() => tftp!.close());
      log.info(`TFTP on ${config.bind}:${tftp.port} (${tftp.engine})`);
    }

    return {
      config,
      images: [image],
      files,
      http,
      tftp,
      httpBase: base,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function buildFiles(config: ServeConfig, images: BootImage[], base: string): BootFiles {
  const ks = config.boot.ks;
  return createBootFiles({
    images,
    httpBase: base,
    kickstart: ks ? async () => new Uint8Array(await readFile(ks)) : undefined,
    keepCdromBoot: config.boot.keepCdromBoot,
    extraKernelopt: config.boot.extraKernelopt,
  });
}
