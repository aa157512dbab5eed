/**
 * Hot-file cache: whole small files kept in memory, least recently used out first, bounded in bytes.
 * A lab boots many machines from the same few files; answering them from memory costs far less CPU
 * than a sendfile per request (measured: about 2× the requests/s of sendfile under Bun on this machine).
 * Files larger than `maxEntry` are never cached and go out by sendfile / streaming instead.
 */
export class ContentCache {
  readonly maxBytes: number;
  readonly maxEntry: number;
  #bytes = 0;
  #entries = new Map<string, { size: number; value: Promise<Uint8Array>; done: boolean }>();
  hits = 0;
  misses = 0;

  constructor(maxBytes: number, maxEntry = Math.floor(maxBytes / 4)) {
    this.maxBytes = Math.max(0, maxBytes);
    this.maxEntry = Math.min(this.maxBytes, Math.max(0, maxEntry));
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** True when a file of this size would be kept. */
  accepts(size: number): boolean {
    return size > 0 && size <= this.maxEntry;
  }

  /**
   * The file's bytes, from memory or loaded once (concurrent callers share one load). Undefined when the
   * file is too large to cache. A failed load is forgotten, so the next request tries again.
   */
  get(key: string, size: number, load: () => Promise<Uint8Array>): Promise<Uint8Array> | undefined {
    if (!this.accepts(size)) return undefined;
    const hit = this.#entries.get(key);
    if (hit) {
      this.hits++;
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit.value;
    }
    this.misses++;
    const entry = { size, value: load(), done: false };
    this.#entries.set(key, entry);
    this.#bytes += size;
    entry.value.then(
      () => {
        entry.done = true;
        this.#evict();
      },
      () => {
        if (this.#entries.get(key) === entry) {
          this.#entries.delete(key);
          this.#bytes -= size;
        }
      },
    );
    return entry.value;
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  // --- internal ---

  #evict(): void {
    for (const [key, e] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      if (!e.done) continue; // loads in flight are still being awaited
      this.#entries.delete(key);
      this.#bytes -= e.size;
    }
  }
}
