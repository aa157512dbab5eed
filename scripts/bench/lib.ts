/** Benchmark helpers: test data, processes started and stopped by PID, CPU pinning, medians, tables. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";

export const repo = join(import.meta.dir, "..", "..");
export const benchDir = process.env.BENCH_DIR ?? "/var/tmp/netboot-bench";
export const bun = process.execPath;
export const runs = Number(process.env.RUNS ?? 5);

/**
 * The server gets CPU 0, the client CPU 1 (HTTP, DHCP); lock-step TFTP shares one CPU (across two vCPUs a
 * lock-step exchange measures the hypervisor's wake-up latency, not the server).
 */
export const serverCpus = process.env.SERVER_CPUS ?? "0";
export const clientCpus = process.env.CLIENT_CPUS ?? "1";

export function need(tools: string[]): void {
  const missing = tools.filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
  if (missing.length) {
    console.error(`missing tools: ${missing.join(", ")} (apt-get install ${missing.join(" ")})`);
    process.exit(2);
  }
}

export function sh(cmd: string, args: string[], opts: { cpus?: string } = {}): { code: number; out: string; err: string } {
  const argv = opts.cpus && opts.cpus !== "none" ? ["taskset", "-c", opts.cpus, cmd, ...args] : [cmd, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: r.stderr ?? "" };
}

/** Writes `size` pseudo-random bytes (xorshift32 from `seed`) to `path`, unless it already has that size. */
export function fillPseudoRandom(path: string, size: number, seed: number): void {
  if (existsSync(path) && statSync(path).size === size) return;
  const fd = openSync(path, "w");
  const chunk = new Uint8Array(1 << 20);
  let x = seed >>> 0 || 1;
  for (let off = 0; off < size; off += chunk.length) {
    for (let i = 0; i < chunk.length; i += 4) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      chunk[i] = x & 255;
      chunk[i + 1] = (x >>> 8) & 255;
      chunk[i + 2] = (x >>> 16) & 255;
      chunk[i + 3] = x >>> 24;
    }
    writeSync(fd, chunk, 0, Math.min(chunk.length, size - off));
  }
  closeSync(fd);
}

/** An nginx config serving `root` on 127.0.0.1:`port` (sendfile on, no access log), its files in `dir`. */
export function nginxConf(dir: string, root: string, port: number, workers: number | "auto" = "auto", host = "127.0.0.1"): string {
  return writeNginxConf(dir, workers, `default_type application/octet-stream;\n  server { listen ${host}:${port}; root ${root}; }`);
}

/**
 * An nginx reverse proxy on 127.0.0.1:`port` in front of `upstream` (keep-alive to it, buffered, nothing
 * spilled to disk), the peer of a URL source. With `cacheDir`: slice 1m + proxy_cache, the peer of
 * --cache-dir (each 1 MiB range fetched once, stored, served from the cache from then on).
 */
export function nginxProxyConf(dir: string, upstream: string, port: number, cacheDir?: string): string {
  const cache = cacheDir
    ? `slice 1m; proxy_cache c; proxy_cache_key $uri$slice_range; proxy_set_header Range $slice_range; proxy_cache_valid 200 206 1h;`
    : "proxy_max_temp_file_size 0;";
  return writeNginxConf(
    dir,
    1,
    `upstream origin { server ${upstream}; keepalive 8; }
  ${cacheDir ? `proxy_cache_path ${cacheDir} levels=1:2 keys_zone=c:10m max_size=4g inactive=1h use_temp_path=off;` : ""}
  server {
    listen 127.0.0.1:${port};
    location / { ${cache} proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`,
  );
}

/** dir/nginx.conf: what every bench nginx shares (sendfile on, no access log, its files in `dir`) and `http`. */
function writeNginxConf(dir: string, workers: number | "auto", http: string): string {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  ${http}
}
`,
  );
  return conf;
}

/**
 * What this machine charges for memory touched the first time, in CPU s/GB: a fresh process fills 256 MiB
 * of new memory once. On a VM whose memory the host backs lazily (and takes back when freed) this is
 * several times a memcpy, and every cold path that fills new pages (fetched bodies, a new file's page
 * cache) pays it, while sendfile from a cached file does not.
 */
export function firstTouchSecondsPerGB(cpus = serverCpus): number {
  const r = sh(bun, ["-e", "const c0 = process.cpuUsage(); new Uint8Array(256 << 20).fill(1); const c = process.cpuUsage(c0); console.log((c.user + c.system) / 1e6 / ((256 << 20) / 1e9));"], { cpus });
  return r.code === 0 ? Number(r.out.trim()) : NaN;
}

/** Test data: tree/BIG.BIN (256 MiB), tree/SMALL.BIN (1 MiB), test.iso (plain ISO 9660 like ESXi's). */
export function testData(): { tree: string; iso: string; big: number; small: number } {
  const tree = join(benchDir, "tree");
  const iso = join(benchDir, "test.iso");
  mkdirSync(tree, { recursive: true });
  const make = (name: string, size: number, seed: number) => fillPseudoRandom(join(tree, name), size, seed);
  make("BIG.BIN", 256 * 1024 * 1024, 12345);
  make("SMALL.BIN", 1024 * 1024, 777);
  if (!existsSync(iso) || statSync(iso).mtimeMs < statSync(join(tree, "BIG.BIN")).mtimeMs) {
    const r = sh("xorriso", ["-as", "mkisofs", "--norock", "-o", iso, tree]);
    if (r.code !== 0) throw new Error(`xorriso: ${r.err}`);
  }
  return { tree, iso, big: statSync(join(tree, "BIG.BIN")).size, small: statSync(join(tree, "SMALL.BIN")).size };
}

/** A server process we started, stopped by its PID (its process group, for wrappers). */
export class Server {
  readonly proc: ChildProcess;
  readonly name: string;
  constructor(name: string, argv: string[], opts: { cpus?: string; env?: Record<string, string>; log?: string } = {}) {
    this.name = name;
    const full = opts.cpus && opts.cpus !== "none" ? ["taskset", "-c", opts.cpus, ...argv] : argv;
    const out = opts.log ? openSync(opts.log, "w") : "ignore";
    this.proc = spawn(full[0]!, full.slice(1), { detached: true, stdio: ["ignore", out, out], env: { ...process.env, ...opts.env } });
  }
  async stop(): Promise<void> {
    const pid = this.proc.pid;
    if (!pid || this.proc.exitCode !== null) return;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {}
    for (let i = 0; i < 50 && this.proc.exitCode === null && this.proc.signalCode === null; i++) await Bun.sleep(100);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {}
    }
  }
}

export async function waitTcp(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const s = await Bun.connect({ hostname: host, port, socket: { data() {} } });
      s.end();
      return;
    } catch {
      await Bun.sleep(100);
    }
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Row {
  test: string;
  unit: string;
  /** Higher is better (MB/s, req/s) unless lowerIsBetter. */
  values: Record<string, number[]>;
  lowerIsBetter?: boolean;
}

/** Markdown table: median (min–max) per server, and netboot's ratio to each peer. */
export function table(rows: Row[], servers: string[], sut = "netboot"): string {
  const fmt = (xs: number[] | undefined) =>
    !xs || xs.length === 0 ? "-" : `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  const peers = servers.filter((s) => s !== sut);
  const head = `| test | unit | ${servers.join(" | ")} | ${peers.map((p) => `${sut}/${p}`).join(" | ")} |`;
  const sep = `|${"---|".repeat(2 + servers.length + peers.length)}`;
  const lines = rows.map((r) => {
    const ratios = peers.map((p) => {
      const a = median(r.values[sut] ?? []);
      const b = median(r.values[p] ?? []);
      if (!Number.isFinite(a) || !Number.isFinite(b) || a === 0 || b === 0) return "-";
      return `${(r.lowerIsBetter ? b / a : a / b).toFixed(2)}×`;
    });
    return `| ${r.test} | ${r.unit} | ${servers.map((s) => fmt(r.values[s])).join(" | ")} | ${ratios.join(" | ")} |`;
  });
  return [head, sep, ...lines].join("\n");
}

export function report(name: string, text: string): void {
  const dir = join(benchDir, "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.md`);
  writeFileSync(file, text + "\n");
  console.log(text);
  console.log(`\n(saved to ${file})`);
}

/**
 * CPU seconds (user + system) used so far by every process in a process group: the server and its threads
 * (netboot) or its master and workers (nginx). Read from /proc/<pid>/stat, in clock ticks of 1/100 s.
 */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the name: state ppid pgrp … utime (14th field of the line, 12th here) stime (13th).
    if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}
