/** `netboot serve` as a subprocess (in a namespace when asked), with its log collected. */
import { join } from "node:path";
import { bun, repo, waitFor } from "./cli.ts";

export interface Served {
  proc: ReturnType<typeof Bun.spawn>;
  log(): string;
  waitLog(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export async function serve(args: string[], opts: { ns?: string; env?: Record<string, string>; ready?: RegExp; readyMs?: number } = {}): Promise<Served> {
  const argv = [bun, join(repo, "src/main.ts"), "serve", ...args];
  const proc = Bun.spawn(opts.ns ? ["ip", "netns", "exec", opts.ns, ...argv] : argv, {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
  });
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) text += new TextDecoder().decode(c);
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  const served: Served = {
    proc,
    log: () => text,
    waitLog: (re, timeoutMs = 20_000) => waitFor(() => re.test(text) || proc.exitCode !== null, timeoutMs, `log ${re}`).then(() => {
      if (!re.test(text)) throw new Error(`server exited (${proc.exitCode}) before ${re}:\n${text}`);
    }),
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      return proc.exited;
    },
  };
  await served.waitLog(opts.ready ?? /ready:/, opts.readyMs ?? 30_000);
  return served;
}
