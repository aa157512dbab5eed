/**
 * Opens whatever the user named as the image source and returns its file tree: an ISO file, a directory
 * (a mounted ISO or an extracted tree), an http(s) URL of an ISO (or of a zip holding one), or a zip.
 * ISO and zip are told apart by their bytes, not by the name.
 */
import { open, stat } from "node:fs/promises";
import { defaultCacheDir, redactUrl } from "../config.ts";
import { IsoError, SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { openDirTree } from "./dir.ts";
import { openIsoTree } from "./iso.ts";
import { openFileSource, sourceErrorFromFs, type ByteSource } from "./source.ts";
import type { FileTree } from "./tree.ts";
import { openUrlSource } from "./url.ts";
import { looksLikeZip, openZipTree } from "./zip.ts";

export interface OpenTreeOptions {
  /** --cache-dir: disk cache of URL blocks (only when given), and where compressed zip entries are unpacked. */
  cacheDir?: string | undefined;
  /** Where zip entries are unpacked when no --cache-dir is given. */
  defaultCacheDir?: string | undefined;
  log?: Logger | undefined;
}

export function isUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec);
}

export async function openTree(spec: string, opts: OpenTreeOptions = {}): Promise<FileTree> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !isUrl(spec)) {
    throw new SourceError("E_SOURCE_KIND", `${spec}: only http:// and https:// URLs are supported`);
  }
  let source: ByteSource;
  if (isUrl(spec)) {
    source = await openUrlSource(spec, { cacheDir: opts.cacheDir, log: opts.log });
  } else {
    let isDir = false;
    try {
      isDir = (await stat(spec)).isDirectory();
    } catch (err) {
      throw sourceErrorFromFs(err, spec);
    }
    if (isDir) return openDirTree(spec);
    source = await openFileSource(spec);
  }
  const shown = isUrl(spec) ? redactUrl(spec, "credentials") : spec;
  try {
    const head = await source.read(0, Math.min(4, source.size));
    if (looksLikeZip(head)) {
      return await openZipTree(source, { cacheDir: opts.cacheDir ?? opts.defaultCacheDir ?? defaultCacheDir(), log: opts.log });
    }
    return await openIsoTree(source);
  } catch (err) {
    await source.close();
    if (err instanceof IsoError && (err.code === "E_ISO_NOT_ISO" || err.code === "E_ISO_NO_PVD")) {
      throw new SourceError(err.code, `${shown}: not an ISO 9660 image, a zip or a directory (${err.message.replace(/^not an ISO 9660 image: /, "")})`, { cause: err });
    }
    if (err instanceof SourceError && err.message.startsWith(shown)) throw err;
    if (err instanceof Error && "code" in err) throw new SourceError((err as { code: string }).code, `${shown}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Whether the tree can still be read by this process (after root is dropped: a source in a directory
 * closed to the account, /root, cannot): the reason when not. A local file is opened by its path, as the
 * HTTP edge does for every answer (sendfile).
 */
export async function unreadable(tree: FileTree): Promise<string | undefined> {
  const probe = (await tree.stat("boot.cfg")) ?? (await tree.list("/")).find((f) => f.type === "file");
  try {
    if (probe?.type === "file") {
      const data = await tree.open(probe);
      if (data.local) await (await open(data.local.path, "r")).close();
      else await data.read(0, Math.min(probe.size, 1));
    }
    return undefined;
  } catch (err) {
    return (err as Error).message.split("\n")[0];
  }
}
