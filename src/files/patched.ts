/**
 * A file made of a source with a few ranges replaced and, past its end, more bytes appended (iso/patch.ts):
 * the virtual ISO BIOS clients boot. Reads compose source bytes and patches; a range that touches no
 * patch is still a plain window on the source, so the HTTP edge can sendfile it.
 */
import type { Patch } from "../iso/patch.ts";
import type { ByteSource } from "./source.ts";
import type { FileData } from "./tree.ts";

export interface PatchedOptions {
  size: number;
  /** Sorted, non-overlapping; may reach past the end of the source. */
  patches: readonly Patch[];
  etag: string;
  mtime: Date | undefined;
}

export function patchedData(source: ByteSource, opts: PatchedOptions): FileData {
  const { size, patches } = opts;
  const touches = (start: number, end: number) => patches.some((p) => p.offset < end && p.offset + p.bytes.length > start);
  return {
    size,
    mtime: opts.mtime,
    etag: opts.etag,
    local: undefined,
    localWindow(start, end) {
      if (!source.localPath || end > source.size || touches(start, end)) return undefined;
      return { path: source.localPath, offset: (source.localOffset ?? 0) + start };
    },
    async read(offset, length) {
      const end = offset + length;
      if (offset < 0 || length < 0 || end > size) throw new RangeError(`read of ${length} bytes at ${offset} is outside the image (${size} bytes)`);
      const fromSource = Math.max(0, Math.min(end, source.size) - offset);
      const out = new Uint8Array(length);
      if (fromSource > 0) out.set(await source.read(offset, fromSource), 0);
      for (const p of patches) {
        const a = Math.max(offset, p.offset);
        const b = Math.min(end, p.offset + p.bytes.length);
        if (a < b) out.set(p.bytes.subarray(a - p.offset, b - p.offset), a - offset);
      }
      return out;
    },
  };
}
