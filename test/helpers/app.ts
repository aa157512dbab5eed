/** Starts the whole app on loopback for a test, with a capturing logger. */
import { join } from "node:path";
import { startApp, type AppHandle } from "../../src/app.ts";
import type { TransferEvent } from "../../src/tftp/engine.ts";
import type { ServeConfig } from "../../src/config.ts";
import { makeConfig, validateServeConfig } from "../../src/config.ts";
import { tempDir as tempDirSync } from "./tools.ts";
import { memoryLogger, type LogLine } from "../../src/log.ts";

export const sampleIso = join(import.meta.dir, "..", "..", "scripts", "sample-esxi.iso");

export interface TestApp extends AppHandle {
  logs: LogLine[];
  url(path: string): string;
}

/** Runtime choices and observers for a test (they map onto config settings and the event bus). */
export interface TestHooks {
  httpRuntime?: "bun" | "node";
  udpRuntime?: "bun" | "node";
  tftpEngine?: "auto" | "event-loop" | "worker";
  onTftpTransfer?: (e: Pick<TransferEvent, "client" | "file" | "outcome" | "bytes" | "reason">) => void;
}

export async function startTestApp(
  over: Partial<Omit<ServeConfig, "boot" | "tftp" | "dhcp" | "ipxe" | "images">> & {
    source?: string;
    name?: string;
    boot?: Partial<ServeConfig["boot"]>;
    tftp?: Partial<ServeConfig["tftp"]>;
    dhcp?: Partial<ServeConfig["dhcp"]>;
    ipxe?: Partial<ServeConfig["ipxe"]>;
  } = {},
  hooks: TestHooks = {},
): Promise<TestApp> {
  const log = memoryLogger();
  const { source, ...rest } = over;
  const config = validateServeConfig(
    makeConfig(source ?? sampleIso, over.ip ?? "127.0.0.1", {
      ...rest,
      name: over.name ?? "esxi",
      bind: over.bind ?? "127.0.0.1",
      http: { port: 0, edge: hooks.httpRuntime, ...over.http },
      cacheMem: over.cacheMem ?? 0,
      tftp: { enabled: false, port: 0, engine: hooks.tftpEngine, ...over.tftp },
      udp: hooks.udpRuntime,
      dhcp: { mode: "off", ...over.dhcp },
      stateDir: over.stateDir ?? tempDirSync("state-"),
      // A kickstart for every machine, as before there were host lists (tests that list hosts say so).
      hosts: over.hosts ?? { allow: [], allowAny: over.boot?.ks !== undefined },
    }),
  );
  const app = await startApp(config, log);
  const onEnd = hooks.onTftpTransfer;
  if (onEnd) app.bus.subscribe((e) => e.type === "tftp.end" && onEnd({ client: e.client, file: e.file, outcome: e.outcome as TransferEvent["outcome"], bytes: e.bytes, reason: e.reason }));
  return Object.assign(app, { logs: log.lines, url: (p: string) => `${app.httpBase}${p}` });
}

/** `curl` with the given args; returns status, headers (lower-case) and body bytes. */
export async function curl(args: string[]): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array; stderr: string }> {
  const { tempDir } = await import("./tools.ts");
  const dir = tempDir("curl-");
  const proc = Bun.spawn(["curl", "-s", "-S", "-D", join(dir, "h"), "-o", join(dir, "b"), ...args], { stderr: "pipe" });
  const stderr = await new Response(proc.stderr).text();
  await proc.exited;
  const { readFileSync, existsSync } = await import("node:fs");
  const raw = existsSync(join(dir, "h")) ? readFileSync(join(dir, "h"), "utf8") : "";
  const blocks = raw.split(/\r?\n\r?\n/).filter((b) => b.startsWith("HTTP/"));
  const last = blocks[blocks.length - 1] ?? "";
  const lines = last.split(/\r?\n/);
  const status = Number(lines[0]?.split(" ")[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = existsSync(join(dir, "b")) ? new Uint8Array(readFileSync(join(dir, "b"))) : new Uint8Array(0);
  return { status, headers, body, stderr };
}
