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

describe("the wait for ACK 0 after an OACK", () => {
  test("outlasts two of atftp's 5 s timers, so a lost ACK 0 is sent again by the client (twice) before a second OACK", () => {
    const r = new Rto(DEFAULT_TIMING, undefined, true);
    r.sent(0, false);
    expect(r.deadline).toBe(DEFAULT_TIMING.oackMs);
    expect(r.deadline).toBeGreaterThan(2 * 5000);
    // A resent OACK waits no less.
    expect(r.expired()).toBe(true);
    r.sent(r.deadline, true);
    expect(r.deadline - DEFAULT_TIMING.oackMs).toBe(DEFAULT_TIMING.oackMs);
  });

  test("with a negotiated timeout, is twice that timeout and a margin (the client's timer fires first)", () => {
    const r = new Rto(DEFAULT_TIMING, 2, true);
    r.sent(100, false);
    expect(r.deadline).toBe(100 + 4000 + DEFAULT_TIMING.oackSlackMs);
  });

  test("once ACK 0 came, the blocks wait the measured round trip (fast recovery later in the transfer)", () => {
    const r = new Rto(DEFAULT_TIMING, undefined, true);
    r.sent(0, false);
    r.progress(2);
    r.sent(10, false);
    expect(r.deadline).toBe(10 + DEFAULT_TIMING.minMs);
  });

  test("a transfer without an OACK keeps the short first wait for DATA 1", () => {
    const r = new Rto(DEFAULT_TIMING, undefined, false);
    r.sent(0, false);
    expect(r.deadline).toBe(DEFAULT_TIMING.initialMs);
  });
});

test("an OACK the kernel did not take (ENOBUFS) is resent on the short timer: the client cannot have it", () => {
  const r = new Rto(DEFAULT_TIMING, undefined, true);
  r.sent(0, false, false);
  expect(r.deadline).toBe(DEFAULT_TIMING.initialMs);
});
