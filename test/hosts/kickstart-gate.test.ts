/**
 * Who may fetch a kickstart (hosts/kickstart-gate.ts): the lab layer's security rule, as a pure function.
 * A kickstart wipes a disk and carries the lab's secrets; it goes only to the machine itself (the address
 * its lease or the neighbour table ties to its MAC) and only while it is armed. No root, no network: the
 * namespace test (test/hosts/lab-network.test.ts) shows the same rule on the wire.
 */
import { describe, expect, test } from "bun:test";
import { bookFromFlags, type HostBook } from "../../src/hosts/book.ts";
import { askedElsewhere, isTheHost, kickstartGate, type KickstartAsk } from "../../src/hosts/kickstart-gate.ts";
import type { Mac } from "../../src/wire/mac.ts";
import { tempDir } from "../helpers/tools.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const A = "52:54:00:00:00:0a" as Mac;
const B = "52:54:00:00:00:0b" as Mac;
const U = "52:54:00:00:00:99" as Mac;
const ks = join(tempDir("gate-"), "ks.cfg");
writeFileSync(ks, "vmaccepteula\nrootpw {{rootpw}}\n");

const listed: HostBook = bookFromFlags({ allow: [A, B], allowAny: false, ks, image: "esxi" });
const anyone: HostBook = bookFromFlags({ allow: [], allowAny: true, ks, image: "esxi" });
const armed = () => undefined;
const ask = (over: Partial<KickstartAsk>): KickstartAsk => ({ mac: A, from: "10.0.0.11", macAtFrom: A, leasedIp: "10.0.0.11", ...over });

describe("a listed host", () => {
  test("from its own address (its lease, or the neighbour table): its kickstart", () => {
    expect(kickstartGate(ask({}), listed, armed)).toMatchObject({ allow: true, mac: A, entry: { mac: A } });
    // Only the lease says so (a static address, no ARP entry yet).
    expect(kickstartGate(ask({ macAtFrom: undefined }), listed, armed)).toMatchObject({ allow: true });
    // Only the neighbour table says so (proxy mode: the lease is the site's server's).
    expect(kickstartGate(ask({ leasedIp: undefined }), listed, armed)).toMatchObject({ allow: true });
  });

  test("from another machine's address: refused, naming the address (B asks for A's)", () => {
    const v = kickstartGate(ask({ from: "10.0.0.12", macAtFrom: B }), listed, armed);
    expect(v).toEqual({ allow: false, refused: `asked from 10.0.0.12, which is not ${A}'s address` });
    // An address nothing is known of, and no address at all.
    expect(kickstartGate(ask({ from: "10.0.0.99", macAtFrom: undefined }), listed, armed)).toMatchObject({ allow: false });
    expect(kickstartGate(ask({ from: undefined, macAtFrom: undefined }), listed, armed)).toEqual({ allow: false, refused: `asked from ?, which is not ${A}'s address` });
  });

  test("not armed (done in mode once, mode local, denied): refused with the policy's reason, whoever asks", () => {
    const why = "installed (done 2026-12-07T00:00:00.000Z); netboot hosts rearm … to install again";
    expect(kickstartGate(ask({}), listed, () => why)).toEqual({ allow: false, refused: why });
  });
});

describe("no list (--allow-any) and MACs the lab does not list", () => {
  test("--allow-any: any MAC, from any address, gets the one kickstart; so does a request that names no MAC", () => {
    expect(kickstartGate(ask({ mac: U, from: "10.0.0.50", macAtFrom: undefined, leasedIp: undefined }), anyone, armed)).toMatchObject({ allow: true, entry: undefined, mac: U });
    expect(kickstartGate(ask({ mac: undefined, from: "10.0.0.50", macAtFrom: undefined, leasedIp: undefined }), anyone, armed)).toMatchObject({ allow: true, mac: undefined });
  });

  test("with a list, a request that names no MAC gets nothing, and says nothing worth a log line", () => {
    expect(kickstartGate(ask({ mac: undefined }), listed, armed)).toEqual({ allow: false, refused: "no MAC in the path: ask for /NAME/01-<mac>/ks.cfg", quiet: true });
  });

  test("an unlisted MAC where the list decides: refused with why it is not armed", () => {
    expect(kickstartGate(ask({ mac: U }), listed, (m) => (m === U ? "not listed (deny by default)" : undefined))).toEqual({ allow: false, refused: "not listed (deny by default)" });
  });

  test("armed but no kickstart configured for it: refused", () => {
    const none = bookFromFlags({ allow: [A], allowAny: false, ks: undefined, image: "esxi" });
    expect(kickstartGate(ask({}), none, armed)).toEqual({ allow: false, refused: "no kickstart for it" });
  });
});

test("isTheHost: what makes an address the host's own, and what does not", () => {
  expect(isTheHost(ask({}))).toBe(true);
  expect(isTheHost(ask({ macAtFrom: B, leasedIp: "10.0.0.11" }))).toBe(true); // its lease here
  expect(isTheHost(ask({ macAtFrom: B, leasedIp: "10.0.0.77" }))).toBe(false);
  // With a lease here, the lease alone decides: a neighbour entry (a gratuitous ARP can make one) does not.
  expect(isTheHost(ask({ macAtFrom: A, leasedIp: "10.0.0.77" }))).toBe(false);
  // No lease here (proxyDHCP: another server leased it): the neighbour table decides.
  expect(isTheHost(ask({ leasedIp: undefined }))).toBe(true);
  expect(isTheHost(ask({ leasedIp: undefined, macAtFrom: B }))).toBe(false);
  // Known to be another machine's (its events then move nothing of the host), or just not known to be the host's.
  expect(askedElsewhere(ask({ leasedIp: undefined, macAtFrom: B }))).toBe(true);
  expect(askedElsewhere(ask({ leasedIp: "10.0.0.77" }))).toBe(true);
  expect(askedElsewhere(ask({ leasedIp: undefined, macAtFrom: undefined }))).toBe(false);
  expect(isTheHost(ask({ leasedIp: undefined, macAtFrom: undefined }))).toBe(false);
  expect(isTheHost(ask({ mac: undefined }))).toBe(false);
  expect(isTheHost(ask({ from: undefined }))).toBe(false);
});
