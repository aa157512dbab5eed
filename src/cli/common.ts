/** What every command shares: the logger from --verbose/--quiet, and typed errors → one line + exit code. */
import { consola, createConsola } from "consola";
import { ConfigError, NetbootError, ServiceError } from "../errors.ts";
import { LabError } from "../hosts/lab.ts";
import { createLogger, type LogLevel, type Logger } from "../log.ts";

export const logArgs = {
  verbose: { type: "boolean", alias: "v", description: "Log every request and dropped packet (debug level)" },
  quiet: { type: "boolean", alias: "q", description: "Log warnings and errors only" },
} as const;

export function loggerFor(args: { verbose?: boolean; quiet?: boolean }, opts: { toStderr?: boolean } = {}): Logger {
  const level: LogLevel = args.verbose ? "debug" : args.quiet ? "warn" : "info";
  if (!opts.toStderr) return createLogger("", level);
  const levels: Record<LogLevel, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };
  return createLogger("", level, createConsola({ level: levels[level], stdout: process.stderr, stderr: process.stderr, formatOptions: { date: true, compact: true } }));
}

/**
 * Runs a command body. Typed errors become one clear line (plus a hint) and the exit code their class
 * carries (errors.ts: 2 for bad input, 1 for everything else). Anything untyped is a bug and keeps its stack.
 */
export async function guard(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (err instanceof LabError) {
      // One line per problem in the lab file, each with its file:line:col.
      for (const p of err.problems) process.stderr.write(`${p}\n`);
      process.exit(2);
    }
    if (err instanceof NetbootError) {
      // One line: what went wrong, then what to do about it.
      consola.error(err instanceof ServiceError && err.hint ? `${err.message}: ${err.hint}` : err.message);
      process.exit(err.exitCode);
    }
    throw err;
  }
}

/** For commands whose stdout is the result (ls, cat, bootcfg): what the source says goes to stderr. */
export function stderrLogger(): Logger {
  return createLogger("", "info", createConsola({ level: 3, stdout: process.stderr, stderr: process.stderr, formatOptions: { compact: true } }));
}

export function die(message: string): never {
  throw new ConfigError("E_USAGE", message);
}
