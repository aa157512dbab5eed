/**
 * ESXi boot.cfg: parse into a model that keeps every line, rewrite for network boot, serialize.
 * Format as mboot reads it (vmware/esx-boot mboot/config.c, bootlib/parse.c): `key=value` lines, `#`
 * comments, keys case-insensitive, whitespace trimmed, list values split on "---".
 */

export type BootCfgLine =
  | { kind: "entry"; key: string; value: string }
  | { kind: "comment"; text: string }
  | { kind: "blank" }
  /** A line mboot would not understand either; kept verbatim. */
  | { kind: "other"; text: string };

export interface BootCfg {
  lines: BootCfgLine[];
  /** The source used CRLF line ends; serialize keeps them. */
  crlf: boolean;
}

export function parseBootCfg(text: string): BootCfg {
  const crlf = /\r\n/.test(text);
  const raw = text.replace(/\r\n?/g, "\n").split("\n");
  if (raw.length > 0 && raw[raw.length - 1] === "") raw.pop();
  const lines: BootCfgLine[] = raw.map((line): BootCfgLine => {
    const t = line.trim();
    if (t === "") return { kind: "blank" };
    if (t.startsWith("#")) return { kind: "comment", text: line };
    const eq = t.indexOf("=");
    if (eq <= 0) return { kind: "other", text: line };
    return { kind: "entry", key: t.slice(0, eq).trim(), value: t.slice(eq + 1).trim() };
  });
  return { lines, crlf };
}

export function serializeBootCfg(cfg: BootCfg): string {
  const nl = cfg.crlf ? "\r\n" : "\n";
  return (
    cfg.lines
      .map((l) => {
        switch (l.kind) {
          case "entry":
            return `${l.key}=${l.value}`;
          case "comment":
          case "other":
            return l.text;
          case "blank":
            return "";
        }
      })
      .join(nl) + nl
  );
}

/** Value of the first entry with this key (case-insensitive), as mboot reads it. */
export function getBootCfgValue(cfg: BootCfg, key: string): string | undefined {
  const k = key.toLowerCase();
  for (const l of cfg.lines) if (l.kind === "entry" && l.key.toLowerCase() === k) return l.value;
  return undefined;
}

/** "a --- b --- c" → ["a", "b", "c"] (LISTITEM_SEPARATOR in esx-boot; whitespace around items trimmed). */
export function splitModules(value: string): string[] {
  return value
    .split("---")
    .map((m) => m.trim())
    .filter((m) => m !== "");
}

export interface RewriteOptions {
  /**
   * `prefix=`: the URL (or TFTP directory) every relative kernel/module path is resolved against; leading
   * "/" are stripped from the paths so the prefix applies. Undefined: prefix= and the paths stay as the
   * image has them (a loader that reads them from the image itself, as from a CD).
   */
  prefix?: string | undefined;
  /** Kickstart URL put into kernelopt as `ks=…`, replacing any ks= already there. */
  ks?: string | undefined;
  /** Keep `cdromBoot` in kernelopt (default: drop it; the installer is not booting from a CD). */
  keepCdromBoot?: boolean;
  /** Extra kernel options appended to kernelopt (serial console, for example). */
  extraKernelopt?: string | undefined;
  /** `BOOTIF=01-aa-bb-…` for kernelopt (replacing one there), so the installer uses the NIC it booted from. */
  bootif?: string | undefined;
  /** Keys set only when the file does not set them (tftpblksize= for a boot.cfg read over TFTP). */
  defaults?: Readonly<Record<string, string>>;
}

/**
 * Rewrites boot.cfg for network boot. mboot's is_absolute() treats paths starting with "/" or "\" (or
 * containing "://") as absolute and ignores `prefix` for them, which is why VMware's PXE docs say to
 * "delete the leading /" from kernel= and modules=. Unknown keys (bootstate, build, updated, …),
 * comments and their order are kept.
 */
export function rewriteBootCfg(cfg: BootCfg, opts: RewriteOptions): BootCfg {
  const lines: BootCfgLine[] = [];
  const prefix = opts.prefix;
  let sawPrefix = false;
  let sawKernelopt = false;
  const seen = new Set<string>();
  for (const l of cfg.lines) {
    if (l.kind !== "entry") {
      lines.push(l);
      continue;
    }
    const key = l.key.toLowerCase();
    seen.add(key);
    if (key === "prefix" && prefix !== undefined) {
      // mboot reads the first prefix; later ones would only confuse a reader of the file.
      if (!sawPrefix) lines.push({ ...l, value: prefix });
      sawPrefix = true;
    } else if (key === "kernel" && prefix !== undefined) {
      lines.push({ ...l, value: relativePath(l.value) });
    } else if (key === "modules" && prefix !== undefined) {
      lines.push({ ...l, value: splitModules(l.value).map(relativePath).join(" --- ") });
    } else if (key === "kernelopt") {
      if (!sawKernelopt) lines.push({ ...l, value: rewriteKernelopt(l.value, opts) });
      sawKernelopt = true;
    } else {
      lines.push(l);
    }
  }
  const kernelAt = () => lines.findIndex((l) => l.kind === "entry" && l.key.toLowerCase() === "kernel");
  if (!sawPrefix && prefix !== undefined) {
    // Before kernel= (where stock ISOs carry their empty prefix=), else at the top.
    const at = kernelAt();
    lines.splice(at >= 0 ? at : 0, 0, { kind: "entry", key: "prefix", value: prefix });
  }
  if (!sawKernelopt) {
    const value = rewriteKernelopt("", opts);
    if (value !== "") {
      const at = kernelAt();
      lines.splice(at >= 0 ? at + 1 : lines.length, 0, { kind: "entry", key: "kernelopt", value });
    }
  }
  for (const [key, value] of Object.entries(opts.defaults ?? {})) {
    if (seen.has(key.toLowerCase())) continue;
    const at = lines.findIndex((l) => l.kind === "entry" && l.key.toLowerCase() === "prefix");
    lines.splice(at >= 0 ? at + 1 : 0, 0, { kind: "entry", key, value });
  }
  return { lines, crlf: cfg.crlf };
}

/** kernelopt: drop cdromBoot (unless kept), put the kickstart URL and BOOTIF in, keep every other option. */
export function rewriteKernelopt(value: string, opts: Pick<RewriteOptions, "ks" | "keepCdromBoot" | "extraKernelopt" | "bootif">): string {
  let tokens = value.split(/\s+/).filter((t) => t !== "");
  if (!opts.keepCdromBoot) tokens = tokens.filter((t) => t.toLowerCase() !== "cdromboot");
  if (opts.ks) {
    tokens = tokens.filter((t) => !/^ks=/i.test(t));
    tokens.push(`ks=${opts.ks}`);
  }
  if (opts.bootif) {
    tokens = tokens.filter((t) => !/^bootif=/i.test(t));
    tokens.push(`BOOTIF=${opts.bootif}`);
  }
  if (opts.extraKernelopt) {
    for (const t of opts.extraKernelopt.split(/\s+/).filter((x) => x !== "")) if (!tokens.includes(t)) tokens.push(t);
  }
  return tokens.join(" ");
}

/** What a boot.cfg says about the image: for names in menus (BSDP) and logs. */
export interface BootCfgSummary {
  title: string | undefined;
  /** `build=` as written, e.g. "8.0.2-0.0.22380479". */
  build: string | undefined;
  /** "8.0.2" from the build string. */
  version: string | undefined;
  /** "22380479": the last dotted part of the build string. */
  buildNumber: string | undefined;
  kernel: string | undefined;
  modules: string[];
}

export function summarizeBootCfg(cfg: BootCfg): BootCfgSummary {
  const build = getBootCfgValue(cfg, "build") || undefined;
  const m = build ? /^(\d+(?:\.\d+)*)(?:-[\d.]*?\.?(\d+))?$/.exec(build) : null;
  return {
    title: getBootCfgValue(cfg, "title") || undefined,
    build,
    version: m?.[1],
    buildNumber: m?.[2],
    kernel: getBootCfgValue(cfg, "kernel") || undefined,
    modules: splitModules(getBootCfgValue(cfg, "modules") ?? ""),
  };
}

// --- internal ---

/** Strips leading "/" and "\" so mboot applies prefix; URLs ("://") stay absolute on purpose. */
function relativePath(p: string): string {
  return p.includes("://") ? p : p.replace(/^[/\\]+/, "");
}
