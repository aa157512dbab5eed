/**
 * An append-only journal of JSON lines beside a snapshot (the host store's files): each line is written
 * whole with one write(2) on an O_APPEND descriptor, so a kill -9 keeps every line written and a crash
 * mid-write leaves at most a torn last line; `sync` makes what was written durable, one fsync for every
 * caller waiting at the time (group commit).
 */
import { closeSync, fsync, ftruncateSync, openSync, readSync, fstatSync, writeSync } from "node:fs";

export class AppendJournal {
  readonly path: string;
  readonly #fd: number;
  #written = 0;
  #synced = 0;
  #running: Promise<void> | undefined;
  /** Lines written since the journal was last emptied. */
  lines = 0;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, "a+");
  }

  append(entry: unknown): void {
    writeSync(this.#fd, JSON.stringify(entry) + "\n");
    this.lines++;
    this.#written++;
  }

  /** Resolves once every line appended so far is on disk. */
  sync(): Promise<void> {
    if (this.#synced >= this.#written) return Promise.resolve();
    // One fsync at a time; a caller arriving meanwhile waits for the next (also after one that failed).
    if (this.#running) return this.#running.then(() => this.sync(), () => this.sync());
    const upTo = this.#written;
    const p = new Promise<void>((resolve, reject) =>
      fsync(this.#fd, (err) => {
        if (err) return reject(err);
        this.#synced = Math.max(this.#synced, upTo);
        resolve();
      }),
    ).finally(() => {
      if (this.#running === p) this.#running = undefined;
    });
    this.#running = p;
    return p;
  }

  /** Bytes from `offset` to the end, as written so far (by anyone appending to the file). */
  readFrom(offset: number): Uint8Array {
    const size = fstatSync(this.#fd).size;
    if (size <= offset) return new Uint8Array(0);
    const buf = new Uint8Array(size - offset);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(this.#fd, buf, got, buf.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }

  /** Empties the journal (what it held is in a synced snapshot). */
  truncate(): void {
    ftruncateSync(this.#fd, 0);
    this.lines = 0;
    this.#synced = this.#written;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * Splits journal text into complete lines. The last piece without its newline is a line still being
 * written (or torn by a crash): returned apart, with where the complete lines end.
 */
export function completeLines(bytes: Uint8Array): { lines: string[]; consumed: number; partial: Uint8Array } {
  const end = bytes.lastIndexOf(0x0a) + 1;
  const text = new TextDecoder().decode(bytes.subarray(0, end));
  return { lines: text.split("\n").filter((l) => l.trim() !== ""), consumed: end, partial: bytes.subarray(end) };
}
