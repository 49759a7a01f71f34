// The viewers of the fault soak (bench/soak.py): one headless Debian Chromium (playwright-core, no
// browser download), one page per engine, all watching the same live channel for the whole run.
//
//   node web/tests/soak.mjs --seconds 600 --out report.json URL [URL ...]
//
// Each URL is a player page (player.html?channel=..&engine=..&format=..). Every 100 ms each page
// samples its <video>: a stall episode is time during which currentTime did not advance although the
// page is playing (not paused, not ended, playback started); its start (epoch ms) and length are kept,
// so the caller can tell a stall from the minutes the channel was off air. Every HTTP answer >= 400
// and every failed request for the origin is kept with its URL. The report is written when the time is
// up (or on SIGTERM) as JSON: {players: [{url, engine, format, started, progressed, wall, episodes,
// httpErrors, failedRequests, console, lastState}], ok}.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function parseArgs(argv) {
  const opts = { seconds: 120, out: "", urls: [], startTimeout: 180 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--seconds") opts.seconds = Number(argv[++i]);
    else if (a === "--out") opts.out = argv[++i];
    else if (a === "--start-timeout") opts.startTimeout = Number(argv[++i]);
    else opts.urls.push(a);
  }
  if (!opts.urls.length || !(opts.seconds > 0)) throw new Error("usage: soak.mjs --seconds S [--out F] URL...");
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs inside the page: a sampler independent of the page's own stall counter (which waits 1.5 s).
function installSampler() {
  const video = document.querySelector("video");
  const rec = { started: null, episodes: [], samples: 0, progressed: 0, lastT: -1, stuckSince: null, resumes: 0 };
  window.__soak = rec;
  setInterval(() => {
    if (!video) return;
    rec.samples += 1;
    const now = Date.now();
    const t = video.currentTime;
    const playing = !video.paused && !video.ended;
    if (t > rec.lastT + 0.001) {
      if (rec.lastT >= 0 && t - rec.lastT < 5) rec.progressed += t - rec.lastT;
      if (rec.started === null && rec.lastT >= 0) rec.started = now;
      if (rec.stuckSince !== null) {
        const seconds = (now - rec.stuckSince) / 1000;
        if (seconds >= 0.25) rec.episodes.push({ at: rec.stuckSince, seconds, t: rec.lastT });
        rec.resumes += 1;
      }
      rec.stuckSince = null;
      rec.lastT = t;
    } else if (rec.started !== null && playing && rec.stuckSince === null) {
      rec.stuckSince = now - 100; // it stopped advancing some time since the last sample
    } else if (rec.started !== null && !playing && rec.stuckSince === null) {
      rec.stuckSince = now - 100; // paused or ended by the engine counts too: the viewer sees a frozen frame
    }
  }, 100);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const profile = mkdtempSync(join(tmpdir(), "slipstream-soak-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The caller stops this driver with SIGTERM: the report is read from the pages first, then the
    // browser is closed (playwright's own handlers would close it at once).
    handleSIGTERM: false,
    handleSIGINT: false,
    handleSIGHUP: false,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
      "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
    viewport: { width: 960, height: 640 },
  });
  const players = [];
  let finished = false;
  const finish = async () => {
    if (finished) return;
    finished = true;
    for (const p of players) {
      try {
        const state = await p.page.evaluate(() => {
          const s = window.slipstream, r = window.__soak;
          const stuck = r && r.stuckSince !== null ? { at: r.stuckSince, seconds: (Date.now() - r.stuckSince) / 1000, t: r.lastT, open: true } : null;
          return { soak: r && { ...r, episodes: stuck && stuck.seconds >= 0.25 ? [...r.episodes, stuck] : r.episodes },
            engine: s && s.engine, format: s && s.format, errors: s ? s.errors.slice(-20) : [],
            log: s ? s.log.slice(-40) : [], pageStalls: s ? s.stalls : null, t: s ? s.currentTime() : null,
            rendition: s && s.rendition, latency: s && s.latency };
        });
        Object.assign(p.report, {
          engine: state.engine, format: state.format, started: state.soak ? state.soak.started : null,
          progressed: state.soak ? state.soak.progressed : 0, episodes: state.soak ? state.soak.episodes : [],
          resumes: state.soak ? state.soak.resumes : 0, pageStalls: state.pageStalls,
          lastState: { t: state.t, rendition: state.rendition, latency: state.latency, errors: state.errors, log: state.log },
        });
      } catch (err) {
        p.report.driverError = String(err && err.message ? err.message : err);
      }
      p.report.wall = (Date.now() - p.opened) / 1000;
    }
    const report = { ok: players.every((p) => p.report.started !== null && !p.report.driverError),
      players: players.map((p) => p.report) };
    const text = JSON.stringify(report);
    if (opts.out) writeFileSync(opts.out, text + "\n");
    process.stdout.write(text + "\n");
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    process.exit(report.ok ? 0 : 1);
  };
  process.on("SIGTERM", () => { finish(); });
  process.on("SIGINT", () => { finish(); });
  try {
    for (const url of opts.urls) {
      const page = players.length === 0 && context.pages()[0] ? context.pages()[0] : await context.newPage();
      const report = { url, httpErrors: [], failedRequests: [], console: [] };
      page.on("response", (r) => {
        if (r.status() >= 400 && r.url().includes("/origin/") && report.httpErrors.length < 200)
          report.httpErrors.push({ at: Date.now(), status: r.status(), url: r.url() });
      });
      page.on("requestfailed", (r) => {
        const why = r.failure() ? r.failure().errorText : "";
        // The engines abort their own requests (a superseded playlist reload, a level switch): not an error.
        if (r.url().includes("/origin/") && why !== "net::ERR_ABORTED" && report.failedRequests.length < 200)
          report.failedRequests.push({ at: Date.now(), url: r.url(), error: why });
      });
      page.on("console", (m) => { if (m.type() === "error" && report.console.length < 50) report.console.push(m.text()); });
      page.on("pageerror", (e) => { if (report.console.length < 50) report.console.push("pageerror: " + e.message); });
      await page.goto(url, { waitUntil: "load" });
      await page.evaluate(installSampler);
      players.push({ page, report, opened: Date.now() });
    }
    const deadline = Date.now() + opts.seconds * 1000;
    while (Date.now() < deadline && !finished) await sleep(500);
  } catch (err) {
    for (const p of players) p.report.driverError = "driver error: " + (err && err.stack ? err.stack : String(err));
    if (!players.length) {
      process.stdout.write(JSON.stringify({ ok: false, players: [], error: String(err) }) + "\n");
      process.exit(2);
    }
  }
  await finish();
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, players: [], error: "driver crashed: " + err.message }) + "\n");
  process.exit(2);
});
