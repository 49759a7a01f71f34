// Drives Debian's /usr/bin/chromium with playwright-core (no browser download) against the
// Slipstream player page, the way a viewer would: open it, watch, press "Insert ad break".
//
//   node web/tests/player.spec.mjs URL [--play 20] [--ad-break] [--screenshot out.png]
//        [--format hls|dash] [--start-timeout 120] [--marker-timeout 60]
//
// Prints one JSON report on stdout ({ok, failures, progressed, stalls, markers, ...}) and exits
// 1 when a check failed, so the pytest wrapper can both assert and show what the player saw.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function parseArgs(argv) {
  const opts = { url: "", play: 20, adBreak: false, screenshot: "", format: "", startTimeout: 120, markerTimeout: 60 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--play") opts.play = Number(argv[++i]);
    else if (a === "--ad-break") opts.adBreak = true;
    else if (a === "--screenshot") opts.screenshot = argv[++i];
    else if (a === "--format") opts.format = argv[++i];
    else if (a === "--start-timeout") opts.startTimeout = Number(argv[++i]);
    else if (a === "--marker-timeout") opts.markerTimeout = Number(argv[++i]);
    else if (!opts.url) opts.url = a;
    else throw new Error("unexpected argument " + a);
  }
  if (!opts.url) throw new Error("usage: player.spec.mjs URL [--play S] [--ad-break] [--screenshot PATH]");
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const url = opts.format ? opts.url + (opts.url.includes("?") ? "&" : "?") + "format=" + opts.format : opts.url;
  const profile = mkdtempSync(join(tmpdir(), "slipstream-chromium-"));
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
    const snapshot = () => page.evaluate(() => {
      const s = window.slipstream;
      return s ? { ready: s.ready, t: s.currentTime(), stalls: s.stalls, stallEvents: s.stallEvents,
        progressed: s.progressedSeconds, markers: s.markers, errors: s.errors, channelState: s.channelState,
        latency: s.latency, edgeLatency: s.edgeLatency, rendition: s.rendition, source: s.source,
        adBreaks: s.adBreaks, format: s.format, log: s.log.slice(-30) } : null;
    });

    // 1. Playback starts (the first playlist may take a while to appear on a busy machine).
    const started = Date.now();
    let snap = await snapshot();
    while (!(snap && snap.ready) && Date.now() - started < opts.startTimeout * 1000) {
      await sleep(500);
      snap = await snapshot();
    }
    report.startupSeconds = (Date.now() - started) / 1000;
    if (!snap || !snap.ready) {
      fail("playback did not start within " + opts.startTimeout + " s");
      report.last = snap;
    } else {
      // 2. It keeps playing: media time advances with the wall clock, no stall episode.
      const t0 = snap.t, stalls0 = snap.stalls, wall0 = Date.now();
      const samples = [];
      while (Date.now() - wall0 < opts.play * 1000) {
        await sleep(1000);
        const s = await snapshot();
        samples.push({ t: s.t, stalls: s.stalls, latency: s.latency, rendition: s.rendition && s.rendition.name });
      }
      snap = await snapshot();
      const wall = (Date.now() - wall0) / 1000;
      report.progressed = snap.t - t0;
      report.wallSeconds = wall;
      report.stalls = snap.stalls - stalls0;
      report.samples = samples;
      // Live playback may run a little slow while catching up; 85 % leaves room for that, not for a stall.
      if (report.progressed < wall * 0.85) fail(`media advanced ${report.progressed.toFixed(1)} s in ${wall.toFixed(1)} s of wall time`);
      if (report.stalls > 0) fail(`${report.stalls} stall(s) during ${opts.play} s of playback`);

      // 3. Insert an ad break through the page's button; the player must report the marker.
      if (opts.adBreak) {
        const before = snap.markers.length;
        const clickedAt = new Date().toISOString();
        await page.getByTestId("insert-ad-break").click();
        const deadline = Date.now() + opts.markerTimeout * 1000;
        let found = null;
        while (!found && Date.now() < deadline) {
          await sleep(500);
          snap = await snapshot();
          found = snap.markers.slice(before).find((m) => m.kind === "out") || null;
        }
        report.adBreakResponse = snap.adBreaks[snap.adBreaks.length - 1] || null;
        report.markerSeenAfter = found ? (Date.parse(found.seenAt) - Date.parse(clickedAt)) / 1000 : null;
        report.marker = found;
        if (!report.adBreakResponse) fail("the ad-break API call did not succeed: " + JSON.stringify(snap.errors.slice(-3)));
        if (!found) fail("no SCTE-35 splice-out marker reported by the player within " + opts.markerTimeout + " s of the click");
        const shown = await page.getByTestId("markers").innerText();
        report.markerLogText = shown;
        if (found && !shown.includes(found.id)) fail("marker " + found.id + " is not shown in the page's marker log");
      }
    }
    snap = await snapshot();
    Object.assign(report, { markers: snap.markers, errors: snap.errors, channelState: snap.channelState,
      latency: snap.latency, edgeLatency: snap.edgeLatency, rendition: snap.rendition, source: snap.source,
      stallEvents: snap.stallEvents, log: snap.log, format: snap.format });
    if (opts.screenshot) {
      await page.screenshot({ path: opts.screenshot });
      report.screenshot = opts.screenshot;
    }
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

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, failures: ["driver crashed: " + err.message] }) + "\n");
  process.exit(2);
});
