/** Keeps the layering honest: imports point down; boot/ knows no protocol; dhcp/ never imports bsdp/. */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const src = join(import.meta.dir, "..", "src");

/** For each top-level unit of src/, the units it may import. */
const allowed: Record<string, string[]> = {
  "errors.ts": [],
  // Every default and bound, written once: a leaf every unit may read.
  "config.ts": ["errors.ts", "wire"],
  "wire": ["errors.ts"],
  "log.ts": [],
  "iso": ["errors.ts", "wire", "config.ts"],
  "files": ["errors.ts", "wire", "iso", "log.ts", "net", "config.ts"],
  "boot": ["errors.ts", "wire", "files", "config.ts", "log.ts"],
  "net": ["errors.ts", "wire", "log.ts", "config.ts"],
  "state": ["errors.ts", "config.ts"],
  // Clients of machines' BMCs (Redfish, IPMI, Wake-on-LAN) behind one Driver.
  "bmc": ["errors.ts", "wire", "config.ts", "net"],
  // The one bus and its typed union: what a file is (boot's FileKind), which firmware asked.
  "events.ts": ["wire", "boot", "log.ts"],
  "http": ["errors.ts", "wire", "files", "boot", "log.ts", "net", "config.ts", "events.ts"],
  "tftp": ["errors.ts", "wire", "files", "boot", "log.ts", "net", "config.ts", "events.ts"],
  "dhcp": ["errors.ts", "wire", "boot", "log.ts", "net", "state", "config.ts", "events.ts"],
  "bsdp": ["errors.ts", "wire", "boot", "dhcp", "log.ts", "net", "state", "config.ts", "events.ts"],
  "hosts": ["errors.ts", "wire", "boot", "log.ts", "state", "events.ts", "http", "config.ts"],
  "demo": ["errors.ts", "wire", "iso", "files", "boot", "http", "tftp", "net", "config.ts"],
  "doctor": ["errors.ts", "wire", "log.ts", "net", "dhcp", "files", "config.ts"],
  "sim": ["errors.ts", "wire", "iso", "boot", "dhcp", "bsdp", "tftp", "http", "demo", "net", "config.ts"],
  "ui": ["errors.ts", "wire", "log.ts", "events.ts", "hosts", "http", "config.ts"],
  "os": ["errors.ts"],
  // Driving machines: their BMCs (bmc/), what is known of them (hosts/), the bus and the servers' facts.
  "drive": ["errors.ts", "wire", "config.ts", "log.ts", "net", "bmc", "boot", "hosts", "events.ts", "http", "state"],
  "app.ts": ["drive", "errors.ts", "wire", "iso", "files", "boot", "net", "http", "tftp", "dhcp", "bsdp", "hosts", "state", "log.ts", "config.ts", "events.ts", "ui"],
  "cli": ["*"],
  "main.ts": ["cli"],
  "assets.d.ts": [],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") && !p.endsWith(".d.ts") ? [p] : [];
  });
}

const unitOf = (file: string) => relative(src, file).split("/")[0]!;

test("imports point down the layers", () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const unit = unitOf(file);
    const rules = allowed[unit];
    if (!rules) {
      violations.push(`${relative(src, file)}: unit ${unit} has no layering rule in test/architecture.test.ts`);
      continue;
    }
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:import|export)[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(src)) continue; // package.json, scripts/ assets
      const to = unitOf(target);
      if (to === unit || rules.includes("*") || rules.includes(to)) continue;
      violations.push(`${relative(src, file)} imports ${spec} (${to}), not allowed for ${unit}`);
    }
  }
  expect(violations).toEqual([]);
});

test("codecs and pure layers use no node: builtins (portable, testable from bytes)", () => {
  const pure = ["wire", "iso", "boot"];
  const offenders = files(src)
    .filter((f) => pure.includes(unitOf(f)))
    .filter((f) => /from\s+["']node:/.test(readFileSync(f, "utf8")))
    .map((f) => relative(src, f));
  expect(offenders).toEqual([]);
});

test("library code never exits the process or prints", () => {
  const offenders = files(src)
    .filter((f) => !["cli", "main.ts"].includes(unitOf(f)))
    .filter((f) => /process\.exit\(|console\.(log|error|warn|info)\(|process\.std(out|err)\.write/.test(readFileSync(f, "utf8")))
    .map((f) => relative(src, f));
  expect(offenders).toEqual([]);
});
