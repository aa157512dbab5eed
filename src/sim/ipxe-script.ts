/**
 * Enough of iPXE's script language to follow a boot script as iPXE would (ipxe.org/scripting): settings
 * expanded (${mac:hexhyp}, ${platform}…), labels and goto, `&&` and `||` chains, iseq/isset, set, echo,
 * and the commands that end the script for a simulator: chain/kernel/imgexec (a loader), sanboot (a disc)
 * and exit (back to the firmware). Pure: the script and the settings in, what iPXE ends up doing out.
 */

export type IpxeOutcome =
  | { kind: "chain"; url: string; args: string[]; line: string }
  | { kind: "sanboot"; url: string; line: string }
  | { kind: "exit"; code: number; line: string }
  | { kind: "stuck"; why: string };

export interface IpxeRun {
  outcome: IpxeOutcome;
  /** What the script echoed, in order. */
  echoed: string[];
}

const MAX_STEPS = 500;

export function runIpxeScript(text: string, settings: Record<string, string>): IpxeRun {
  const vars = { ...settings };
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (!/^#!ipxe\b/i.test(lines.find((l) => l) ?? "")) return { outcome: { kind: "stuck", why: "not an iPXE script (no #!ipxe line)" }, echoed: [] };
  const labels = new Map<string, number>();
  lines.forEach((l, i) => {
    const m = /^:(\S+)/.exec(l);
    if (m) labels.set(m[1]!, i);
  });
  const echoed: string[] = [];
  const expand = (s: string) => s.replace(/\$\{([^}]+)\}/g, (_, k: string) => vars[k] ?? vars[k.replace(/^net0\//, "")] ?? "");
  let pc = 0;
  for (let steps = 0; steps < MAX_STEPS && pc < lines.length; ) {
    const raw = lines[pc]!;
    pc++;
    // Only commands count toward the loop limit: a long script of comments is no loop.
    if (!raw || raw.startsWith("#") || raw.startsWith(":")) continue;
    steps++;
    // a && b || c: each command runs when the chain so far allows it (iPXE's left-to-right rule).
    const parts = raw.split(/\s+(&&|\|\|)\s+/);
    let ok = true;
    let jumped = false;
    for (let i = 0; i < parts.length; i += 2) {
      const op = i === 0 ? undefined : parts[i - 1];
      if ((op === "&&" && !ok) || (op === "||" && ok)) continue;
      const words = expand(parts[i]!).split(/\s+/).filter(Boolean);
      const [cmd, ...args] = words;
      switch (cmd) {
        case "goto": {
          const to = labels.get(args[0] ?? "");
          if (to === undefined) return { outcome: { kind: "stuck", why: `goto ${args[0]}: no such label` }, echoed };
          pc = to + 1;
          jumped = true;
          ok = true;
          break;
        }
        case "iseq":
          ok = (args[0] ?? "") === (args[1] ?? "");
          break;
        case "isset":
          ok = (args[0] ?? "") !== "";
          break;
        case "set":
          if (args[0]) vars[args[0]] = args.slice(1).join(" ");
          ok = true;
          break;
        case "echo":
          echoed.push(args.filter((a) => a !== "-n").join(" "));
          ok = true;
          break;
        case "chain":
        case "boot":
        case "kernel":
        case "imgselect":
        case "imgload":
        case "imgexec": {
          // ipxe.org/cmd/chain: --name/-n and --timeout/-t take a value (--name=x or --name x); the
          // first other word is the image, the rest its command line.
          const rest: string[] = [];
          for (let k = 0; k < args.length; k++) {
            const a = args[k]!;
            if (rest.length === 0 && /^(--name|--timeout|-n|-t)$/.test(a)) k++;
            else if (rest.length === 0 && /^(--autofree|--replace|--timeout=\S*|--name=\S*|-a|-r)$/.test(a)) continue;
            else rest.push(a);
          }
          if (!rest[0]) return { outcome: { kind: "stuck", why: `${cmd} with no image` }, echoed };
          return { outcome: { kind: "chain", url: rest[0], args: rest.slice(1), line: words.join(" ") }, echoed };
        }
        case "sanboot": {
          const url = args.filter((a) => !a.startsWith("--")).pop();
          if (!url) return { outcome: { kind: "stuck", why: "sanboot with no URL" }, echoed };
          return { outcome: { kind: "sanboot", url, line: words.join(" ") }, echoed };
        }
        case "exit":
          return { outcome: { kind: "exit", code: Number(args[0] ?? 0) || 0, line: raw }, echoed };
        case "prompt":
          ok = false; // nobody presses a key: the timeout passes
          break;
        case "shell":
          return { outcome: { kind: "stuck", why: "the script drops to the iPXE shell" }, echoed };
        default:
          ok = true; // dhcp, sleep, imgfree, ifopen…: nothing to follow
      }
      if (jumped) break;
    }
  }
  return { outcome: { kind: "stuck", why: pc >= lines.length ? "the script ends without booting anything" : `more than ${MAX_STEPS} steps (a goto loop?)` }, echoed };
}
