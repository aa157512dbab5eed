/**
 * The machines as lines of a terminal: one row per machine (MAC, hostname, IP, firmware, phase, a bar of
 * the kernel and module bytes served against the image's total, rate, age of its last event, its error or
 * hint) and a footer (mode, interface, images, counts by phase). Pure: the same /api/hosts view in, lines
 * no wider than the terminal out, so the live view (terminal.ts) only draws.
 */
import type { StatusInfo } from "../hosts/api.ts";
import { formatBytes } from "../hosts/describe.ts";
import type { HostViews } from "../hosts/view.ts";

export type HostRow = ReturnType<HostViews["row"]>;

export interface TableModel {
  hosts: HostRow[];
  status: StatusInfo;
  /** Nothing from any client for a while: said above the footer. */
  linkHint: string | undefined;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  red(s: string): string;
  cyan(s: string): string;
}

export const plainStyle: Style = { bold: (s) => s, dim: (s) => s, green: (s) => s, yellow: (s) => s, red: (s) => s, cyan: (s) => s };

const sgr = (open: number, close: number) => (s: string) => (s ? `\x1b[${open}m${s}\x1b[${close}m` : s);
export const ansiStyle: Style = { bold: sgr(1, 22), dim: sgr(2, 22), green: sgr(32, 39), yellow: sgr(33, 39), red: sgr(31, 39), cyan: sgr(36, 39) };

const BAR = 12;

/** Rows of machines that boot come first; plain DHCP clients of the link are only counted. */
export function tableLines(model: TableModel, width: number, height: number, now: number, style: Style = plainStyle): string[] {
  const w = Math.max(40, width - 1); // never the last column: a full line would wrap in some terminals
  const booting = model.hosts.filter((h) => h.phase || h.listed || h.verdict !== "not-netboot");
  const others = model.hosts.length - booting.length;
  const wide = w >= 110;
  const cols: Array<{ title: string; width: number }> = wide
    ? [
        { title: "MAC", width: 17 },
        { title: "HOST", width: 14 },
        { title: "IP", width: 15 },
        { title: "FW", width: 6 },
        { title: "PHASE", width: 10 },
        { title: "PROGRESS", width: BAR + 5 },
        { title: "RATE", width: 10 },
        { title: "LAST", width: 6 },
      ]
    : [
        { title: "MAC", width: 17 },
        { title: "HOST", width: 12 },
        { title: "FW", width: 5 },
        { title: "PHASE", width: 10 },
        { title: "PROGRESS", width: BAR + 5 },
        { title: "LAST", width: 5 },
      ];
  // A terminal narrower than the layout: columns go, least needed first, until the row fits.
  for (const drop of ["HOST", "FW", "LAST", "PROGRESS", "PHASE"]) {
    if (cols.reduce((n, c) => n + c.width + 1, 0) - 1 <= w) break;
    cols.splice(cols.findIndex((c) => c.title === drop), 1);
  }
  const fixed = cols.reduce((n, c) => n + c.width + 1, 0);
  const noteWidth = Math.max(0, w - fixed);
  const lines: string[] = [];
  lines.push(style.dim(fit(cols.map((c) => pad(c.title, c.width)).join(" ") + (noteWidth > 4 ? " NOTE" : ""), w)));
  const footer = footerLines(model, others, w, style);
  const room = Math.max(1, height - footer.length - 2);
  const shown = booting.slice(0, booting.length > room ? room - 1 : room);
  for (const h of shown) {
    const p = h.progress;
    const pct = p.total && h.phase ? Math.min(100, Math.floor((100 * p.bytes) / p.total)) : undefined;
    const filled = pct === undefined ? 0 : Math.round((BAR * pct) / 100);
    const bar = pct === undefined ? pad(p.bytes ? formatBytes(p.bytes) : "", BAR + 5) : `${"█".repeat(filled)}${"░".repeat(BAR - filled)} ${pad(`${pct}%`, 4)}`;
    const phase = phaseOf(h);
    const cells: Record<string, string> = {
      MAC: h.mac,
      HOST: h.hostname ?? (h.listed ? "" : "unlisted"),
      IP: h.ip ?? "",
      FW: firmwareOf(h),
      PHASE: phase,
      PROGRESS: bar,
      RATE: p.rate ? `${formatBytes(p.rate)}/s` : "",
      LAST: age(h.last_seen, now),
    };
    const { text: note, level } = noteOf(h);
    const noteText = noteWidth > 4 ? fit(note, noteWidth) : "";
    // Colour after fitting: the escapes take no columns.
    const line = cols
      .map((c) => {
        const cell = pad(cells[c.title]!, c.width);
        if (c.title === "PHASE") return phase === "done" ? style.green(cell) : phase === "failed" ? style.red(cell) : phase === "refused" ? style.yellow(cell) : style.bold(cell);
        if (c.title === "PROGRESS" && pct !== undefined) return style.cyan(cell);
        if (c.title === "HOST" && !h.listed) return style.dim(cell);
        return cell;
      })
      .join(" ");
    const painted = level === "error" ? style.red(noteText) : level === "warn" ? style.yellow(noteText) : style.dim(noteText);
    lines.push(noteText ? `${line} ${painted}` : line);
  }
  if (shown.length < booting.length) lines.push(style.dim(fit(`… and ${booting.length - shown.length} more machines: ${model.status.httpBase}/ lists them all`, w)));
  if (booting.length === 0) lines.push(style.dim(fit("no machine seen yet: network-boot one on this link", w)));
  return [...lines, ...footer];
}

/** One plain line for a phase change, when the output is not a terminal. */
export function phaseLine(h: HostRow, previous: string | null | undefined): string {
  const who = [h.mac, h.hostname ?? (h.listed ? undefined : "unlisted"), h.ip, firmwareOf(h) || undefined].filter(Boolean).join(" ");
  const p = h.progress;
  const bytes = p.total && p.bytes ? ` (${formatBytes(p.bytes)} of ${formatBytes(p.total)})` : "";
  return `${who}: ${previous ?? "-"} → ${h.phase}${bytes}`;
}

// --- internal ---

function footerLines(model: TableModel, others: number, w: number, style: Style): string[] {
  const s = model.status;
  const mode = s.mode === "server" ? "DHCP server" : s.mode === "proxy" ? "proxyDHCP" : s.mode === "off" ? "no DHCP" : s.mode;
  const counts = new Map<string, number>();
  for (const h of model.hosts) {
    const p = phaseOf(h);
    if (p !== "seen" || h.verdict !== "not-netboot") counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  const byPhase = [...counts].map(([p, n]) => `${n} ${p}`).join(", ");
  const images = s.images.map((i) => `${i.name} (${i.title})`).join(", ");
  const first = [`${mode}${s.iface ? ` on ${s.iface}` : ""}`, s.bsdp ? "BSDP on" : "BSDP off", s.tftp ? "TFTP" : "no TFTP", `${s.httpBase}/`].join(" · ");
  const second = [`images: ${images}`, byPhase || "no machines yet", others ? `${others} other DHCP client${others === 1 ? "" : "s"} (not network-booting)` : ""].filter(Boolean).join(" · ");
  const out = [style.dim(fit(first, w)), style.dim(fit(second, w))];
  if (model.linkHint) out.unshift(style.yellow(fit(model.linkHint, w)));
  return out;
}

function phaseOf(h: HostRow): string {
  if (h.phase) return h.phase;
  if (h.verdict === "local") return "local";
  if (h.verdict && h.verdict !== "boot" && h.verdict !== "not-netboot") return "refused";
  return h.listed ? "waiting" : "seen";
}

function firmwareOf(h: HostRow): string {
  if (h.platform) return h.platform;
  return h.firmware === "ipxe" ? "iPXE" : "";
}

function noteOf(h: HostRow): { text: string; level: "error" | "warn" | "info" } {
  if (h.hint?.level === "warn") return { text: h.hint.text, level: "warn" };
  if (h.last_error) return { text: h.last_error, level: "error" };
  if (h.hint) return { text: h.hint.text, level: "info" };
  if (!h.phase && h.answered) return { text: h.answered, level: "info" };
  return { text: h.last_event ?? "", level: "info" };
}

function age(iso: string | null, now: number): string {
  if (!iso) return "";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** Cut to `n` columns (one column per code point: the table's own text is ASCII and box characters). */
export function fit(s: string, n: number): string {
  const chars = [...s];
  return chars.length <= n ? s : n <= 1 ? chars.slice(0, n).join("") : chars.slice(0, n - 1).join("") + "…";
}

function pad(s: string, n: number): string {
  const f = fit(s, n);
  return f + " ".repeat(Math.max(0, n - [...f].length));
}
