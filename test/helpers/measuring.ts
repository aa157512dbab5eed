/**
 * What the measuring processes (the storm's clients, the small probe) share: their arguments, their own
 * event loop's lateness (so a figure they inflated themselves can be told apart), and percentiles.
 */

/** `--name value` from argv, else the default. */
export function argReader(argv: readonly string[]): (name: string, dflt?: string) => string {
  return (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1]! : dflt!;
  };
}

/** How late a 10 ms timer fires, sample by sample, until stop() (which returns the samples). */
export function lagMeter(): { stop(): number[] } {
  const lag: number[] = [];
  let expectedAt = performance.now() + 10;
  const timer = setInterval(() => {
    const now = performance.now();
    lag.push(Math.max(0, now - expectedAt));
    expectedAt = now + 10;
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return lag;
    },
  };
}

/** The p-th percentile by nearest rank (xs non-empty). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
