/**
 * A real PostgreSQL for a test, from Debian's postgresql package: initdb into a temporary directory as the
 * package's `postgres` user (it refuses root), listening on a Unix socket only (no TCP port: nothing on
 * the network, and reachable from inside network namespaces, which share the file system), trust
 * authentication, stopped (and its directory removed) when the test is done.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export interface Postgres {
  /** The socket directory (unix_socket_directories). */
  readonly socketDir: string;
  /** A URL for database `db` as user netboot, through the socket. */
  url(db: string): string;
  /** Creates a database and returns its URL. */
  createDb(db: string): string;
  /** Runs SQL with psql and returns its output (tuples only, unaligned). */
  psql(db: string, sql: string): string;
  stop(): void;
}

function pgBin(name: string): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, "bin", name))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error(`PostgreSQL's ${name} is not installed; run .ci/run (Debian's postgresql package) before the tests`);
  return join(base, versions[0]!, "bin", name);
}

function runAs(user: string, argv: string[]): { code: number; out: string; err: string } {
  const r = spawnSync("runuser", ["-u", user, "--", ...argv], { encoding: "utf8" });
  return { code: r.status ?? 1, out: r.stdout ?? "", err: r.stderr ?? "" };
}

/** Starts one; `stop()` it in afterAll. */
export function startPostgres(): Postgres {
  if (process.getuid?.() !== 0) throw new Error("these tests need root (runuser to PostgreSQL's own user)");
  // Short: a Unix socket path is at most 107 bytes.
  const dir = mkdtempSync("/tmp/nbpg-");
  chmodSync(dir, 0o755);
  const pw = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  if (pw.status !== 0) throw new Error("no postgres user: is Debian's postgresql package installed?");
  chownSync(dir, Number(pw.stdout.trim()), 0);
  const data = join(dir, "data");
  const init = runAs("postgres", [pgBin("initdb"), "-D", data, "-A", "trust", "-U", "netboot", "--no-sync"]);
  if (init.code !== 0) throw new Error(`initdb failed: ${init.err}`);
  const start = runAs("postgres", [pgBin("pg_ctl"), "-D", data, "-w", "-l", join(dir, "log"), "-o", `-c listen_addresses='' -c unix_socket_directories=${dir} -c max_connections=200`, "start"]);
  if (start.code !== 0) throw new Error(`pg_ctl start failed: ${start.err}${start.out}`);
  let stopped = false;
  const pg: Postgres = {
    socketDir: dir,
    url: (db) => `postgres://netboot@localhost/${db}?host=${dir}`,
    createDb(db) {
      const r = spawnSync("psql", ["-h", dir, "-U", "netboot", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", `create database "${db}"`], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`create database ${db}: ${r.stderr}`);
      return pg.url(db);
    },
    psql(db, sql) {
      const r = spawnSync("psql", ["-h", dir, "-U", "netboot", "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
      return r.stdout;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      runAs("postgres", [pgBin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  process.on("exit", () => pg.stop());
  return pg;
}
