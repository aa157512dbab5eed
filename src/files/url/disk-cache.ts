/**
 * The URL source's disk cache (--cache-dir): a sparse file of the image keyed by URL + validator + size,
 * and a byte per block saying it is there, written after the block (a crash in between leaves the block
 * unmarked, never wrong). A restart reads the blocks from disk; once every one is there the file is the
 * image and is served like a local ISO.
 */
import { close, fstat, ftruncate, open, read, write } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface DiskCache {
  readonly path: string;
  readonly present: number;
  has(k: number): boolean;
  read(k: number, length: number): Promise<Uint8Array>;
  /** Any bytes of the file, once every block is there. */
  readAt(offset: number, length: number): Promise<Uint8Array>;
  write(k: number, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function openDiskCache(dir: string, key: string, meta: Record<string, unknown> & { size: number; blockSize: number }, blocks: number): Promise<DiskCache> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${key}.img`);
  const mapPath = join(dir, `${key}.blocks`);
  await writeFile(join(dir, `${key}.json`), JSON.stringify(meta, null, 1));
  const map = new Uint8Array(blocks);
  const old = await readFile(mapPath).catch(() => undefined);
  if (old && old.length === blocks) map.set(old);
  const fd = await fsOpen(path, "a+").then(async (f) => {
    await new Promise<void>((r) => close(f, () => r()));
    return fsOpen(path, "r+");
  });
  const st = await new Promise<import("node:fs").Stats>((res, rej) => fstat(fd, (e, s) => (e ? rej(e) : res(s))));
  if (st.size !== meta.size) {
    await new Promise<void>((res, rej) => ftruncate(fd, meta.size, (e) => (e ? rej(e) : res())));
    map.fill(0);
  }
  const mapFd = await fsOpen(mapPath, "a+").then(async (f) => {
    await new Promise<void>((r) => close(f, () => r()));
    return fsOpen(mapPath, "r+");
  });
  await new Promise<void>((res, rej) => write(mapFd, map, 0, map.length, 0, (e) => (e ? rej(e) : res())));
  let present = map.reduce((n, v) => n + (v ? 1 : 0), 0);
  return {
    path,
    get present() {
      return present;
    },
    has: (k) => map[k] === 1,
    read: (k, length) => readExact(fd, path, k * meta.blockSize, length),
    readAt: (offset, length) => readExact(fd, path, offset, length),
    async write(k, bytes) {
      if (map[k]) return;
      await new Promise<void>((res, rej) => write(fd, bytes, 0, bytes.length, k * meta.blockSize, (e) => (e ? rej(e) : res())));
      // The block's byte goes down after the block: a crash in between leaves the block unmarked, not wrong.
      await new Promise<void>((res, rej) => write(mapFd, Uint8Array.of(1), 0, 1, k, (e) => (e ? rej(e) : res())));
      if (!map[k]) {
        map[k] = 1;
        present++;
      }
    },
    async close() {
      await new Promise<void>((r) => close(fd, () => r()));
      await new Promise<void>((r) => close(mapFd, () => r()));
    },
  };
}

function readExact(fd: number, path: string, offset: number, length: number): Promise<Uint8Array> {
  return new Promise((res, rej) => {
    const buf = new Uint8Array(length);
    read(fd, buf, 0, length, offset, (e, n) => (e ? rej(e) : n !== length ? rej(new Error(`${path}: short read at ${offset}`)) : res(buf)));
  });
}

function fsOpen(path: string, flags: string): Promise<number> {
  return new Promise((res, rej) => open(path, flags, (e, f) => (e ? rej(e) : res(f))));
}

/**
 * Blocks go to the disk cache behind the client's back: a download is never slowed to the disk's write
 * speed. At most `limit` bytes wait; beyond that a block is not cached this time (it is fetched again later).
 */
export class WriteBehind {
  readonly #disk: DiskCache;
  readonly #warn: (message: string) => void;
  readonly #skippedOnce: () => void;
  readonly #limit: number;
  #writing: Promise<void> = Promise.resolve();
  #waiting = 0;
  #skipped = 0;

  constructor(disk: DiskCache, warn: (message: string) => void, skippedOnce: () => void, limit = 64 << 20) {
    this.#disk = disk;
    this.#warn = warn;
    this.#skippedOnce = skippedOnce;
    this.#limit = limit;
  }

  offer(k: number, bytes: Uint8Array): void {
    if (this.#disk.has(k)) return;
    if (this.#waiting + bytes.length > this.#limit) {
      if (this.#skipped++ === 0) this.#skippedOnce();
      return;
    }
    this.#waiting += bytes.length;
    this.#writing = this.#writing
      .then(() => this.#disk.write(k, bytes))
      .catch((err) => this.#warn((err as Error).message))
      .finally(() => (this.#waiting -= bytes.length));
  }

  /** More than half the limit waits: the background fill holds off. */
  get busy(): boolean {
    return this.#waiting > this.#limit / 2;
  }

  /** Every write offered so far is done. */
  drain(): Promise<void> {
    return this.#writing;
  }
}
