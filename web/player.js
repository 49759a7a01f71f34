// Slipstream test player: one page, three engines (hls.js, dash.js, shaka-player), the shared UI a
// streaming engineer expects -- stats and charts over time, rendition selection and ABR, an ad-break
// timeline on the seek bar, CMCD on every request, DVR, signed playback (cookies or query string).
//
// Query parameters: channel (required); engine=hlsjs|dashjs|shaka; format=hls|dash (default: the
// engine's first); dvr=1; ll=1 (Low-Latency HLS: the playback API's ll_hls URL, the engine's
// low-latency mode); abr=0; signing=cookie|query (how a signed stage's grant travels);
// api (API base, default "api": the demo server proxies it, so the page holds no key); origin
// (default "origin"); src (explicit manifest URL, skips the playback lookup); key (x-api-key when
// not proxied); adDuration (seconds the ad-break button asks for, default 30); time (UTCTiming URL);
// adInPlace=1 (hls.js: append an interstitial's ad into the main buffers instead of its own asset player).
//
// Each engine lives in js/engines/{name}.js behind one adapter interface (load, destroy, renditions,
// current, select, setAbr, bandwidth, latency, seekRange, config; signals ad markers through ctx).
// Test hooks: window.slipstream and data-testid attributes.
import * as hlsjs from "./js/engines/hlsjs.js";
import * as dashjs from "./js/engines/dashjs.js";
import * as shaka from "./js/engines/shaka.js";
import { BreakTimeline, describe, normalize } from "./js/markers.js";
import { Charts } from "./js/charts.js";
import { Timeline } from "./js/timeline.js";
import { bufferAhead } from "./js/net.js";

const ENGINES = { hlsjs, dashjs, shaka };
const params = new URLSearchParams(window.location.search);
const channel = params.get("channel") || "";
const apiBase = (params.get("api") || "api").replace(/\/$/, "");
const originBase = (params.get("origin") || "origin").replace(/\/$/, "");
const apiKey = params.get("key") || "";
const adDuration = Math.max(1, Number(params.get("adDuration")) || 30);
const timeUrl = params.get("time") || new URL("time", window.location.href).href;
const adInPlace = params.get("adInPlace") === "1";
// A live stream that does not advance for this long while it should be playing is a stall the
// viewer would notice (a spinner), whatever the engine's own heuristics report.
const STALL_MS = 1500;

const $ = (id) => document.getElementById(id);
const video = $("video");

function initialEngine() {
  const asked = params.get("engine");
  if (ENGINES[asked]) return asked;
  return params.get("format") === "dash" ? "dashjs" : "hlsjs";
}
const startEngine = initialEngine();
const startFormat = ENGINES[startEngine].formats.includes(params.get("format")) ? params.get("format")
  : ENGINES[startEngine].formats[0];

const breaks = new BreakTimeline();
const state = {
  channel: channel,
  engine: startEngine,
  format: startFormat,
  dvr: params.get("dvr") === "1",
  lowLatency: params.get("ll") === "1",
  abr: params.get("abr") !== "0",
  signing: params.get("signing") === "query" ? "query" : "cookie",
  source: "",
  playback: null, // the API's answer (URLs, grant)
  ready: false,
  playing: false,
  stalls: 0, // stall episodes detected from currentTime not advancing
  stallEvents: 0, // the engine's own stall reports
  progressedSeconds: 0,
  markers: [], // every distinct signal the engine reported (the log)
  errors: [],
  log: [],
  status: null,
  channelState: "",
  latency: null, // wall clock minus the program date time of the frame on screen (glass to glass)
  targetLatency: null, // what the engine aims for (LL-HLS: PART-HOLD-BACK)
  edgeLatency: null, // seconds behind the live edge
  rendition: null,
  renditions: [],
  bufferLevel: 0,
  droppedFrames: 0,
  totalFrames: 0,
  playbackRate: 1,
  breakStatus: "",
  timelineRange: null, // the seek bar's window: the live window, or the DVR window
  adBreaks: [],
  interstitials: [], // HLS Interstitials: {type: started|asset-started|asset-ended|ended|primary-resumed|asset-error, id, time}
  cmcdSession: "",
  currentTime: () => video.currentTime,
  breaks: () => breaks.summary(),
  breakAt: () => { const p = breaks.at(video.currentTime); return p && { key: p.brk.key, elapsed: p.elapsed, duration: p.duration }; },
  chartSamples: () => charts.filled(),
  chartHistory: () => charts.history,
  engineConfig: () => (player ? player.config() : null),
  seekRange: () => (player ? player.seekRange() : null),
  insertAdBreak: (duration) => insertAdBreak(duration),
  switchEngine: (engine, format) => switchTo({ engine: engine, format: format }),
  switchFormat: (format) => switchTo({ format: format, engine: format === "dash" ? "dashjs" : "hlsjs" }),
  setDvr: (on) => switchTo({ dvr: !!on }),
  setLowLatency: (on) => switchTo({ lowLatency: !!on }),
  selectRendition: (index) => selectRendition(index),
  setAbr: (on) => setAbr(on),
  seek: (t) => { video.currentTime = t; },
};
window.slipstream = state;

let player = null; // the engine adapter
let retryTimer = null;
let refreshTimer = null;
let sourceFailures = 0;
let generation = 0; // bumps on every switch, so callbacks of a torn-down engine are ignored
const charts = new Charts($("charts"), 180);
const timeline = new Timeline($("timeline"), video);

// ------------------------------------------------------------------ log and API
function log(message, level) {
  const line = new Date().toISOString().slice(11, 23) + " " + message;
  state.log.push(line);
  if (state.log.length > 500) state.log.shift();
  if (level === "error") state.errors.push(message);
  const li = document.createElement("li");
  li.textContent = line;
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey) headers["x-api-key"] = apiKey;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiBase + path, { method: method, headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { raw: text }; }
  if (!response.ok) {
    const reason = (data && (data.Message || data.message || data.error)) || text || response.statusText;
    throw new Error(method + " " + path + " -> " + response.status + ": " + reason);
  }
  return data;
}

// ------------------------------------------------------------------ markers
function onSignal(signal) {
  const s = normalize(signal);
  if (!s || !s.kind) return;
  const brk = breaks.ingest(s);
  const id = s.id || (s.eventId ? s.eventId : s.source + "@" + s.time.toFixed(1));
  const key = [s.source, id, s.kind].join("|");
  if (state.markers.some((m) => m.key === key)) return;
  const marker = { key: key, source: s.source, kind: s.kind, id: id, eventId: s.eventId, time: s.time,
    start: s.date ? new Date(s.date).toISOString() : "", duration: s.duration != null ? s.duration : null,
    elapsed: s.elapsed != null ? s.elapsed : null, scte35: s.scte35 || "", breakKey: brk ? brk.key : null,
    seenAt: new Date().toISOString(), format: state.format, engine: state.engine };
  state.markers.push(marker);
  const li = document.createElement("li");
  li.className = marker.kind;
  li.dataset.markerId = marker.id;
  const parts = [marker.seenAt.slice(11, 19), marker.source, marker.kind.toUpperCase(), marker.id];
  if (marker.start) parts.push("@" + marker.start.slice(11, 23));
  if (marker.elapsed != null) parts.push("elapsed " + marker.elapsed.toFixed(1) + " s");
  if (marker.duration != null) parts.push(Number(marker.duration).toFixed(1) + " s");
  if (brk) parts.push("-> " + brk.key);
  li.textContent = parts.join("  ");
  $("markers").prepend(li);
}

// ------------------------------------------------------------------ renditions and ABR
function renderRenditions() {
  if (!player) return;
  state.renditions = player.renditions();
  const select = $("rendition-select");
  const value = select.value;
  select.innerHTML = "";
  const auto = document.createElement("option");
  auto.value = "-1";
  auto.textContent = "Auto (ABR)";
  select.appendChild(auto);
  state.renditions.forEach((r) => {
    const o = document.createElement("option");
    o.value = String(r.index);
    o.textContent = r.id + "  " + r.width + "x" + r.height + "  " + Math.round(r.bitrate / 1000) + " kb/s";
    select.appendChild(o);
  });
  select.value = state.abr ? "-1" : value;
}

function showRendition() {
  if (!player) return;
  const r = player.current();
  const changed = r && (!state.rendition || state.rendition.id !== r.id);
  state.rendition = r;
  $("rendition").textContent = r ? r.id + " " + r.width + "x" + r.height : "–";
  $("bitrate").textContent = r && r.bitrate ? (r.bitrate / 1000).toFixed(0) + " kb/s" : "–";
  if (changed) log("rendition -> " + r.id);
}

function selectRendition(index) {
  if (!player) return;
  const i = Number(index);
  if (i < 0) { setAbr(true); return; }
  state.abr = false;
  $("abr-toggle").checked = false;
  $("rendition-select").value = String(i);
  player.select(i);
  log("manual rendition: " + (state.renditions[i] ? state.renditions[i].id : i) + " (ABR off)");
}

function setAbr(on) {
  state.abr = !!on;
  $("abr-toggle").checked = state.abr;
  if (state.abr) $("rendition-select").value = "-1";
  if (player) player.setAbr(state.abr);
  log("ABR " + (state.abr ? "on" : "off"));
}

// ------------------------------------------------------------------ sources and signing
function grant() {
  const p = state.playback;
  if (!p || !p.signed) return { query: "", cookies: false };
  return { query: p.mode === "query" ? p.query || "" : "", cookies: p.mode === "cookie" };
}

async function lookupPlayback() {
  const mode = state.signing;
  state.playback = await api("GET", "/channels/" + encodeURIComponent(channel) + "/playback?mode=" + mode);
  clearTimeout(refreshTimer);
  if (state.playback && state.playback.signed && state.playback.expires_at) {
    // Renew the grant well before it expires; new requests pick the new signature up at once.
    const ms = Math.max(10000, (Date.parse(state.playback.expires_at) - Date.now()) * 0.8);
    refreshTimer = setTimeout(() => lookupPlayback().then(() => log("signed grant renewed")).catch((e) => log(e.message, "error")), ms);
  }
  return state.playback;
}

async function resolveSource() {
  if (params.get("src")) return params.get("src");
  const dash = state.format === "dash";
  // Low latency is an HLS live-edge mode: DVR and DASH keep their own manifests.
  const ll = state.lowLatency && !dash && !state.dvr;
  const fallback = originBase + "/" + channel + (dash ? "/manifest.mpd" : state.dvr ? "/dvr.m3u8"
    : ll ? "/ll.m3u8" : "/master.m3u8");
  try {
    const p = await lookupPlayback();
    if (ll && !p.ll_hls) log("channel has no low-latency playlists (created without low_latency): regular HLS");
    const url = dash ? p.dash : state.dvr ? p.dvr : ll && p.ll_hls ? p.ll_hls : p.hls;
    if (url) {
      $("signing-state").textContent = p.signed ? "signed (" + p.mode + ", until " + String(p.expires_at).slice(11, 19) + ")" : "unsigned";
      return sourceFailures >= 3 && !p.signed ? fallback : url;
    }
  } catch (err) {
    log("playback lookup failed, using the origin path: " + err.message);
  }
  $("signing-state").textContent = "unsigned (origin path)";
  return fallback;
}

function engineContext(gen) {
  const live = (fn) => (...args) => { if (gen === generation) fn(...args); };
  return {
    video: video,
    timeUrl: timeUrl,
    adInPlace: adInPlace,
    abr: state.abr,
    lowLatency: state.lowLatency && state.format === "hls" && !state.dvr,
    cmcd: { sessionId: state.cmcdSession, contentId: channel },
    grant: grant,
    log: live(log),
    signal: live(onSignal),
    renditionsChanged: live(() => { renderRenditions(); showRendition(); }),
    renditionChanged: live(showRendition),
    stallEvent: live(() => { state.stallEvents += 1; }),
    interstitial: live((ev) => {
      state.interstitials.push(ev);
      log("interstitial " + ev.type + (ev.id ? " " + ev.id : "") + (ev.asset ? " " + ev.asset : "") +
        (ev.error ? ": " + ev.error : ""), ev.type === "asset-error" ? "error" : undefined);
    }),
    // Before the first manifest is published the origin answers 404: wait and load again.
    fatal: live((what, beforeStart) => {
      if (!beforeStart && state.ready) log("engine failed after start: " + what, "error");
      sourceFailures += 1;
      teardown();
      retryTimer = setTimeout(() => start(generation), 2000);
    }),
  };
}

function newCmcdSession() {
  state.cmcdSession = (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2);
}

function teardown() {
  clearTimeout(retryTimer);
  if (player) {
    try { player.destroy(); } catch (e) { log("destroy: " + e.message); }
    player = null;
  }
  state.ready = false;
  state.playing = false;
  video.removeAttribute("src");
}

async function start(gen) {
  if (gen !== generation) return;
  const url = await resolveSource();
  if (gen !== generation) return;
  state.source = url;
  $("source-url").textContent = url.replace(/([?&](?:Policy|Signature)=)[^&]+/g, "$1…");
  $("source-url").href = url;
  const engine = ENGINES[state.engine];
  log("loading " + state.format.toUpperCase() + " with " + engine.label + (state.dvr ? " (DVR)" : "") +
    (state.lowLatency && state.format === "hls" && !state.dvr ? " (low latency)" : "") + ": " + url.split("?")[0]);
  try {
    player = engine.create(engineContext(gen));
    Promise.resolve(player.load(url)).catch((e) => log("load: " + e.message, "error"));
  } catch (err) {
    log(engine.label + ": " + err.message, "error");
  }
}

function syncToolbar() {
  document.querySelectorAll("[data-engine]").forEach((b) => {
    b.classList.toggle("active", b.dataset.engine === state.engine && (b.dataset.format || state.format) === state.format);
  });
  $("dvr-toggle").checked = state.dvr;
  $("abr-toggle").checked = state.abr;
  $("ll-toggle").checked = state.lowLatency;
}

async function switchTo(change) {
  const engine = change.engine && ENGINES[change.engine] ? change.engine : state.engine;
  let format = change.format || (change.engine ? ENGINES[engine].formats[0] : state.format);
  if (!ENGINES[engine].formats.includes(format)) format = ENGINES[engine].formats[0];
  const dvr = change.dvr != null ? change.dvr : state.dvr;
  const lowLatency = change.lowLatency != null ? change.lowLatency : state.lowLatency;
  // DASH has one MPD whose timeShiftBufferDepth is the DVR window: the toggle widens the seek bar
  // and leaves the stream alone; HLS switches between master.m3u8 and dvr.m3u8.
  if (engine === state.engine && format === state.format && format === "dash" && dvr !== state.dvr && player &&
      lowLatency === state.lowLatency) {
    state.dvr = dvr;
    if (!dvr) { const edge = player.liveEdge(); if (edge != null) video.currentTime = edge - 6; }
    syncToolbar();
    log("DVR " + (dvr ? "on" : "off") + " (DASH: same MPD, seek window " + (dvr ? "timeShiftBufferDepth" : "live") + ")");
    return;
  }
  generation += 1;
  // One CMCD session per engine and format: a DVR reload or a retry continues the viewer's session.
  if (engine !== state.engine || format !== state.format) newCmcdSession();
  Object.assign(state, { engine: engine, format: format, dvr: dvr, lowLatency: lowLatency, stalls: 0, stallEvents: 0,
    progressedSeconds: 0 });
  sourceFailures = 0;
  lastTime = -1;
  teardown();
  breaks.clear();
  charts.reset();
  state.rendition = null;
  $("timeline").querySelector(".breaks").innerHTML = "";
  syncToolbar();
  await start(generation);
}

// ------------------------------------------------------------------ stats loop
let lastTime = -1;
let lastAdvance = performance.now();
let inStall = false;
let lastSample = 0;
video.addEventListener("playing", () => { state.playing = true; });
video.addEventListener("pause", () => { state.playing = false; });

function liveWindow(range) {
  if (!range) return null;
  // shaka's seek range ends at the edge minus the presentation delay: keep the playhead on the bar.
  range = { start: Math.min(range.start, video.currentTime), end: Math.max(range.end, video.currentTime) };
  if (state.dvr || state.format !== "dash") return range;
  const live = (state.status && state.status.live_window) || 30;
  return { start: Math.max(range.start, range.end - live), end: range.end };
}

function tick() {
  const now = performance.now();
  const t = video.currentTime;
  // Any change of position is progress: an interstitial's asset (or the return to the primary stream after
  // it) moves the playhead to another timeline, backwards or forwards, while the picture plays on.
  if (Math.abs(t - lastTime) > 0.01) {
    if (lastTime >= 0 && t > lastTime && t - lastTime < 5) state.progressedSeconds += t - lastTime;
    if (!state.ready && lastTime >= 0) { state.ready = true; log("playback started"); }
    lastTime = t;
    lastAdvance = now;
    inStall = false;
  } else if (state.ready && !video.paused && !video.ended && now - lastAdvance > STALL_MS && !inStall) {
    inStall = true;
    state.stalls += 1;
    log("stall: no progress for " + STALL_MS + " ms at " + t.toFixed(2), "error");
  }
  if (!player) return;
  if (player.poll) player.poll();
  const lat = player.latency();
  state.latency = lat.wallclock != null && lat.wallclock > 0 ? lat.wallclock : null;
  state.edgeLatency = lat.edge;
  state.targetLatency = Number.isFinite(lat.target) ? lat.target : null;
  state.bufferLevel = bufferAhead(video);
  const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  state.droppedFrames = quality ? quality.droppedVideoFrames : player.droppedFrames ? player.droppedFrames() : 0;
  state.totalFrames = quality ? quality.totalVideoFrames : 0;
  state.playbackRate = video.playbackRate;
  const bw = player.bandwidth();
  const position = breaks.at(t);
  state.breakStatus = describe(position);
  $("break-status").textContent = state.breakStatus || "not in a break";
  $("break-status").classList.toggle("in-break", !!position);
  $("latency").textContent = state.latency != null ? state.latency.toFixed(1) + " s" : "–";
  $("edge-latency").textContent = state.edgeLatency != null ? state.edgeLatency.toFixed(1) + " s" : "–";
  $("target-latency").textContent = state.targetLatency != null ? state.targetLatency.toFixed(2) + " s" +
    (state.lowLatency && state.format === "hls" && !state.dvr ? " (low latency)" : "") : "–";
  $("bandwidth").textContent = bw ? (bw / 1000).toFixed(0) + " kb/s" : "–";
  $("buffer").textContent = state.bufferLevel.toFixed(1) + " s";
  $("dropped").textContent = state.droppedFrames + " / " + state.totalFrames;
  $("rate").textContent = state.playbackRate.toFixed(2) + "x";
  $("position").textContent = t.toFixed(1) + " s (played " + state.progressedSeconds.toFixed(1) + " s)";
  $("stalls").textContent = String(state.stalls);
  state.timelineRange = liveWindow(player.seekRange());
  timeline.render(state.timelineRange, breaks.breaks);
  if (state.ready && now - lastSample >= 1000) {
    lastSample = now;
    const r = state.rendition;
    charts.push({ t: Date.now() / 1000, buffer: state.bufferLevel, dropped: state.droppedFrames,
      bitrate: r && r.bitrate ? r.bitrate / 1000 : null, bandwidth: bw ? bw / 1000 : null,
      latency: state.latency, edge: state.edgeLatency, rate: state.playbackRate });
  }
}
setInterval(tick, 250);

async function pollStatus() {
  try {
    const status = await api("GET", "/channels/" + encodeURIComponent(channel) + "/status");
    state.status = status;
    state.channelState = (status && (status.state || (status.channel && status.channel.state))) || "";
    $("channel-state").textContent = state.channelState || "unknown";
    $("channel-state").className = "badge " + state.channelState;
  } catch (err) {
    $("channel-state").textContent = "unreachable";
    $("channel-state").className = "badge ERROR";
  }
}

async function insertAdBreak(duration) {
  const button = $("ad-break");
  button.disabled = true;
  $("ad-break-status").textContent = "requesting…";
  try {
    const result = await api("POST", "/channels/" + encodeURIComponent(channel) + "/ad-breaks",
      { duration: duration || adDuration, kind: "splice_insert" });
    state.adBreaks.push(result);
    const id = result && (result.id || result.break_id);
    $("ad-break-status").textContent = "scheduled " + (id || "") + (result && result.start ? " at " + String(result.start).slice(11, 23) : "");
    log("ad break scheduled: " + JSON.stringify(result).slice(0, 200));
    return result;
  } catch (err) {
    $("ad-break-status").textContent = err.message;
    log(err.message, "error");
    throw err;
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ wiring
$("channel-id").textContent = channel || "(none)";
if (!channel) {
  log("no ?channel= in the URL", "error");
} else {
  $("ad-break").addEventListener("click", () => { insertAdBreak(adDuration).catch(() => {}); });
  document.querySelectorAll("[data-engine]").forEach((b) => b.addEventListener("click",
    () => switchTo({ engine: b.dataset.engine, format: b.dataset.format })));
  $("dvr-toggle").addEventListener("change", (e) => switchTo({ dvr: e.target.checked }));
  $("ll-toggle").addEventListener("change", (e) => switchTo({ lowLatency: e.target.checked }));
  $("abr-toggle").addEventListener("change", (e) => setAbr(e.target.checked));
  $("rendition-select").addEventListener("change", (e) => selectRendition(e.target.value));
  $("live-button").addEventListener("click", () => { const edge = player && player.liveEdge(); if (edge != null) video.currentTime = edge - 3; });
  pollStatus();
  setInterval(pollStatus, 2000);
  syncToolbar();
  newCmcdSession();
  generation += 1;
  start(generation);
}
