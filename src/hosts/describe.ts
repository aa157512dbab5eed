/**
 * The prose, in one place: one event as one short line for a person (the last events of a machine on the
 * status page and at `/api/hosts/<mac>`, the plain lines of a run whose output is not a terminal), made
 * from the events' typed fields. Nothing reads these words back. No secrets: events carry none.
 */
import type { NetbootEvent } from "../events.ts";

/** Undefined for events too frequent or too internal to list (progress, request starts). */
export function describeEvent(e: NetbootEvent): string | undefined {
  switch (e.type) {
    case "dhcp.request": {
      const via = e.port === 4011 ? " (port 4011)" : e.relay ? ` (relay ${e.relay})` : "";
      if (e.answer) return `DHCP ${e.message}${via} → ${e.answer}${e.file ? ` ${e.file}` : ""}`;
      return `DHCP ${e.message}${via}: no answer${e.ignored ? ` (${e.ignored})` : ""}`;
    }
    case "bsdp.request":
      return `BSDP ${e.message}${e.answer ? ` → ${e.answer}` : e.ignored ? `: no answer (${e.ignored})` : ""}`;
    case "tftp.start":
      return `TFTP ${e.file}: ${formatBytes(e.size)}, blksize ${e.blksize}, windowsize ${e.windowsize}`;
    case "tftp.end":
      if (e.outcome === "sent") return `TFTP ${e.file} sent: ${formatBytes(e.bytes)} in ${e.seconds.toFixed(1)} s${e.retransmits ? `, ${e.retransmits} retransmits` : ""}`;
      if (e.sizeProbe) return `TFTP ${e.file}: size query (tsize), then error 8 from the client: normal`;
      return `TFTP ${e.file} ${e.outcome}${e.reason ? `: ${e.reason}` : ""}`;
    case "http.end":
      return `${e.method} ${e.path} ${e.status}${e.bytes ? ` (${formatBytes(e.bytes)})` : ""}${e.status >= 400 && e.note ? `: ${e.note}` : ""}`;
    case "http.abort":
      return `${e.method} ${e.path}: cut off, the client went away before the end (${formatBytes(e.bytes)})`;
    case "bootcfg.served":
      return `boot.cfg for ${e.image} by ${e.via}`;
    case "ks.served":
      return e.refused ? `kickstart refused: ${e.refused}` : `kickstart for ${e.image} sent`;
    case "host.phase":
      return `phase ${e.previous ?? "-"} → ${e.phase}${e.restart ? " (a new install)" : ""}`;
    case "host.armed":
      return "armed again: its next network boot installs";
    case "host.done":
      return `install done${e.seconds !== undefined ? ` after ${formatDuration(e.seconds)}` : ""}`;
    case "host.failed":
      return `install failed: ${e.reason}`;
    case "host.hint":
      return e.text ? e.text : undefined;
    default:
      return undefined;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
