/**
 * The IPMI driver: a session per action (a BMC forgets idle sessions, and reinstalls wait minutes between
 * actions), closed when the action is done.
 *
 * Boot flags (IPMI v2.0 table 28-14, parameter 5): valid, next boot only, EFI, and the device. ipmitool's
 * `chassis bootdev pxe options=efiboot` sends the same bytes (0xA0 0x04). UEFI HTTP boot and virtual
 * media have no IPMI boot device: `http` and `cd` through IPMI mean the firmware's own network and CD entries.
 */
import { LIMITS } from "../config.ts";
import { BmcError } from "../errors.ts";
import type { BootFlags } from "./ipmi/codec.ts";
import { IpmiSession, type IpmiTarget } from "./ipmi/client.ts";
import type { BootSetting, BootTarget, Driver, PowerOp, PowerState } from "./driver.ts";

const DEVICE_OF: Record<BootTarget, "pxe" | "cd" | "disk"> = { pxe: "pxe", http: "pxe", cd: "cd", disk: "disk" };

export class IpmiDriver implements Driver {
  readonly kind = "ipmi" as const;
  readonly name: string;
  roundTrips = 0;
  lastAnswer = "";
  /** Suites tried at the last open, and what each gave. */
  suitesTried: string[] = [];
  private readonly target: IpmiTarget;
  constructor(target: IpmiTarget) {
    this.target = target;
    this.name = `IPMI ${target.host}:${target.port ?? LIMITS.bmc.ipmiPort}`;
  }

  async #with<T>(what: string, act: (s: IpmiSession) => Promise<T>): Promise<T> {
    let session: IpmiSession | undefined;
    try {
      session = await IpmiSession.open(this.target);
      this.suitesTried = session.attempts.map((a) => `${a.suite}: ${a.result}`);
      const out = await act(session);
      this.lastAnswer = `${what}: ${typeof out === "string" ? out : "accepted"}`;
      return out;
    } catch (err) {
      this.lastAnswer = err instanceof BmcError ? err.answer : String(err);
      throw err;
    } finally {
      if (session) {
        await session.close();
        this.roundTrips += session.requests;
      }
    }
  }

  powerState(): Promise<PowerState> {
    return this.#with("Get Chassis Status", async (s) => ((await s.powerIsOn()) ? "on" : "off"));
  }

  power(op: PowerOp): Promise<void> {
    return this.#with(`Chassis Control (${op})`, async (s) => {
      if (op === "cycle" && !(await s.powerIsOn())) return s.chassisControl("on"); // §28.3: cycle has no effect when off
      await s.chassisControl(op);
    });
  }

  setBootOnce(target: BootTarget): Promise<BootSetting> {
    return this.#with("Set System Boot Options", async (s) => {
      await s.setBootFlags({ device: DEVICE_OF[target], persistent: false, efi: true });
      // Set, but not readable back: said as such (not as a refusal of the setting).
      return s.getBootFlags().then(settingOf, (err: Error): BootSetting => ({ target: "not read back", once: undefined, uefi: undefined, raw: `set; the BMC would not read it back (${err instanceof BmcError ? err.answer : err.message})` }));
    });
  }

  readBoot(): Promise<BootSetting> {
    return this.#with("Get System Boot Options", async (s) => settingOf(await s.getBootFlags()));
  }

  clearBoot(): Promise<void> {
    return this.#with("Set System Boot Options (none)", (s) => s.setBootFlags({ device: "none", persistent: false, efi: true }));
  }

  async close(): Promise<void> {}
}

function settingOf(f: BootFlags & { raw: string }): BootSetting {
  // Flags the BMC does not mark valid may be ignored at the next boot: "once" is then not said.
  return { target: f.device, once: f.valid ? !f.persistent : undefined, uefi: f.efi, raw: `boot flags ${f.raw}${f.valid ? "" : " (not marked valid)"}` };
}
