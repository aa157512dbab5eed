/**
 * Hardening checks at their full counts (npm test runs them small): the same test files, with the counts
 * raised by environment, their one-line figures printed. kill -9: 100 cycles of SIGKILL under DORA load
 * (test/dhcp/crash.test.ts); 1000 HTTP clients closing mid-body and 1000 TFTP clients vanishing mid-transfer
 * (test/http/aborted.test.ts); 100,000 fuzzed DHCP/BSDP/TFTP packets over the wire (test/net/fuzz-wire.test.ts); 10,000
 * mutated xorriso images through the ISO reader (test/iso/mutated.test.ts).
 */
import { join } from "node:path";
import { bun, repo } from "./lib.ts";

const CHECKS: Array<{ name: string; file: string; env: Record<string, string> }> = [
  { name: "kill -9 under DHCP load", file: "test/dhcp/crash.test.ts", env: { NETBOOT_KILL_CYCLES: process.env.KILL_CYCLES ?? "100" } },
  { name: "fuzzed packets over the wire", file: "test/net/fuzz-wire.test.ts", env: { NETBOOT_WIRE_FUZZ: process.env.WIRE_FUZZ ?? "100000" } },
  { name: "mutated ISO images", file: "test/iso/mutated.test.ts", env: { NETBOOT_ISO_FUZZ: process.env.ISO_FUZZ ?? "10000" } },
  { name: "aborted downloads", file: "test/http/aborted.test.ts", env: { NETBOOT_ABORTS: process.env.ABORTS ?? "1000" } },
];

export async function benchHardening(): Promise<void> {
  let failed = 0;
  for (const c of CHECKS) {
    console.error(`[hardening] ${c.name}: ${c.file} ${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(" ")}`);
    const p = Bun.spawn([bun, "test", join(repo, c.file)], { cwd: repo, env: { ...process.env, ...c.env }, stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    for (const line of (out + err).split("\n")) if (/^\[\w+\]/.test(line) || /^\((pass|fail)\)/.test(line)) console.log(line);
    if (code !== 0) {
      failed++;
      console.log(err.split("\n").slice(-40).join("\n"));
    }
  }
  if (failed) process.exitCode = 1;
}
