/**
 * Wake-on-LAN for bench boxes with no BMC: power on only, by the magic packet (AMD's "Magic Packet
 * Technology" white paper: six 0xFF, then the MAC sixteen times) to UDP 9 of the serving link's directed
 * broadcast, sent from the serving address so it leaves on that link. Nothing else can be driven: the
 * machine boots by its own boot order (put the network first), and power off or a cycle is refused.
 */
import { createSocket } from "node:dgram";
import { LIMITS } from "../config.ts";
import { BmcError } from "../errors.ts";
import { formatIPv4, parseIPv4 } from "../wire/ipv4.ts";
import { macToBytes, type Mac } from "../wire/mac.ts";
import type { BootSetting, Driver, PowerOp, PowerState } from "./driver.ts";

export function magicPacket(mac: Mac): Uint8Array {
  const m = macToBytes(mac);
  const p = new Uint8Array(6 + 16 * 6).fill(0xff, 0, 6);
  for (let i = 0; i < 16; i++) p.set(m, 6 + i * 6);
  return p;
}

/** The directed broadcast of address/prefix (10.77.0.1/24 → 10.77.0.255). */
export function directedBroadcast(address: string, prefix: number): string {
  const host = prefix >= 32 ? 0 : 0xffffffff >>> prefix;
  return formatIPv4((parseIPv4(address) | host) >>> 0);
}

export class WolDriver implements Driver {
  readonly kind = "wol" as const;
  readonly name: string;
  roundTrips = 0;
  lastAnswer = "";
  private readonly mac: Mac;
  private readonly from: { address: string; prefix: number };
  constructor(mac: Mac, from: { address: string; prefix: number }) {
    this.mac = mac;
    this.from = from;
    this.name = `Wake-on-LAN ${directedBroadcast(from.address, from.prefix)}:${LIMITS.bmc.wolPort}`;
  }

  async powerState(): Promise<PowerState> {
    return "unknown";
  }

  async power(op: PowerOp): Promise<void> {
    if (op === "off") throw new BmcError("E_BMC_UNSUPPORTED", `${this.name}: Wake-on-LAN can only power a machine on`);
    // A cycle of a machine that is on is out of reach; a magic packet to one that is off starts it.
    const socket = createSocket("udp4");
    try {
      await new Promise<void>((res, rej) => {
        socket.once("error", rej);
        socket.bind(0, this.from.address, () => res());
      });
      socket.setBroadcast(true);
      const to = directedBroadcast(this.from.address, this.from.prefix);
      const packet = magicPacket(this.mac);
      for (let i = 0; i < LIMITS.bmc.wolRepeats; i++) {
        if (i) await new Promise((r) => setTimeout(r, LIMITS.bmc.wolGapMs));
        await new Promise<void>((res, rej) => socket.send(packet, LIMITS.bmc.wolPort, to, (err) => (err ? rej(err) : res())));
        this.roundTrips++;
      }
      this.lastAnswer = `magic packet for ${this.mac} sent ${LIMITS.bmc.wolRepeats} times`;
    } catch (err) {
      this.lastAnswer = (err as Error).message;
      throw new BmcError("E_BMC_UNREACHABLE", `${this.name}: ${(err as Error).message}`);
    } finally {
      socket.close();
    }
  }

  async setBootOnce(): Promise<BootSetting> {
    return this.readBoot();
  }

  async readBoot(): Promise<BootSetting> {
    return { target: "the machine's own boot order", once: undefined, uefi: undefined, raw: "no BMC (Wake-on-LAN)" };
  }

  async clearBoot(): Promise<void> {}

  async close(): Promise<void> {}
}
