/** Byte sources: "N bytes at offset" from a local file (and, later, a URL or a zip entry). */
import { close, fstat, open, read } from "node:fs";
import { SourceError } from "../errors.ts";

export interface Align {
  unit: number;
  offset: number;
}

/** Shifts an alignment by `by` bytes (a window into a source). */
export function shiftAlign(a: Align | undefined, by: number): Align | undefined {
  return a && { unit: a.unit, offset: (a.offset + by) % a.unit };
}

/** The one seam every image is built on. Implementations: local file, URL (range requests), zip entry. */
export interface ByteSource {
  readonly size: number;
  /** Resolves to exactly `length` bytes, or rejects with a SourceError. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The file that holds these bytes, when there is one: lets the HTTP edge use sendfile. */
  readonly localPath: string | undefined;
  /** Where byte 0 of this source is in localPath (a stored zip entry); 0 when absent. */
  readonly localOffset?: number;
  /**
   * Reads are cheapest in whole units (a URL source's cache blocks): byte 0 of this source is at `offset`
   * in unit-aligned space. Absent for local files, where any read is as good as another.
   */
  readonly align?: Align | undefined;
  /** Modification time of the whole source (for ETag / Last-Modified). */
  readonly mtime: Date | undefined;
  /** Identity of the source's version (for ETags): changes when the source changes. */
  readonly version: string;
  readonly description: string;
  close(): Promise<void>;
}

/** Opens a local file for positional reads (a plain descriptor: cheap per read, no FileHandle bookkeeping). */
export async function openFileSource(path: string): Promise<ByteSource> {
  let fd: number;
  let st: import("node:fs").Stats;
  try {
    fd = await new Promise<number>((res, rej) => open(path, "r", (e, f) => (e ? rej(e) : res(f))));
    st = await new Promise((res, rej) => fstat(fd, (e, s) => (e ? rej(e) : res(s))));
  } catch (err) {
    throw sourceErrorFromFs(err, path);
  }
  if (st.isDirectory()) {
    close(fd, () => {});
    throw new SourceError("E_SOURCE_IS_DIR", `${path} is a directory`);
  }
  const size = st.size;
  let closed = false;
  return {
    size,
    localPath: path,
    mtime: st.mtime,
    version: `${st.ino.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${size.toString(16)}`,
    description: path,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (closed) throw new SourceError("E_SOURCE_CLOSED", `${path}: source is closed`);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new SourceError("E_SOURCE_RANGE", `${path}: read of ${length} bytes at ${offset} is past the end (${size} bytes)`);
      }
      return preadExact(fd, path, offset, length);
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((res) => close(fd, () => res()));
    },
  };
}

/** Exactly `length` bytes at `offset` of an open descriptor (positional reads, looping over short reads). */
export async function preadExact(fd: number, path: string, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = await new Promise<number>((res, rej) => read(fd, buf, done, length - done, offset + done, (e, k) => (e ? rej(sourceErrorFromFs(e, path)) : res(k))));
    if (n === 0) throw new SourceError("E_SOURCE_SHORT", `${path}: file ended at ${offset + done} while reading (it shrank?)`);
    done += n;
  }
  return buf;
}

export function sourceErrorFromFs(err: unknown, path: string): SourceError {
  const code = (err as { code?: string }).code;
  if (code === "ENOENT") return new SourceError("E_SOURCE_NOT_FOUND", `${path}: no such file or directory`);
  if (code === "EACCES" || code === "EPERM") return new SourceError("E_SOURCE_ACCESS", `${path}: permission denied`);
  if (code === "EISDIR") return new SourceError("E_SOURCE_IS_DIR", `${path} is a directory`);
  return new SourceError("E_SOURCE_IO", `${path}: ${(err as Error).message ?? String(err)}`, { cause: err });
}
