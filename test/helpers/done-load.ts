/**
 * Installers reporting done, for the kill -9 test, run in a namespace of its own
 * (`ip netns exec NS bun test/helpers/done-load.ts --base URL --tokens FILE --out FILE`): calls
 * /api/hosts/<mac>/done?token= for each host of FILE ({mac: token}) one after another, again until it is
 * answered 200 (the server may be down, being killed and started again), and appends the MAC to the out
 * file the moment the 200 arrives: what netboot acknowledged, written before anything else can happen.
 * Prints one JSON line with its counts at the end.
 */
import { appendFileSync, readFileSync } from "node:fs";

const rest = process.argv.slice(2);
const arg = (name: string) => {
  const i = rest.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is needed`);
  return rest[i + 1]!;
};
const base = arg("base");
const tokens = JSON.parse(readFileSync(arg("tokens"), "utf8")) as Record<string, string>;
const out = arg("out");
const pauseMs = Number(rest.includes("--pause") ? arg("pause") : "40");

let tries = 0;
let refused = 0;
for (const [mac, token] of Object.entries(tokens)) {
  for (;;) {
    tries++;
    try {
      const r = await fetch(`${base}/api/hosts/${mac}/done?token=${token}`, { signal: AbortSignal.timeout(3000) });
      await r.arrayBuffer();
      if (r.status === 200) {
        appendFileSync(out, `${mac}\n`);
        break;
      }
      refused++;
    } catch {
      // down (killed), or being started: try again
    }
    await Bun.sleep(pauseMs);
  }
  await Bun.sleep(pauseMs);
}
console.log(JSON.stringify({ hosts: Object.keys(tokens).length, tries, refused }));
