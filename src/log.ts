/** Tagged loggers. Library code takes a Logger; only the CLI decides where it goes (consola) or that it is silent. */
import { createConsola, type ConsolaInstance } from "consola";

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  child(tag: string): Logger;
}

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";

const consolaLevels: Record<LogLevel, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

/** consola-backed logger: `[tag]` prefixes, level from --log-level / --verbose / --quiet. */
export function createLogger(tag: string, level: LogLevel = "info", instance?: ConsolaInstance): Logger {
  const base = instance ?? createConsola({ level: consolaLevels[level], formatOptions: { date: true, compact: true } });
  const c = tag ? base.withTag(tag) : base;
  return {
    debug: (m) => c.debug(m),
    info: (m) => c.info(m),
    warn: (m) => c.warn(m),
    error: (m) => c.error(m),
    child: (t) => createLogger(tag ? `${tag}:${t}` : t, level, base),
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

export interface LogLine {
  level: Exclude<LogLevel, "silent">;
  tag: string;
  msg: string;
}

/** Collects lines in memory; tests assert on what a service logged. */
export function memoryLogger(lines: LogLine[] = [], tag = ""): Logger & { lines: LogLine[] } {
  const at = (level: LogLine["level"]) => (msg: string) => void lines.push({ level, tag, msg });
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (t) => memoryLogger(lines, tag ? `${tag}:${t}` : t),
  };
}

export interface Warning {
  time: number;
  level: "warn" | "error";
  tag: string;
  msg: string;
}

/** A logger that also keeps its last `max` warnings and errors in `ring` (the status page's "recent warnings"). */
export function recordingLogger(base: Logger, ring: Warning[], max = 30, tag = ""): Logger {
  const keep = (level: Warning["level"], msg: string) => {
    ring.push({ time: Date.now(), level, tag, msg });
    if (ring.length > max) ring.splice(0, ring.length - max);
  };
  return {
    debug: (m) => base.debug(m),
    info: (m) => base.info(m),
    warn: (m) => {
      keep("warn", m);
      base.warn(m);
    },
    error: (m) => {
      keep("error", m);
      base.error(m);
    },
    child: (t) => recordingLogger(base.child(t), ring, max, tag ? `${tag}:${t}` : t),
  };
}

/** Counts refusals and says so once a second at most (refusals past a cap: "12 requests from 2 MACs dropped…"), so a flood cannot flood the log. */
export class ThrottledNotice {
  readonly #now: () => number;
  readonly #say: (line: string) => void;
  readonly #intervalMs: number;
  #count = 0;
  #keys = new Set<string>();
  #last = -Infinity;

  constructor(say: (line: string) => void, intervalMs = 1000, now: () => number = Date.now) {
    this.#say = say;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** One refusal of `key`; `describe(count, keys)` words the line when it is time to say it. */
  note(key: string, describe: (count: number, keys: ReadonlySet<string>) => string): void {
    this.#count++;
    if (this.#keys.size < 1000) this.#keys.add(key);
    const now = this.#now();
    if (now - this.#last < this.#intervalMs) return;
    this.#say(describe(this.#count, this.#keys));
    this.#last = now;
    this.#count = 0;
    this.#keys = new Set();
  }
}
