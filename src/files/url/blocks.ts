/** The URL source's memory: an LRU of blocks bounded in bytes, and a limit on requests in flight. */

export class BlockLru {
  #bytes = 0;
  #map = new Map<number, Uint8Array>();
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }
  get(k: number): Uint8Array | undefined {
    const b = this.#map.get(k);
    if (b) {
      this.#map.delete(k);
      this.#map.set(k, b);
    }
    return b;
  }
  set(k: number, b: Uint8Array): void {
    if (this.#map.has(k)) return;
    this.#map.set(k, b);
    this.#bytes += b.length;
    for (const [key, v] of this.#map) {
      if (this.#bytes <= this.maxBytes) break;
      this.#map.delete(key);
      this.#bytes -= v.length;
    }
  }
}

export class Limiter {
  #active = 0;
  #queue: Array<() => void> = [];
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  free(): boolean {
    return this.#active < this.max;
  }
  get active(): number {
    return this.#active;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.max) await new Promise<void>((r) => this.#queue.push(r));
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
      this.#queue.shift()?.();
    }
  }
}
