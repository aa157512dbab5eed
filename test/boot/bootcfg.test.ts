import { describe, expect, test } from "bun:test";
import { getBootCfgValue, parseBootCfg, rewriteBootCfg, serializeBootCfg, splitModules, summarizeBootCfg } from "../../src/boot/esxi/bootcfg.ts";
import { expectGolden, fixture } from "../helpers/golden.ts";

const variants = ["6.7", "7.0", "8.0", "7.0-serial-crlf"];
const prefix = "http://10.77.0.1/esxi8/";
const ks = "http://10.77.0.1/esxi8/01-52-54-00-12-34-56/ks.cfg";

describe("boot.cfg rewrite (golden)", () => {
  for (const v of variants) {
    test(`${v}: prefix, relative paths, cdromBoot dropped`, () => {
      const out = serializeBootCfg(rewriteBootCfg(parseBootCfg(fixture(`esxi/boot.cfg.${v}`)), { prefix }));
      expectGolden(`esxi/boot.cfg.${v}.expected.prefix`, out);
    });
    test(`${v}: with a kickstart`, () => {
      const out = serializeBootCfg(rewriteBootCfg(parseBootCfg(fixture(`esxi/boot.cfg.${v}`)), { prefix, ks }));
      expectGolden(`esxi/boot.cfg.${v}.expected.ks`, out);
    });
  }
});

describe("boot.cfg rewrite rules", () => {
  const rewrite = (text: string, opts: Parameters<typeof rewriteBootCfg>[1] = { prefix }) =>
    serializeBootCfg(rewriteBootCfg(parseBootCfg(text), opts));

  test("every kernel= and modules= path loses its leading / or \\", () => {
    const out = parseBootCfg(rewrite("kernel=/b.b00\nmodules=/a.gz --- \\b.gz --- //c.v00 --- d.v00\n"));
    expect(getBootCfgValue(out, "kernel")).toBe("b.b00");
    expect(splitModules(getBootCfgValue(out, "modules")!)).toEqual(["a.gz", "b.gz", "c.v00", "d.v00"]);
    for (const m of splitModules(getBootCfgValue(out, "modules")!)) expect(m).not.toMatch(/^[/\\]/);
  });

  test("URLs in modules stay absolute (mboot's is_absolute treats :// as absolute)", () => {
    const out = parseBootCfg(rewrite("kernel=/b.b00\nmodules=http://x/y.v00 --- /k.b00\n"));
    expect(getBootCfgValue(out, "modules")).toBe("http://x/y.v00 --- k.b00");
  });

  test("prefix replaces an existing one, or is inserted before kernel=", () => {
    expect(rewrite("prefix=/old\nkernel=/b.b00\n")).toBe(`prefix=${prefix}\nkernel=b.b00\n`);
    expect(rewrite("title=x\nkernel=/b.b00\n")).toBe(`title=x\nprefix=${prefix}\nkernel=b.b00\n`);
    expect(rewrite("prefix=a\nprefix=b\nkernel=/b.b00\n")).toBe(`prefix=${prefix}\nkernel=b.b00\n`);
  });

  test("kernelopt: ks= replaced, cdromBoot dropped in any case, other options kept in order", () => {
    const out = rewrite("kernel=/b.b00\nkernelopt=CDROMBOOT runweasel ks=usb:/KS.CFG com1_baud=115200 tty2Port=com1\n", { prefix, ks });
    expect(getBootCfgValue(parseBootCfg(out), "kernelopt")).toBe(`runweasel com1_baud=115200 tty2Port=com1 ks=${ks}`);
  });

  test("kernelopt: cdromBoot kept on request, extra options appended once", () => {
    const out = rewrite("kernel=/b.b00\nkernelopt=runweasel cdromBoot\n", { prefix, keepCdromBoot: true, extraKernelopt: "runweasel text nofb" });
    expect(getBootCfgValue(parseBootCfg(out), "kernelopt")).toBe("runweasel cdromBoot text nofb");
  });

  test("kernelopt is added after kernel= when the file has none and a kickstart is set", () => {
    expect(rewrite("kernel=/b.b00\nmodules=/a.gz\n", { prefix, ks })).toBe(`prefix=${prefix}\nkernel=b.b00\nkernelopt=ks=${ks}\nmodules=a.gz\n`);
    expect(rewrite("kernel=/b.b00\n", { prefix })).toBe(`prefix=${prefix}\nkernel=b.b00\n`);
  });

  test("unknown keys, comments, blank and odd lines survive in order; keys keep their spelling", () => {
    const text = "# header\nbootstate=0\n\nKernel=/b.b00\nsomething odd\nupdated=0\nbuild=8.0.2-0.0.22380479\n";
    expect(rewrite(text)).toBe(`# header\nbootstate=0\n\nprefix=${prefix}\nKernel=b.b00\nsomething odd\nupdated=0\nbuild=8.0.2-0.0.22380479\n`);
  });

  test("CRLF in, CRLF out; a file without a final newline gets one", () => {
    expect(rewrite("kernel=/b.b00\r\ntimeout=5")).toBe(`prefix=${prefix}\r\nkernel=b.b00\r\ntimeout=5\r\n`);
  });

  test("parse → serialize is the identity on the ISO files", () => {
    for (const v of variants) {
      const text = fixture(`esxi/boot.cfg.${v}`);
      expect(serializeBootCfg(parseBootCfg(text))).toBe(text);
    }
  });
});

describe("boot.cfg summary", () => {
  test.each([
    ["8.0", "8.0.2-0.0.22380479", "8.0.2", "22380479"],
    ["7.0", "7.0.2-0.20.18426014", "7.0.2", "18426014"],
    ["6.7", "6.7.0-0.0.8169922", "6.7.0", "8169922"],
  ])("%s: build, version and build number", (v, build, version, number) => {
    const s = summarizeBootCfg(parseBootCfg(fixture(`esxi/boot.cfg.${v}`)));
    expect(s).toMatchObject({ title: "Loading ESXi installer", build, version, buildNumber: number, kernel: "/b.b00" });
    expect(s.modules[0]).toBe("/jumpstrt.gz");
  });
});
