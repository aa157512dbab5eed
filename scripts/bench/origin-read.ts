/**
 * The ceiling of a URL source's cold pass on this machine: the same ISO read from the same origin as
 * netboot's URL source reads it (1 MiB Range requests, 4 in flight, Bun's fetch), every byte received
 * and dropped: no cache, no serving. Run pinned on the server CPU by sources.ts. Prints bytes, seconds and
 * CPU seconds (start-up included) as JSON. Usage: bun origin-read.ts URL SIZE
 */
const [url, sizeArg] = Bun.argv.slice(2);
const size = Number(sizeArg);
if (!url || !(size > 0)) throw new Error("usage: origin-read.ts URL SIZE");
const block = 1 << 20;
const depth = 4;
let next = 0;
let received = 0;
const t0 = performance.now();
async function worker(): Promise<void> {
  while (next < size) {
    const from = next;
    next = Math.min(size, next + block);
    const r = await fetch(url!, { headers: { range: `bytes=${from}-${next - 1}` } });
    if (r.status !== 206) throw new Error(`${url}: ${r.status} for bytes ${from}-${next - 1}`);
    const n = (await r.arrayBuffer()).byteLength; // not `received += await …`: that reads received before the await
    received += n;
  }
}
await Promise.all(Array.from({ length: depth }, worker));
if (received !== size) throw new Error(`received ${received} of ${size} bytes`);
const cpu = process.cpuUsage(); // the whole process, every thread (getrusage)
console.log(JSON.stringify({ bytes: received, seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
export {};
