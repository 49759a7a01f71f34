// What the browser drivers (player.spec.mjs, ads.spec.mjs) share: Debian's /usr/bin/chromium through
// playwright-core (no browser download), one throw-away profile per run, the page's console errors in
// the report, and one JSON report on stdout with an exit code the pytest wrappers read.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `url` with the page parameters that are set (format, engine, ...), URL-encoded.
export function withParams(url, pairs) {
  const extra = pairs.filter(([, v]) => v).map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  return extra ? url + (url.includes("?") ? "&" : "?") + extra : url;
}

// Open `url`, run `body(page, report, fail)`, print the report, exit 1 when a check failed.
export async function drive(url, prefix, body) {
  const profile = mkdtempSync(join(tmpdir(), prefix));
  const report = { ok: false, url, failures: [], console: [] };
  const fail = (msg) => report.failures.push(msg);
  // Same flags as a CI-safe headless run: no GPU, no QUIC, no background traffic to the internet.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
    viewport: { width: 1280, height: 800 },
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => { if (m.type() === "error" && report.console.length < 50) report.console.push(m.text()); });
    page.on("pageerror", (e) => report.console.push("pageerror: " + e.message));
    await page.goto(url, { waitUntil: "load" });
    await body(page, report, fail);
  } catch (err) {
    fail("driver error: " + (err && err.stack ? err.stack : String(err)));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  report.ok = report.failures.length === 0;
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(report.ok ? 0 : 1);
}

export function crashed(err) {
  process.stdout.write(JSON.stringify({ ok: false, failures: ["driver crashed: " + err.message] }) + "\n");
  process.exit(2);
}

// Poll `snapshot()` until the page says playback started (`ready`) or `seconds` pass; the first playlist may
// take a while to appear on a busy machine. -> {snap, startup (s)}.
export async function started(snapshot, seconds) {
  const t0 = Date.now();
  let snap = await snapshot();
  while (!(snap && snap.ready) && Date.now() - t0 < seconds * 1000) {
    await sleep(500);
    snap = await snapshot();
  }
  return { snap, startup: (Date.now() - t0) / 1000 };
}
