/**
 * `netboot --version`: the version on the first line (`netboot X.Y.Z`), then what a bug report needs: the
 * commit it was built from, the runtime, and what is embedded (iPXE, the sample image, the status page).
 */
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadIpxeBinaries } from "../files/ipxe.ts";
import { statusHtml } from "../ui/page.ts";
import { readSampleIso } from "../demo/sample.ts";
import { version } from "./index.ts";

/** Set by scripts/build.ts (`define`): the commit and the kind of artifact. Absent when run from source. */
declare const NETBOOT_BUILD: string | undefined;

interface Build {
  commit: string;
  date: string;
  artifact: string;
}

function build(): Build {
  if (typeof NETBOOT_BUILD === "string") return JSON.parse(NETBOOT_BUILD) as Build;
  return { commit: sourceCommit(), date: "", artifact: "source tree" };
}

/** From source: the checkout's commit, "+dirty" when files differ from it. */
function sourceCommit(): string {
  const cwd = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  try {
    const head = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 2000 }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 2000 }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown (not a git checkout)";
  }
}

const kb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1e3)} KB`);

export async function versionText(): Promise<string> {
  const b = build();
  const runtime = typeof Bun !== "undefined" ? `Bun ${Bun.version}` : `Node ${process.version}`;
  const ipxe = await loadIpxeBinaries();
  const embedded = ipxe.source.startsWith("embedded");
  const sample = await readSampleIso().then((s) => s.length).catch(() => 0);
  return [
    `netboot ${version}`,
    `commit: ${b.commit}${b.date ? ` (built ${b.date})` : ""}`,
    `runtime: ${runtime} on ${process.platform}-${process.arch} (${b.artifact})`,
    `iPXE: ${embedded ? `embedded: ${[...ipxe.files].map(([n, d]) => `${n} ${kb(d.length)}`).join(", ")}` : `not embedded; at run time from ${ipxe.files.size ? ipxe.source : "nowhere (apt-get install ipxe, or --ipxe-dir)"}`}`,
    `embedded: sample image ${kb(sample)} (netboot demo), status page ${kb(new TextEncoder().encode(statusHtml).length)}`,
  ].join("\n");
}
