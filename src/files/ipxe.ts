/**
 * iPXE binaries from Debian's `ipxe` package: embedded in the compiled executable by scripts/build.ts,
 * or read from --ipxe-dir, or from the system (/usr/lib/ipxe on Debian and Ubuntu). Never committed,
 * never built here.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";

export const IPXE_FILES = ["undionly.kpxe", "snponly.efi", "ipxe.efi"] as const;
export type IpxeFile = (typeof IPXE_FILES)[number];

export interface IpxeBinaries {
  files: ReadonlyMap<string, Uint8Array>;
  /** Where they came from, for the log. */
  source: string;
  missing: string[];
}

const SYSTEM_DIRS = ["/usr/lib/ipxe", "/usr/share/ipxe", "/usr/share/ipxe/efi", "/usr/local/share/ipxe"];

export async function loadIpxeBinaries(dir?: string): Promise<IpxeBinaries> {
  if (dir) return fromDirs([dir], `--ipxe-dir ${dir}`);
  const embedded = await embeddedPaths();
  if (embedded) {
    const files = new Map<string, Uint8Array>();
    // scripts/build.ts embeds them gzipped: the path ends in .gz.
    for (const [name, path] of Object.entries(embedded)) {
      const raw = await readFile(path);
      files.set(name, new Uint8Array(path.endsWith(".gz") ? gunzipSync(raw) : raw));
    }
    return { files, source: "embedded in this executable (Debian's ipxe package)", missing: IPXE_FILES.filter((f) => !files.has(f)) };
  }
  return fromDirs(SYSTEM_DIRS, "the system");
}

/** The binaries to serve, with what is missing said once (and --ipxe-dir that holds none refused). */
export async function loadIpxe(dir: string | undefined, log: Logger): Promise<IpxeBinaries> {
  const ipxe = await loadIpxeBinaries(dir);
  if (dir && ipxe.files.size === 0) throw new ConfigError("E_IPXE_DIR", `--ipxe-dir ${dir}: no undionly.kpxe, snponly.efi or ipxe.efi there`);
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

// --- internal ---

async function embeddedPaths(): Promise<Record<string, string> | undefined> {
  try {
    // Resolved at build time by scripts/build.ts; from source there is no such module.
    const m = await import("netboot-embedded:ipxe");
    // Compiled: "/$bunfs/…" paths. Node bundle: paths relative to the bundle's chunk directory, where this
    // module's code sits too.
    return Object.fromEntries(Object.entries(m.default).map(([k, p]) => [k, p.startsWith(".") ? fileURLToPath(new URL(p, import.meta.url)) : p]));
  } catch {
    return undefined;
  }
}

async function fromDirs(dirs: string[], label: string): Promise<IpxeBinaries> {
  const files = new Map<string, Uint8Array>();
  const found = new Set<string>();
  for (const name of IPXE_FILES) {
    for (const d of dirs) {
      try {
        files.set(name, new Uint8Array(await readFile(join(d, name))));
        found.add(d);
        break;
      } catch {
        // try the next directory
      }
    }
  }
  return { files, source: found.size ? `${label} (${[...found].join(", ")})` : label, missing: IPXE_FILES.filter((f) => !files.has(f)) };
}
