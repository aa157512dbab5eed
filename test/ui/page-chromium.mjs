/**
 * The status page in real Chromium (Debian's /usr/bin/chromium driven by playwright-core), under Node:
 * Playwright does not run under Bun. Run by page-chromium.test.ts:
 *
 *   node test/ui/page-chromium.mjs URL MAC SCREENSHOT.png
 *
 * Opens URL, waits for the row of MAC, then says `ready` on stderr; from then on samples the bytes that
 * row's Progress cell shows, until a line `done` arrives on stdin (the test's download is over). Then a
 * screenshot (and a second one at phone size, 390x844, with the page's horizontal overflow measured), and
 * one JSON line of results on stdout. Console errors and page errors of every page are collected.
 */
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const [url, mac, shot] = process.argv.slice(2);
if (!url || !mac || !shot) {
  console.error("usage: node page-chromium.mjs URL MAC SCREENSHOT.png");
  process.exit(2);
}
const phoneShot = shot.replace(/\.png$/, "") + "-phone.png";
const SAMPLE_MS = 150;
const DEADLINE_MS = 45_000;

/** "64.0 KiB" → 65536 (the page's bytes(), read back; rounded as shown). */
function parseBytes(text) {
  const m = /([\d.]+)\s*(B|KiB|MiB|GiB)\b/.exec(text);
  if (!m) return null;
  const mult = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2]];
  return Math.round(Number(m[1]) * mult);
}

/** The bytes a Progress cell shows: "5% · 64.0 KiB of 1.3 MiB", or just "64.0 KiB" without a total. */
function shownBytes(progressText) {
  const t = progressText.trim();
  if (!t) return null;
  const served = t.includes("·") ? t.split("·")[1].split(" of ")[0] : t;
  return parseBytes(served);
}

const result = {
  url,
  mac,
  row: false,
  rowText: null,
  cells: null,
  samples: [],
  bytes: [],
  screenshot: shot,
  phoneScreenshot: phoneShot,
  phone: null,
  live: null,
  consoleErrors: [],
  pageErrors: [],
  failedRequests: [],
  error: null,
};

const stdinDone = new Promise((resolve) => {
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => {
    buf += c;
    if (/^done$/m.test(buf)) resolve();
  });
  process.stdin.on("end", resolve);
});

const userDataDir = mkdtempSync(join(tmpdir(), "netboot-chromium-"));
const deadline = setTimeout(() => {
  result.error = `timed out after ${DEADLINE_MS} ms`;
  finish(1);
}, DEADLINE_MS);

let context;
let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  try {
    await context?.close();
  } catch {
    // already gone
  }
  rmSync(userDataDir, { recursive: true, force: true });
  // Exit only once the line is out (a pipe's writes are asynchronous in Node).
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

function watch(page, label) {
  page.on("console", (m) => {
    if (m.type() === "error") result.consoleErrors.push(`${label}: ${m.text()} ${m.location()?.url ?? ""}`.trim());
  });
  page.on("pageerror", (e) => result.pageErrors.push(`${label}: ${e.message}`));
  page.on("requestfailed", (r) => {
    // The event stream is cut when the page closes: not a failure of the page.
    if (!r.url().endsWith("/api/events")) result.failedRequests.push(`${label}: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ""}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) result.failedRequests.push(`${label}: ${r.request().method()} ${r.url()} ${r.status()}`);
  });
}

const rowSel = `tr.host[data-mac="${mac}"]`;
const progressOf = (page) => page.locator(`${rowSel} td[data-label="Progress"]`).innerText();

try {
  mkdirSync(dirname(shot), { recursive: true });
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 720 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page, "desktop");
  await page.goto(url, { waitUntil: "load" });
  await page.locator(rowSel).waitFor({ state: "visible", timeout: 15_000 });
  result.row = true;
  // The event stream is up: what the page hears from now on reaches the row within its 300 ms throttle.
  await page.waitForFunction(() => document.getElementById("live")?.textContent === "live", null, { timeout: 10_000 });
  result.live = await page.locator("#live").innerText();
  process.stderr.write("ready\n");

  let over = false;
  void stdinDone.then(() => (over = true));
  const t0 = Date.now();
  const take = async () => {
    const text = await progressOf(page);
    result.samples.push({ ms: Date.now() - t0, text: text.trim(), bytes: shownBytes(text) });
  };
  while (!over) {
    await take();
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
  // The last request's event, then the page's refresh (300 ms throttle) and render.
  await new Promise((r) => setTimeout(r, 1000));
  await take();
  // Distinct values as they appeared (the page shows each step for a while).
  for (const s of result.samples) if (s.bytes !== null && s.bytes !== result.bytes.at(-1)) result.bytes.push(s.bytes);

  result.rowText = (await page.locator(rowSel).innerText()).replace(/\s+/g, " ").trim();
  result.cells = await page.locator(`${rowSel} td`).evaluateAll((tds) => Object.fromEntries(tds.map((td) => [td.dataset.label, td.innerText.trim()])));
  await page.screenshot({ path: shot, fullPage: true });
  console.error(`screenshot: ${shot}`);

  // A phone: the page's CSS turns each row into a card under 760 px.
  const phone = await context.newPage();
  watch(phone, "phone");
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(url, { waitUntil: "load" });
  await phone.locator(rowSel).waitFor({ state: "visible", timeout: 15_000 });
  await phone.waitForFunction((sel) => /\d/.test(document.querySelector(`${sel} td[data-label="Progress"]`)?.textContent ?? ""), rowSel, { timeout: 10_000 });
  result.phone = await phone.evaluate((sel) => {
    const row = document.querySelector(sel);
    const box = row.getBoundingClientRect();
    const thead = document.querySelector("thead");
    return {
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
      rowLeft: box.left,
      rowRight: box.right,
      rowWidth: box.width,
      theadShown: getComputedStyle(thead).display !== "none",
      progress: row.querySelector('td[data-label="Progress"]').innerText.trim(),
      wider: [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : e.className ? "." + String(e.className).split(" ")[0] : "")).slice(0, 10),
    };
  }, rowSel);
  await phone.screenshot({ path: phoneShot, fullPage: true });
  console.error(`phone screenshot: ${phoneShot}`);
  await phone.close();
  await page.close();
  await finish(0);
} catch (err) {
  result.error = String(err?.stack ?? err);
  try {
    const page = context?.pages()[0];
    if (page) await page.screenshot({ path: shot, fullPage: true });
  } catch {
    // no screenshot then
  }
  await finish(1);
}
