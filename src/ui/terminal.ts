/**
 * The live view under the start-up lines: a region at the bottom of the terminal redrawn from `frame()`
 * at most 10 times a second (on resize too), each redraw one synchronized-output frame (DEC mode 2026:
 * the terminal shows it whole or not yet, no flicker), the cursor hidden while it runs and restored on
 * stop, exit and Ctrl-C. Log lines keep scrolling above it: a write to stdout or stderr while the view is
 * up erases the region, writes the line, and draws the region again under it.
 *
 * Our own ~150 lines (log-update and listr2 need Node 22; ink brings React). When stdout is not a
 * terminal the CLI does not start it and prints one plain line per phase change instead.
 */

export interface LiveStream {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
  write(chunk: string | Uint8Array, ...rest: unknown[]): boolean;
  on(event: "resize", fn: () => void): unknown;
  off(event: "resize", fn: () => void): unknown;
}

export interface LiveViewOptions {
  out: LiveStream;
  /** Other streams whose writes must go above the region (stderr, when it is the same terminal). */
  also?: LiveStream[];
  /** The region's lines for a terminal this wide and high. */
  frame(columns: number, rows: number): string[];
  /** Redraws per second, at most. */
  fps?: number;
}

const SYNC_ON = "\x1b[?2026h";
const SYNC_OFF = "\x1b[?2026l";
const HIDE = "\x1b[?25l";
const SHOW = "\x1b[?25h";
const ERASE_DOWN = "\x1b[0J";

export class LiveView {
  readonly #out: LiveStream;
  readonly #streams: LiveStream[];
  readonly #frame: LiveViewOptions["frame"];
  readonly #interval: number;
  readonly #writes = new Map<LiveStream, LiveStream["write"]>();
  readonly #onResize = () => this.#redraw(true);
  readonly #onExit = () => this.#restoreCursor();
  #drawn = 0;
  #lastDraw = 0;
  #dirty = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running = false;

  constructor(opts: LiveViewOptions) {
    this.#out = opts.out;
    this.#streams = [opts.out, ...(opts.also ?? [])];
    this.#frame = opts.frame;
    this.#interval = 1000 / (opts.fps ?? 10);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const s of this.#streams) {
      const original = s.write.bind(s) as LiveStream["write"];
      this.#writes.set(s, original);
      // Someone else's output (the log): above the region, which is drawn again under it.
      s.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => this.#above(s, chunk, rest)) as LiveStream["write"];
    }
    this.#out.on("resize", this.#onResize);
    process.on("exit", this.#onExit);
    this.#raw(HIDE);
    this.#redraw(true);
    // Ages tick once a second even without events; events mark the view dirty.
    let ticks = 0;
    this.#timer = setInterval(() => {
      ticks++;
      if (this.#dirty || ticks % Math.round(1000 / this.#interval) === 0) this.#redraw(false);
    }, this.#interval);
    this.#timer.unref?.();
  }

  /** Something changed: redraw at the next frame (at most `fps` a second). */
  invalidate(): void {
    this.#dirty = true;
  }

  /** Draws the last frame, gives the streams and the cursor back. The region stays on screen. */
  stop(): void {
    if (!this.#running) return;
    this.#redraw(true);
    this.#running = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#out.off("resize", this.#onResize);
    process.off("exit", this.#onExit);
    for (const [s, w] of this.#writes) s.write = w;
    this.#writes.clear();
    this.#restoreCursor();
  }

  get running(): boolean {
    return this.#running;
  }

  // --- internal ---

  #raw(s: string): void {
    (this.#writes.get(this.#out) ?? this.#out.write.bind(this.#out))(s);
  }

  #erase(): string {
    return this.#drawn > 0 ? `\x1b[${this.#drawn}F${ERASE_DOWN}` : "";
  }

  #render(): string {
    const cols = this.#out.columns ?? 80;
    const rows = this.#out.rows ?? 24;
    let lines: string[];
    try {
      lines = this.#frame(cols, rows);
    } catch (err) {
      lines = [`(live view failed: ${(err as Error).message})`];
    }
    this.#drawn = lines.length;
    return lines.map((l) => `${l}\x1b[0K\n`).join("");
  }

  #redraw(now: boolean): void {
    if (!this.#running) return;
    const t = Date.now();
    if (!now && t - this.#lastDraw < this.#interval * 0.8) return;
    this.#dirty = false;
    this.#lastDraw = t;
    const erase = this.#erase();
    this.#raw(SYNC_ON + erase + this.#render() + SYNC_OFF);
  }

  #above(stream: LiveStream, chunk: string | Uint8Array, rest: unknown[]): boolean {
    const write = this.#writes.get(stream)!;
    const text = typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    const line = text.endsWith("\n") ? text : `${text}\n`;
    const t = Date.now();
    // A flood of log lines redraws at most `fps` times a second; in between the region waits below.
    const draw = t - this.#lastDraw >= this.#interval;
    const frame = draw ? this.#render() : "";
    const erase = this.#erase();
    if (!draw) {
      this.#drawn = 0;
      this.#dirty = true;
    } else this.#lastDraw = t;
    const out = this.#writes.get(this.#out)!;
    if (stream === this.#out) return write(SYNC_ON + erase + line + frame + SYNC_OFF, ...rest);
    // Another stream on the same terminal: erase through stdout, write there, draw again through stdout.
    out(SYNC_ON + erase);
    const r = write(line, ...rest);
    out(frame + SYNC_OFF);
    return r;
  }

  #restoreCursor(): void {
    this.#raw(SHOW);
  }
}
