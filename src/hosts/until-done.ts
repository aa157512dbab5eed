/**
 * --until-done: waits until every listed host in mode once or install has reported done (here, or through
 * another instance sharing the store), and says how each ended. 0 when all are done; 1 at a failure, at
 * the timeout, or when stopped first.
 */
import type { EventBus, NetbootEvent } from "../events.ts";
import type { HostStore } from "./store/store.ts";

export interface UntilDoneResult {
  code: 0 | 1;
  /** The verdict, one line. */
  summary: string;
  /** One line per host: MAC, hostname, the phase reached, the time it took; `done` says how it ended. */
  hosts: Array<{ line: string; done: boolean }>;
}

export async function untilDone(o: { store: HostStore; bus: EventBus; timeoutMs: number | undefined; stopped: Promise<void> }): Promise<UntilDoneResult> {
  const targets = o.store.book.hosts.filter((h) => h.mode !== "local");
  if (targets.length === 0) return { code: 1, summary: "--until-done: no host in mode once or install to wait for (list them in the lab file, or with --allow)", hosts: [] };
  const t0 = Date.now();
  const done = (mac: (typeof targets)[number]["mac"]) => o.store.get(mac)?.phase === "done";
  const pending = () => targets.filter((h) => !done(h.mac));
  let off = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await new Promise<{ code: 0 | 1; why: string }>((resolve) => {
    const targeted = new Set(targets.map((h) => h.mac));
    const check = (e?: NetbootEvent) => {
      // Only a host's done or failed changes the answer (made here or elsewhere, the tracker says it on the bus).
      if (e && e.type !== "host.done" && e.type !== "host.failed") return;
      if (e?.type === "host.failed" && e.mac && targeted.has(e.mac)) resolve({ code: 1, why: `${e.hostname ?? e.mac} failed: ${e.reason}` });
      else if (pending().length === 0) resolve({ code: 0, why: "every host reported done" });
    };
    off = o.bus.subscribe(check);
    check();
    if (o.timeoutMs !== undefined) timer = setTimeout(() => resolve({ code: 1, why: `timed out after ${(o.timeoutMs! / 1000).toFixed(0)} s` }), o.timeoutMs);
    void o.stopped.then(() => resolve({ code: 1, why: "stopped before every host was done" }));
  });
  off();
  if (timer) clearTimeout(timer);
  const hosts = targets.map((h) => {
    const r = o.store.get(h.mac);
    const took = r?.doneAt && r.startedAt ? `${((r.doneAt - r.startedAt) / 1000).toFixed(0)} s` : r?.startedAt ? `${((Date.now() - r.startedAt) / 1000).toFixed(0)} s so far` : "-";
    return { line: `${h.mac}  ${(h.hostname ?? "-").padEnd(16)} ${(r?.phase ?? "not seen").padEnd(10)} ${took}`, done: done(h.mac) };
  });
  const left = pending();
  const summary =
    result.code === 0
      ? `--until-done: ${result.why} in ${((Date.now() - t0) / 1000).toFixed(0)} s`
      : `--until-done: ${result.why}; not done: ${left.map((h) => `${h.hostname ?? h.mac} (last phase: ${o.store.get(h.mac)?.phase ?? "not seen"})`).join(", ") || "none"}`;
  return { code: result.code, summary, hosts };
}
