import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const repo = join(import.meta.dir, "..");

test("README starts with the demo and test commands; .ci/run runs the test command verbatim", () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const commands = block.split("\n").filter((l) => l.trim()).map((l) => l.replace(/\s+#.*$/, "").trim());
  expect(commands.length).toBe(2);
  expect(commands[0]).toContain("npm start");
  const testCommand = commands[1]!;
  expect(testCommand).toContain("npm test");
  const ci = readFileSync(join(repo, ".ci/run"), "utf8").trim().split("\n");
  expect(ci[ci.length - 1]!.trim()).toBe(testCommand);
  expect(readme.indexOf("```sh")).toBeLessThan(20);
});

test("npm test installs its own Debian packages first (pretest), from the one list .ci/run uses too", async () => {
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { scripts: Record<string, string> };
  expect(pkg.scripts.pretest).toBe("bash scripts/test-deps.sh");
  expect(readFileSync(join(repo, ".ci/run"), "utf8")).toContain("bash scripts/test-deps.sh --install");
  expect(readFileSync(join(repo, ".ci/run"), "utf8")).not.toMatch(/apt-get/);
  const list = readFileSync(join(repo, "scripts/test-packages.txt"), "utf8");
  for (const p of ["xorriso", "qemu-system-x86", "ovmf", "dnsmasq-base", "nginx", "chromium", "tmux", "qemu-user-static", "libc6-arm64-cross"]) expect(list).toMatch(new RegExp(`(^|\\s)${p}(\\s|$)`, "m"));
  if (process.getuid?.() !== 0) return;
  const run = (argv: string[], env: Record<string, string> = {}) => {
    const r = Bun.spawnSync(argv, { cwd: repo, env: { ...process.env, ...env }, stderr: "pipe", stdout: "pipe" });
    return { code: r.exitCode, err: r.stderr.toString() };
  };
  // As root with everything present (this run got here): nothing to do, exit 0.
  expect(run(["bash", "scripts/test-deps.sh"])).toEqual({ code: 0, err: "" });
  // Not root, one package missing: the exact command, exit 1.
  const { tempDir } = await import("./helpers/tools.ts");
  const { writeFileSync, chmodSync } = await import("node:fs");
  const d = tempDir("pkgs-");
  chmodSync(d, 0o755);
  writeFileSync(join(d, "list"), "busybox netboot-no-such-package\n");
  const user = run(["runuser", "-u", "nobody", "--", "bash", "scripts/test-deps.sh"], { NETBOOT_TEST_PACKAGES: join(d, "list") });
  expect(user.code).toBe(1);
  expect(user.err.trim()).toBe("pretest: the tests need these Debian packages, and root: sudo apt-get install --no-install-recommends netboot-no-such-package");
  const noRoot = run(["runuser", "-u", "nobody", "--", "bash", "scripts/test-deps.sh"]);
  expect(noRoot).toEqual({ code: 1, err: "pretest: the suite creates network namespaces and needs root: sudo npm test\n" });
});
