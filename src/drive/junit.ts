/**
 * The run as JUnit XML, which CI systems show (GitHub Actions' test reporters, GitLab's junit artifact,
 * Jenkins' junit step): one testcase per host, its phase timeline and duration; on failure the last phase,
 * the hint and the BMC's last answer. The text comes already scrubbed of secrets (reinstall.ts).
 */
import type { HostOutcome } from "./reinstall.ts";

const esc = (s: string) => s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "");

export function junitReport(outcomes: readonly HostOutcome[], started: Date, suite = "netboot reinstall"): string {
  const failures = outcomes.filter((o) => !o.ok).length;
  const total = outcomes.reduce((t, o) => Math.max(t, o.started / 1000 + o.seconds), started.getTime() / 1000) - started.getTime() / 1000;
  const cases = outcomes.map((o) => {
    const timeline = o.timeline.map((t) => `+${((t.at - o.started) / 1000).toFixed(1).padStart(7)} s  ${t.what}`).join("\n");
    const out = `${timeline}\nBMC: ${o.bmc}, ${o.roundTrips} round trips`;
    const failure = o.ok
      ? ""
      : `\n      <failure message="${esc(o.reason ?? "failed")}" type="${esc(o.phase ?? "none")}">${esc(`last phase: ${o.phase ?? "none"}\nreason: ${o.reason ?? "failed"}\nhint: ${o.hint ?? "-"}\nBMC said: ${o.bmcAnswer || "-"}`)}</failure>`;
    return `    <testcase classname="netboot.reinstall" name="${esc(`${o.name} (${o.mac})`)}" time="${o.seconds.toFixed(3)}">${failure}\n      <system-out>${esc(out)}</system-out>\n    </testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${esc(suite)}" tests="${outcomes.length}" failures="${failures}" time="${total.toFixed(3)}">`,
    `  <testsuite name="${esc(suite)}" tests="${outcomes.length}" failures="${failures}" errors="0" skipped="0" time="${total.toFixed(3)}" timestamp="${started.toISOString().replace(/\.\d+Z$/, "")}">`,
    ...cases,
    "  </testsuite>",
    "</testsuites>",
    "",
  ].join("\n");
}
