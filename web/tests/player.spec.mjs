// Drives Debian's /usr/bin/chromium with playwright-core (no browser download) against the
// Slipstream player page, the way a viewer would: open it, watch, press "Insert ad break".
//
//   node web/tests/player.spec.mjs URL [--play 20] [--ad-break] [--screenshot out.png]
//        [--format hls|dash] [--engine hlsjs|dashjs|shaka] [--signing cookie|query]
//        [--start-timeout 120] [--marker-timeout 60] [--full] [--ll]
//
// --ll plays Low-Latency HLS (the page's ll=1: the channel's ll_hls URL, hls.js lowLatencyMode); every
// second's sample carries the glass-to-glass latency and the playback rate.
//
// --full walks through what a streaming engineer checks with the page: stats and charts fill,
// manual rendition selection then ABR again, an ad break entered on the timeline ("in break,
// elapsed X of Y"), the DVR toggle, the engine's config (load policies, CMCD).
//
// Prints one JSON report on stdout ({ok, failures, progressed, stalls, markers, ...}) and exits
// 1 when a check failed, so the pytest wrapper can both assert and show what the player saw.
import { crashed, drive, sleep, started, withParams } from "./chromium.mjs";

function parseArgs(argv) {
  const opts = { url: "", play: 20, adBreak: false, screenshot: "", format: "", engine: "", signing: "",
    full: false, startTimeout: 120, markerTimeout: 60, ll: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--play") opts.play = Number(argv[++i]);
    else if (a === "--ad-break") opts.adBreak = true;
    else if (a === "--screenshot") opts.screenshot = argv[++i];
    else if (a === "--format") opts.format = argv[++i];
    else if (a === "--engine") opts.engine = argv[++i];
    else if (a === "--signing") opts.signing = argv[++i];
    else if (a === "--full") { opts.full = true; opts.adBreak = true; }
    else if (a === "--ll") opts.ll = true;
    else if (a === "--start-timeout") opts.startTimeout = Number(argv[++i]);
    else if (a === "--marker-timeout") opts.markerTimeout = Number(argv[++i]);
    else if (!opts.url) opts.url = a;
    else throw new Error("unexpected argument " + a);
  }
  if (!opts.url) throw new Error("usage: player.spec.mjs URL [--play S] [--ad-break] [--screenshot PATH]");
  return opts;
}

async function waitFor(snapshot, predicate, seconds) {
  const deadline = Date.now() + seconds * 1000;
  let snap = await snapshot();
  while (!predicate(snap) && Date.now() < deadline) {
    await sleep(500);
    snap = await snapshot();
  }
  return predicate(snap) ? snap : null;
}

// The playhead reaches the break: the seek bar shows it and the page says where in it we are.
async function inBreak(page, snapshot, report, fail, opts) {
  const snap = await waitFor(snapshot, (s) => s.breakAt && /^in break, elapsed [0-9.]+ s of [0-9.]+ s$/.test(s.breakStatus),
    opts.markerTimeout + 40);
  report.breakStatusSeen = snap ? snap.breakStatus : null;
  report.breakAtSeen = snap ? snap.breakAt : null;
  report.breaksSeen = snap ? snap.breaks : null;
  if (!snap) { fail("the playhead never entered the break (no 'in break, elapsed X of Y')"); return; }
  report.breakStatusText = await page.getByTestId("break-status").innerText();
  report.timelineBreaks = await page.getByTestId("timeline-break").count();
  if (!report.timelineBreaks) fail("the break is not drawn on the seek bar");
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    report.screenshot = opts.screenshot;
  }
}

async function fullChecks(page, snapshot, report, fail, opts) {
  let snap = await snapshot();
  // Stats and charts: every chart has samples, the numbers are real.
  report.stats = { bufferLevel: snap.bufferLevel, droppedFrames: snap.droppedFrames, totalFrames: snap.totalFrames,
    playbackRate: snap.playbackRate, charts: snap.charts,
    history: await page.evaluate(() => JSON.parse(JSON.stringify(window.slipstream.chartHistory()))) };
  report.chartCanvases = await page.locator("[data-testid^=chart-] canvas").count();
  report.engineConfig = await page.evaluate(() => window.slipstream.engineConfig());
  // Manual rendition: the lowest one, chosen in the page's select; then ABR back on.
  const renditions = snap.renditions || [];
  report.renditions = renditions;
  if (renditions.length < 2) {
    fail("fewer than two renditions offered: " + JSON.stringify(renditions));
  } else {
    const lowest = renditions.reduce((a, b) => (b.height < a.height ? b : a));
    await page.getByTestId("rendition-select").selectOption(String(lowest.index));
    const chosen = await waitFor(snapshot, (s) => s.rendition && s.rendition.height === lowest.height && !s.abr, 40);
    report.manualRendition = chosen ? chosen.rendition : (await snapshot()).rendition;
    if (!chosen) fail("the manually selected rendition " + lowest.id + " never played");
    await page.getByTestId("abr-toggle").check();
    snap = await snapshot();
    report.abrAfterToggle = { page: snap.abr, engine: await page.evaluate(() => window.slipstream.engineConfig() && true) };
    if (!snap.abr) fail("the ABR toggle did not turn ABR back on");
  }
  // DVR: HLS reloads from dvr.m3u8, DASH keeps its MPD and widens the seek window.
  report.liveRange = (await snapshot()).timelineRange;
  report.liveSource = (await snapshot()).source;
  await page.getByTestId("dvr-toggle").check();
  const dvr = await waitFor(snapshot, (s) => s.dvr && s.ready && s.timelineRange, 60);
  await sleep(3000); // let the reloaded engine settle its seekable range
  const settled = await snapshot();
  report.dvrSource = dvr ? settled.source : null;
  report.dvrRange = dvr ? settled.timelineRange : null;
  report.dvrTimeline = await page.evaluate(() => {
    const el = document.querySelector("[data-testid=timeline] .labels .from");
    return el ? el.textContent : "";
  });
  if (!dvr) fail("playback did not resume after the DVR toggle");
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const url = withParams(opts.url, [["format", opts.format], ["engine", opts.engine], ["signing", opts.signing],
    ["ll", opts.ll ? "1" : ""]]);
  await drive(url, "slipstream-chromium-", async (page, report, fail) => {
    const snapshot = () => page.evaluate(() => {
      const s = window.slipstream;
      return s ? { ready: s.ready, t: s.currentTime(), stalls: s.stalls, stallEvents: s.stallEvents,
        progressed: s.progressedSeconds, markers: s.markers, errors: s.errors, channelState: s.channelState,
        latency: s.latency, edgeLatency: s.edgeLatency, targetLatency: s.targetLatency, lowLatency: s.lowLatency,
        rendition: s.rendition, source: s.source,
        adBreaks: s.adBreaks, format: s.format, engine: s.engine, log: s.log.slice(-30), abr: s.abr,
        renditions: s.renditions, bufferLevel: s.bufferLevel, droppedFrames: s.droppedFrames,
        totalFrames: s.totalFrames, playbackRate: s.playbackRate, breakStatus: s.breakStatus, breakAt: s.breakAt(),
        breaks: s.breaks(), charts: s.chartSamples(), seekRange: s.seekRange(), timelineRange: s.timelineRange, dvr: s.dvr, cmcdSession: s.cmcdSession,
        playback: s.playback && { signed: s.playback.signed, mode: s.playback.mode } } : null;
    });

    // 1. Playback starts.
    let { snap, startup } = await started(snapshot, opts.startTimeout);
    report.startupSeconds = startup;
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
        samples.push({ t: s.t, stalls: s.stalls, latency: s.latency, rate: s.playbackRate, target: s.targetLatency,
          rendition: s.rendition && s.rendition.name, at: Date.now() });
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
        if (opts.full && found) await inBreak(page, snapshot, report, fail, opts);
      }
      if (opts.full) await fullChecks(page, snapshot, report, fail, opts);
    }
    snap = await snapshot();
    Object.assign(report, { markers: snap.markers, errors: snap.errors, channelState: snap.channelState,
      latency: snap.latency, edgeLatency: snap.edgeLatency, rendition: snap.rendition, source: snap.source,
      stallEvents: snap.stallEvents, log: snap.log, format: snap.format, engine: snap.engine,
      cmcdSession: snap.cmcdSession, playback: snap.playback, breaks: snap.breaks, lowLatency: snap.lowLatency,
      targetLatency: snap.targetLatency, engineConfig: await page.evaluate(() => window.slipstream.engineConfig()) });
    if (opts.screenshot && !report.screenshot) {
      await page.screenshot({ path: opts.screenshot, fullPage: true });
      report.screenshot = opts.screenshot;
    }
  });
}

main().catch(crashed);
