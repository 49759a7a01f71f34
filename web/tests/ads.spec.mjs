// Watches a live channel's ad breaks in the player page with Debian's /usr/bin/chromium (playwright-core),
// the way an ad-ops engineer checks a source's SCTE-35: play, let breaks come, see what each engine reports.
//
//   node web/tests/ads.spec.mjs URL [--play 45] [--engine hlsjs|dashjs|shaka] [--format hls|dash]
//        [--start-timeout 120] [--until-breaks N] [--until-interstitial] [--screenshot out.png]
//
// Plays for --play seconds after the start; with --until-breaks N it stops once N breaks that began after
// playback started have been seen with their in-point (and played past it), with --until-interstitial
// once an interstitial that started while watching has handed back to the main stream (and 8 s more
// played). Prints one JSON report on stdout: {ok, failures, startPosition, stalls,
// progressed, wallSeconds, breaks (the page's joined breaks), markers (every signal), interstitials
// (hls.js interstitial events), latency, log, console}. Exits 1 when playback failed; the ad checks
// are the caller's (tests/integration/browser/test_scte35_players.py).
import { crashed, drive, sleep, started, withParams } from "./chromium.mjs";

function parseArgs(argv) {
  const opts = { url: "", play: 45, engine: "", format: "", startTimeout: 120, untilBreaks: 0, untilInterstitial: false,
    screenshot: "" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--play") opts.play = Number(argv[++i]);
    else if (a === "--engine") opts.engine = argv[++i];
    else if (a === "--format") opts.format = argv[++i];
    else if (a === "--start-timeout") opts.startTimeout = Number(argv[++i]);
    else if (a === "--until-breaks") opts.untilBreaks = Number(argv[++i]);
    else if (a === "--until-interstitial") opts.untilInterstitial = true;
    else if (a === "--screenshot") opts.screenshot = argv[++i];
    else if (!opts.url) opts.url = a;
    else throw new Error("unexpected argument " + a);
  }
  if (!opts.url) throw new Error("usage: ads.spec.mjs URL [--play S] [--engine E] [--format F]");
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const url = withParams(opts.url, [["format", opts.format], ["engine", opts.engine]]);
  await drive(url, "slipstream-ads-", async (page, report, fail) => {
    const snapshot = () => page.evaluate(() => {
      const s = window.slipstream;
      return s ? { ready: s.ready, t: s.currentTime(), stalls: s.stalls, stallEvents: s.stallEvents,
        progressed: s.progressedSeconds, markers: s.markers, breaks: s.breaks(), interstitials: s.interstitials,
        latency: s.latency, errors: s.errors, log: s.log.slice(-40), engine: s.engine, format: s.format,
        source: s.source, breakStatus: s.breakStatus } : null;
    });
    let { snap, startup } = await started(snapshot, opts.startTimeout);
    report.startupSeconds = startup;
    if (!snap || !snap.ready) {
      fail("playback did not start within " + opts.startTimeout + " s");
    } else {
      const t0 = snap.t, stalls0 = snap.stalls, progressed0 = snap.progressed, wall0 = Date.now();
      report.startPosition = t0;
      const live = (s) => s.breaks.filter((b) => b.start >= t0 - 0.5 && b.end != null && b.kinds.includes("in"));
      const handedBack = (s) => s.interstitials.find((e, i) => (e.type === "primary-resumed" || e.type === "ended") &&
        s.interstitials.slice(0, i).some((x) => x.type === "started"));
      let backAt = null;
      report.breakStatuses = [];
      while (Date.now() - wall0 < opts.play * 1000) {
        await sleep(1000);
        snap = await snapshot();
        if (snap.breakStatus && !report.breakStatuses.includes(snap.breakStatus.replace(/[0-9.]+ s of/, "X s of"))) {
          report.breakStatuses.push(snap.breakStatus.replace(/[0-9.]+ s of/, "X s of"));
        }
        // Let the last break's in-point play out before stopping early.
        const seen = live(snap);
        if (opts.untilBreaks && seen.length >= opts.untilBreaks && snap.t > seen[opts.untilBreaks - 1].end + 4) break;
        if (opts.untilInterstitial && handedBack(snap)) {
          backAt = backAt || Date.now();
          if (Date.now() - backAt > 8000) break;
        }
      }
      report.wallSeconds = (Date.now() - wall0) / 1000;
      report.progressed = snap.progressed - progressed0;
      report.stalls = snap.stalls - stalls0;
      report.mediaAdvance = snap.t - t0;
      if (report.stalls > 0) fail(`${report.stalls} stall(s) while watching`);
      if (report.progressed < 0.8 * report.wallSeconds) {
        fail(`played ${report.progressed.toFixed(1)} s in ${report.wallSeconds.toFixed(1)} s of wall time`);
      }
    }
    if (opts.screenshot) {
      await page.screenshot({ path: opts.screenshot, fullPage: true });
      report.screenshot = opts.screenshot;
    }
    snap = await snapshot();
    Object.assign(report, { markers: snap.markers, breaks: snap.breaks, interstitials: snap.interstitials,
      latency: snap.latency, errors: snap.errors, log: snap.log, engine: snap.engine, format: snap.format,
      source: snap.source, stallEvents: snap.stallEvents });
  });
}

main().catch(crashed);
