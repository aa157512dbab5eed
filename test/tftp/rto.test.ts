/** The retransmission timer (tftp/rto.ts): RFC 6298 smoothing, Karn's rule, back-off only while nothing moves. */
import { describe, expect, test } from "bun:test";
import { DEFAULT_TIMING, Rto } from "../../src/tftp/rto.ts";

describe("Rto", () => {
  test("a clean round trip sets the timeout from the measurement", () => {
    const r = new Rto(DEFAULT_TIMING, undefined);
    expect(r.ms).toBe(DEFAULT_TIMING.initialMs);
    r.sent(0, false);
    r.progress(20); // rtt 20 ms: srtt 20, rttvar 10 → 60 ms
    expect(r.ms).toBe(60);
  });

  test("timeouts in a row double it up to the ceiling, and the retries run out", () => {
    const r = new Rto(DEFAULT_TIMING, undefined);
    r.sent(0, false);
    r.progress(20);
    const seen: number[] = [];
    for (let i = 0; i < DEFAULT_TIMING.retries; i++) {
      expect(r.expired()).toBe(true);
      seen.push(r.ms);
    }
    expect(seen.slice(0, 4)).toEqual([120, 240, 480, 960]);
    expect(Math.max(...seen)).toBe(DEFAULT_TIMING.maxMs);
    expect(r.expired()).toBe(false);
  });

  test("progress after a resend ends the back-off (no sample taken: Karn's rule), so steady loss does not pin it at the ceiling", () => {
    const r = new Rto(DEFAULT_TIMING, undefined);
    r.sent(0, false);
    r.progress(20);
    for (let i = 0; i < 8; i++) r.expired();
    expect(r.ms).toBe(DEFAULT_TIMING.maxMs);
    r.sent(1000, true);
    r.progress(5000); // the ACK of a resent window: its round trip is ambiguous, not measured
    expect(r.ms).toBe(60);
    expect(r.timeouts).toBe(0);
  });

  test("a timeout the client negotiated (RFC 2349) is kept as it is", () => {
    const r = new Rto(DEFAULT_TIMING, 6);
    r.sent(0, false);
    r.progress(20);
    expect(r.ms).toBe(6000);
    r.expired();
    expect(r.ms).toBe(6000);
  });
});

test("a client that never answered is given up after firstRetries (a stray RRQ does not hold its slot for a minute)", () => {
  const r = new Rto(DEFAULT_TIMING, undefined);
  r.sent(0, false);
  for (let i = 0; i < DEFAULT_TIMING.firstRetries; i++) expect(r.expired()).toBe(true);
  expect(r.expired()).toBe(false);
  expect(r.answered).toBe(false);
  // Once it has answered, the full count applies.
  const a = new Rto(DEFAULT_TIMING, undefined);
  a.sent(0, false);
  a.progress(10);
  for (let i = 0; i < DEFAULT_TIMING.retries; i++) expect(a.expired()).toBe(true);
  expect(a.expired()).toBe(false);
});
