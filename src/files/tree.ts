/** The file-tree seam: what the servers ask of an image (stat, list, bytes), never where the bytes come from. */

export type FileType = "file" | "dir";

export interface FileInfo {
  name: string;
  /** Path as the tree spells it, starting with "/". */
  path: string;
  type: FileType;
  size: number;
  mtime: Date | undefined;
}

/**
 * The bytes of one file. `read` is the generic path; `local` names a file on disk that holds exactly these
 * bytes at `offset`, so the HTTP edge can hand the range to the kernel (sendfile) without copying.
 */
export interface FileData {
  readonly size: number;
  readonly mtime: Date | undefined;
  /** Strong validator: the same tag means the same bytes. */
  readonly etag: string;
  read(offset: number, length: number): Promise<Uint8Array>;
  readonly local: { path: string; offset: number } | undefined;
  /** The whole file in memory (generated files): the edges send it as one body with its length. */
  readonly bytes?: Uint8Array | undefined;
  /**
   * For bytes that are mostly a window on a local file (a virtual image: the ISO with a few sectors
   * changed): where [start, end) is when that range lies in one unchanged window, so the edge can still
   * sendfile it; undefined when the range touches changed bytes.
   */
  localWindow?(start: number, end: number): { path: string; offset: number } | undefined;
  /** Reads are cheapest in these units (see ByteSource.align); streamers cut their chunks on them. */
  readonly align?: import("./source.ts").Align | undefined;
}

/** Length of the next chunk to read at `pos`: at most `max`, ending on an alignment unit when there is one. */
export function chunkLength(data: Pick<FileData, "align">, pos: number, end: number, max: number): number {
  const a = data.align;
  if (!a || a.unit > max) return Math.min(max, end - pos);
  const toBoundary = a.unit - ((a.offset + pos) % a.unit);
  return Math.min(end - pos, toBoundary + Math.floor((max - toBoundary) / a.unit) * a.unit);
}

export interface FileTree {
  /** "iso", "dir", "zip"…, for logs and `ls`. */
  readonly kind: string;
  readonly description: string;
  /**
   * Every file's bytes are in a local file (FileData.local), so the HTTP edge can sendfile them. False for
   * a URL source (until its disk cache is complete): those bytes are streamed from memory.
   */
  readonly local: boolean;
  /**
   * The tree as a whole disc image (an ISO file, at a URL, or stored in a zip; absent for a directory):
   * what BIOS clients boot as a CD, with one file replaced for them (boot/files.ts).
   */
  readonly disc?: DiscImage | undefined;
  /** Case-insensitive lookup; undefined when absent. Paths use "/" and never leave the tree. */
  stat(path: string): Promise<FileInfo | undefined>;
  list(path: string): Promise<FileInfo[]>;
  /** Bytes of a regular file found by stat. */
  open(info: FileInfo): Promise<FileData>;
  close(): Promise<void>;
}

export interface DiscImage {
  /** El Torito boot record present: BIOS can boot it. */
  readonly bootable: boolean;
  /** The image byte for byte, except that each path holds its content (iso/patch.ts). */
  withFiles(files: ReadonlyArray<{ path: string; content: Uint8Array }>): Promise<FileData>;
}

/** Content tags of byte arrays served again and again (the iPXE binaries): hashed once, not per request. */
const etags = new WeakMap<Uint8Array, string>();

/** In-memory file contents (rewritten boot.cfg, kickstart, iPXE script, an iPXE binary). */
export function memoryData(bytes: Uint8Array, mtime?: Date): FileData {
  let etag = etags.get(bytes);
  if (etag === undefined) {
    etag = `"m-${fnv1a(bytes)}-${bytes.length.toString(16)}"`;
    etags.set(bytes, etag);
  }
  return {
    size: bytes.length,
    mtime,
    etag,
    read: async (offset, length) => bytes.subarray(offset, offset + length),
    local: undefined,
    bytes,
  };
}

/** Reads a whole (small) file. */
export async function readAll(data: FileData): Promise<Uint8Array> {
  return data.read(0, data.size);
}

/** FNV-1a, 32 bits, hex: cheap content tag for generated files (not a security hash). */
export function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
