/**
 * /metrics in the Prometheus text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/),
 * written by hand: counters fed by the event bus (labels from the events' typed fields: a DHCP answer's
 * message type, a TFTP transfer's outcome), the hosts by phase read from the view. No MAC labels (one time
 * series per machine would grow without bound); the per-machine view is /api/hosts.
 */
import { PHASES, type EventBus } from "../events.ts";
import type { HostViews } from "./view.ts";

type Counter = Map<string, number>;

export class Metrics {
  readonly #counters = new Map<string, { help: string; values: Counter }>();
  readonly #hosts: HostViews;
  readonly #started = Date.now();

  constructor(bus: EventBus, hosts: HostViews) {
    this.#hosts = hosts;
    const add = (name: string, help: string, labels: string, by = 1) => {
      let c = this.#counters.get(name);
      if (!c) this.#counters.set(name, (c = { help, values: new Map() }));
      c.values.set(labels, (c.values.get(labels) ?? 0) + by);
    };
    // Declared up front, so a scrape before the first event still sees every metric.
    for (const [n, h] of Object.entries(HELP)) this.#counters.set(n, { help: h, values: new Map() });
    bus.subscribe((e) => {
      switch (e.type) {
        case "dhcp.request":
          add("netboot_dhcp_requests_total", HELP.netboot_dhcp_requests_total, `message="${label(e.message)}"`);
          if (e.answer) add("netboot_dhcp_answers_total", HELP.netboot_dhcp_answers_total, `type="${label(e.answer)}"`);
          break;
        case "bsdp.request":
          add("netboot_bsdp_requests_total", HELP.netboot_bsdp_requests_total, `message="${label(e.message)}"`);
          break;
        case "tftp.end":
          // A size query (tsize, then error 8 from the client) is a normal first step of edk2 and curl.
          add("netboot_tftp_transfers_total", HELP.netboot_tftp_transfers_total, `outcome="${e.sizeProbe ? "size-query" : e.outcome}"`);
          add("netboot_tftp_bytes_total", HELP.netboot_tftp_bytes_total, "", e.bytes);
          break;
        case "http.end":
          add("netboot_http_requests_total", HELP.netboot_http_requests_total, `status="${e.status}"`);
          add("netboot_http_bytes_total", HELP.netboot_http_bytes_total, "", e.bytes);
          // node:http says so at the end; Bun's edge with an http.abort after it.
          if (e.aborted) add("netboot_http_aborted_total", HELP.netboot_http_aborted_total, "");
          break;
        case "http.abort":
          add("netboot_http_aborted_total", HELP.netboot_http_aborted_total, "");
          break;
        case "host.done":
          add("netboot_installs_done_total", HELP.netboot_installs_done_total, "");
          break;
        case "host.failed":
          add("netboot_installs_failed_total", HELP.netboot_installs_failed_total, "");
          break;
        default:
          break;
      }
    });
  }

  render(): string {
    const out: string[] = [];
    for (const [name, c] of this.#counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      if (c.values.size === 0) out.push(`${name} 0`);
      for (const [labels, v] of c.values) out.push(`${name}${labels ? `{${labels}}` : ""} ${v}`);
    }
    const phases = new Map<string, number>();
    for (const s of this.#hosts.all()) phases.set(s.phase ?? "none", (phases.get(s.phase ?? "none") ?? 0) + 1);
    out.push("# HELP netboot_hosts Machines by phase (listed ones, and unlisted ones seen).", "# TYPE netboot_hosts gauge");
    for (const p of ["none", ...PHASES]) out.push(`netboot_hosts{phase="${p}"} ${phases.get(p) ?? 0}`);
    out.push("# HELP netboot_uptime_seconds Seconds since netboot started.", "# TYPE netboot_uptime_seconds gauge", `netboot_uptime_seconds ${((Date.now() - this.#started) / 1000).toFixed(0)}`);
    return out.join("\n") + "\n";
  }
}

const HELP = {
  netboot_dhcp_requests_total: "DHCP requests received, by message type.",
  netboot_dhcp_answers_total: "DHCP answers sent, by message type.",
  netboot_bsdp_requests_total: "Apple BSDP requests received.",
  netboot_tftp_transfers_total: "TFTP transfers ended, by outcome (sent, failed, refused, rejected, size-query).",
  netboot_tftp_bytes_total: "Bytes sent by TFTP.",
  netboot_http_requests_total: "HTTP requests answered, by status.",
  netboot_http_bytes_total: "Bytes sent by HTTP.",
  netboot_http_aborted_total: "HTTP answers whose client went away before the end of the body.",
  netboot_installs_done_total: "Installs that reported done.",
  netboot_installs_failed_total: "Installs that reported failure.",
} as const;

/** Label values escaped as the format says: backslash, double quote, newline. */
function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
