/**
 * Debian's nginx on loopback, serving one directory: the real HTTP server (sendfile, Range, ETag) that URL
 * sources are tested against. Its own config, pid file and temp paths in a fresh directory; stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitFor } from "./cli.ts";
import { requireTool, tempDir } from "./tools.ts";

export interface Nginx {
  base: string;
  /** Requests nginx logged (method, path, Range header, status), in order. */
  requests(): string[];
  stop(): Promise<void>;
}

export async function startNginx(root: string, extraServerConf = ""): Promise<Nginx> {
  requireTool("nginx");
  const dir = tempDir("nginx-");
  const port = await freePort();
  const access = join(dir, "access.log");
  // As root, nginx would switch its workers to "nobody", who cannot read the test's 0700 temp directories.
  const user = process.getuid?.() === 0 ? "user root;" : "";
  writeFileSync(
    join(dir, "nginx.conf"),
    `${user}
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format t '$request_method $uri "$http_range" $status';
  access_log ${access} t;
  sendfile on;
  default_type application/octet-stream;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; root ${root}; ${extraServerConf} }
}
`,
  );
  const proc: ChildProcess = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d) => (stderr += String(d)));
  const up = async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { method: "HEAD" });
      return true;
    } catch {
      return false;
    }
  };
  await waitFor(up, 10_000, "nginx");
  if (!(await up())) {
    proc.kill("SIGKILL");
    throw new Error(`nginx did not start: ${stderr}`);
  }
  return {
    base: `http://127.0.0.1:${port}`,
    requests: () => {
      const r = spawnSync("cat", [access], { encoding: "utf8" });
      return (r.stdout ?? "").split("\n").filter(Boolean);
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGQUIT");
      await exited;
    },
  };
}
