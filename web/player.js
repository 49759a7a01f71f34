// Slipstream demo player: hls.js (default) or dash.js, channel state, live latency, rendition,
// SCTE-35 markers as the *player* sees them, and an "Insert ad break" button that calls the API.
//
// Query parameters: channel (required), format=hls|dash, api (API base, default "api" -- the demo
// server proxies it to `chalice local` so the page needs no CORS), origin (default "origin"),
// src (explicit manifest URL, skips the playback lookup), key (x-api-key, when not proxied),
// adDuration (seconds the ad-break button requests, default 30), time (DASH UTCTiming fallback URL).
//
// Test hooks: window.slipstream (markers, stalls, currentTime(), ...) and data-testid attributes.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const channel = params.get("channel") || "";
  const apiBase = (params.get("api") || "api").replace(/\/$/, "");
  const originBase = (params.get("origin") || "origin").replace(/\/$/, "");
  const apiKey = params.get("key") || "";
  // Seconds the "Insert ad break" button asks for (a break may not overlap the previous one).
  const adDuration = Math.max(1, Number(params.get("adDuration")) || 30);
  const SCTE35_SCHEMES = ["urn:scte:scte35:2014:xml+bin", "urn:scte:scte35:2013:bin", "urn:scte:scte35:2014:bin"];
  // A live stream that does not advance for this long while it should be playing is a stall
  // the viewer would notice (a spinner), whatever the player's own heuristics report.
  const STALL_MS = 1500;

  const $ = (id) => document.getElementById(id);
  const video = $("video");

  const state = {
    format: params.get("format") === "dash" ? "dash" : "hls",
    channel: channel,
    source: "",
    ready: false, // playback has progressed at least once
    playing: false,
    stalls: 0, // stall episodes detected from currentTime not advancing
    stallEvents: 0, // the player's own stall reports (hls.js BUFFER_STALLED_ERROR, dash.js bufferStalled)
    progressedSeconds: 0, // media seconds actually played since load
    markers: [],
    errors: [],
    log: [],
    status: null,
    channelState: "",
    latency: null, // seconds: wall clock minus the program date time of the frame on screen
    edgeLatency: null, // seconds behind the live edge of the playlist/MPD
    rendition: null,
    adBreaks: [],
    currentTime: () => video.currentTime,
    insertAdBreak: (duration) => insertAdBreak(duration),
    switchFormat: (format) => switchFormat(format),
  };
  window.slipstream = state;

  let hls = null;
  let dash = null;
  let retryTimer = null;
  let fallbackSource = "";
  let sourceFailures = 0;

  // The API's playback URL may not be reachable from this page (e.g. a private emulator endpoint):
  // after a few failed manifest loads, fall back to the origin path the demo server proxies.
  function retrySource(start, url) {
    sourceFailures += 1;
    let next = url;
    if (sourceFailures >= 3 && fallbackSource && url !== fallbackSource) {
      log("manifest keeps failing at " + url + "; trying " + fallbackSource);
      next = fallbackSource;
      state.source = next;
      $("source-url").textContent = next;
      $("source-url").href = next;
    }
    retryTimer = setTimeout(() => start(next), 2000);
  }
  const seenMarkers = new Set();

  function log(message, level) {
    const line = new Date().toISOString().slice(11, 23) + " " + message;
    state.log.push(line);
    if (level === "error") state.errors.push(message);
    const li = document.createElement("li");
    li.textContent = line;
    const list = $("log");
    list.prepend(li);
    while (list.children.length > 100) list.lastChild.remove();
  }

  function apiHeaders(extra) {
    const headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (apiKey) headers["x-api-key"] = apiKey;
    return headers;
  }

  async function api(method, path, body) {
    const init = { method: method, headers: apiHeaders(body ? { "Content-Type": "application/json" } : {}) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(apiBase + path, init);
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
  function addMarker(marker) {
    const key = [marker.source, marker.id, marker.kind].join("|");
    if (seenMarkers.has(key)) return;
    seenMarkers.add(key);
    marker.seenAt = new Date().toISOString();
    marker.format = state.format;
    state.markers.push(marker);
    const li = document.createElement("li");
    li.className = marker.kind;
    li.dataset.markerId = marker.id;
    const parts = [marker.seenAt.slice(11, 19), marker.source, marker.kind.toUpperCase(), marker.id];
    if (marker.start) parts.push("@" + marker.start.slice(11, 23));
    if (marker.duration != null) parts.push(Number(marker.duration).toFixed(1) + " s");
    li.textContent = parts.join("  ");
    $("markers").prepend(li);
  }

  function hlsDateRanges(details) {
    const ranges = details && details.dateRanges ? details.dateRanges : {};
    Object.keys(ranges).forEach((id) => {
      const dr = ranges[id];
      if (!dr) return;
      const attr = dr.attr || {};
      const isScte = attr["SCTE35-OUT"] || attr["SCTE35-IN"] || attr["SCTE35-CMD"] ||
        /scte35/i.test(dr.class || attr.CLASS || "") || /splice|ad/i.test(id);
      if (!isScte) return;
      const start = dr.startDate ? dr.startDate.toISOString() : attr["START-DATE"];
      if (attr["SCTE35-OUT"] || attr["SCTE35-CMD"] || attr["PLANNED-DURATION"]) {
        addMarker({ source: "daterange", kind: "out", id: id, start: start,
          duration: dr.plannedDuration != null ? dr.plannedDuration : dr.duration,
          scte35: attr["SCTE35-OUT"] || attr["SCTE35-CMD"] || "" });
      }
      if (attr["SCTE35-IN"] || dr.duration != null || attr["END-DATE"]) {
        addMarker({ source: "daterange", kind: "in", id: id, start: start, duration: dr.duration,
          scte35: attr["SCTE35-IN"] || "" });
      }
    });
  }

  function cueTags(frag) {
    (frag.tagList || []).forEach((tag) => {
      const name = String(tag[0] || "").replace(/^#/, "");
      const value = tag[1] || "";
      let kind = null;
      if (name === "EXT-X-CUE-OUT") kind = "out";
      else if (name === "EXT-X-CUE-IN") kind = "in";
      if (!kind) return;
      const m = /(?:DURATION=)?([0-9.]+)/.exec(value);
      addMarker({ source: "cue", kind: kind, id: "sn" + frag.sn,
        start: frag.programDateTime ? new Date(frag.programDateTime).toISOString() : "",
        duration: kind === "out" && m ? parseFloat(m[1]) : null, scte35: "" });
    });
  }

  // dash.js hands the <Binary> payload over as a string or as bytes depending on the scheme.
  function scte35Text(data) {
    if (typeof data === "string") return data.trim().slice(0, 120);
    if (data && data.byteLength) {
      const bytes = new Uint8Array(data.buffer || data, data.byteOffset || 0, data.byteLength);
      return btoa(String.fromCharCode.apply(null, Array.from(bytes))).slice(0, 120);
    }
    return "";
  }

  function dashEvent(e) {
    const ev = e.event || e;
    const stream = ev.eventStream || {};
    const scale = stream.timescale || 1;
    addMarker({ source: "dash-event", kind: "out", id: String(ev.id),
      start: "", presentationTime: ev.calculatedPresentationTime != null ? ev.calculatedPresentationTime : ev.presentationTime / scale,
      duration: ev.duration != null ? ev.duration : null, // dash.js has already divided by @timescale
      scte35: scte35Text(ev.messageData) });
  }

  // ------------------------------------------------------------------ players
  function renditionFromUrl(url) {
    const parts = String(url || "").split("?")[0].split("/");
    return parts.length > 1 ? parts[parts.length - 2] : "";
  }

  function showRendition(r) {
    state.rendition = r;
    $("rendition").textContent = r ? (r.name || "") + " " + r.width + "x" + r.height : "–";
    $("bitrate").textContent = r && r.bitrate ? (r.bitrate / 1000).toFixed(0) + " kb/s" : "–";
  }

  function teardown() {
    clearTimeout(retryTimer);
    if (hls) { hls.destroy(); hls = null; }
    if (dash) { dash.reset(); dash = null; }
    state.ready = false;
    state.playing = false;
    video.removeAttribute("src");
  }

  function startHls(url) {
    if (!window.Hls || !Hls.isSupported()) { log("hls.js is not supported in this browser", "error"); return; }
    const h = new Hls({
      liveSyncDurationCount: 3,
      backBufferLength: 30,
      manifestLoadingMaxRetry: 1,
      levelLoadingMaxRetry: 8,
      fragLoadingMaxRetry: 8,
    });
    hls = h;
    h.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      log("HLS master: " + data.levels.length + " renditions");
      video.play().catch((err) => log("play() refused: " + err.message));
    });
    const onLevel = (_e, data) => {
      hlsDateRanges(data.details);
      (data.details.fragments || []).forEach(cueTags);
    };
    h.on(Hls.Events.LEVEL_LOADED, onLevel);
    h.on(Hls.Events.LEVEL_UPDATED, onLevel);
    h.on(Hls.Events.FRAG_CHANGED, (_e, data) => cueTags(data.frag));
    h.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = h.levels[data.level];
      if (!level) return;
      showRendition({ name: level.name || renditionFromUrl(level.url[0] || level.url), width: level.width,
        height: level.height, bitrate: level.averageBitrate || level.bitrate });
      log("rendition -> " + state.rendition.name);
    });
    h.on(Hls.Events.ERROR, (_e, data) => {
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) state.stallEvents += 1;
      if (!data.fatal) return;
      log("hls.js fatal " + data.type + ": " + data.details, "error");
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { h.recoverMediaError(); return; }
      // Before the first playlist is published the master 404s: wait and try again.
      teardown();
      retrySource(startHls, url);
    });
    h.loadSource(url);
    h.attachMedia(video);
  }

  function startDash(url) {
    if (!window.dashjs) { log("dash.js did not load", "error"); return; }
    const p = dashjs.MediaPlayer().create();
    dash = p;
    const E = dashjs.MediaPlayer.events;
    SCTE35_SCHEMES.forEach((scheme) => {
      p.on(scheme, dashEvent, null, { mode: E.EVENT_MODE_ON_RECEIVE });
    });
    p.on(E.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType !== "video") return;
      const r = p.getCurrentRepresentationForType("video");
      if (r) showRendition({ name: r.id, width: r.width, height: r.height, bitrate: r.bandwidth });
    });
    p.on(E.BUFFER_EMPTY, (e) => { if (!e.mediaType || e.mediaType === "video") state.stallEvents += 1; });
    p.on(E.ERROR, (e) => {
      const err = e.error || {};
      log("dash.js error " + (err.code || "") + ": " + (err.message || JSON.stringify(err)).slice(0, 200), "error");
      // The MPD 404s until the first segment is published: retry like the HLS path.
      if (!state.ready) { teardown(); retrySource(startDash, url); }
    });
    // The MPD's own UTCTiming wins; the fallback is the demo server's clock, never dash.js's default
    // internet time server (the page must work offline and on loopback).
    const timeUrl = params.get("time") || new URL("time", window.location.href).href;
    p.updateSettings({ streaming: {
      delay: { liveDelayFragmentCount: 3 },
      utcSynchronization: { defaultTimingSource: { scheme: "urn:mpeg:dash:utc:http-iso:2014", value: timeUrl } },
    } });
    p.initialize(video, url, true);
  }

  async function resolveSource(format) {
    if (params.get("src")) return params.get("src");
    const fallback = originBase + "/" + channel + (format === "dash" ? "/manifest.mpd" : "/master.m3u8");
    fallbackSource = fallback;
    sourceFailures = 0;
    try {
      const playback = await api("GET", "/channels/" + encodeURIComponent(channel) + "/playback");
      const urls = [];
      const walk = (v) => {
        if (typeof v === "string") urls.push(v);
        else if (v && typeof v === "object") Object.values(v).forEach(walk);
      };
      walk(playback);
      const wanted = format === "dash" ? /\.mpd(\?|$)/ : /\.m3u8(\?|$)/;
      const found = urls.find((u) => wanted.test(u) && !/\/(dvr|vod)\b/i.test(u)) || urls.find((u) => wanted.test(u));
      if (found) return found;
    } catch (err) {
      log("playback lookup failed, using the origin path: " + err.message);
    }
    return fallback;
  }

  async function switchFormat(format) {
    state.format = format === "dash" ? "dash" : "hls";
    document.querySelectorAll("[data-format]").forEach((b) => b.classList.toggle("active", b.dataset.format === state.format));
    teardown();
    showRendition(null);
    const url = await resolveSource(state.format);
    state.source = url;
    $("source-url").textContent = url;
    $("source-url").href = url;
    log("loading " + state.format.toUpperCase() + " " + url);
    if (state.format === "dash") startDash(url); else startHls(url);
  }

  // ------------------------------------------------------------------ stats loop
  let lastTime = -1;
  let lastAdvance = performance.now();
  let inStall = false;
  video.addEventListener("playing", () => { state.playing = true; });
  video.addEventListener("pause", () => { state.playing = false; });

  function tick() {
    const now = performance.now();
    const t = video.currentTime;
    if (t > lastTime + 0.01) {
      if (lastTime >= 0 && t - lastTime < 5) state.progressedSeconds += t - lastTime;
      if (!state.ready && lastTime >= 0) { state.ready = true; log("playback started"); }
      lastTime = t;
      lastAdvance = now;
      inStall = false;
    } else if (state.ready && !video.paused && !video.ended && now - lastAdvance > STALL_MS && !inStall) {
      inStall = true;
      state.stalls += 1;
      log("stall: no progress for " + STALL_MS + " ms at " + t.toFixed(2), "error");
    }
    if (hls) {
      const pd = hls.playingDate;
      state.latency = pd ? (Date.now() - pd.getTime()) / 1000 : null;
      state.edgeLatency = Number.isFinite(hls.latency) ? hls.latency : null;
      $("bandwidth").textContent = hls.bandwidthEstimate ? (hls.bandwidthEstimate / 1000).toFixed(0) + " kb/s" : "–";
    } else if (dash) {
      const l = dash.getCurrentLiveLatency();
      state.latency = Number.isFinite(l) && l > 0 ? l : null;
      state.edgeLatency = state.latency;
      const bw = dash.getAverageThroughput ? dash.getAverageThroughput("video") : NaN;
      $("bandwidth").textContent = Number.isFinite(bw) && bw > 0 ? bw.toFixed(0) + " kb/s" : "–";
    }
    $("latency").textContent = state.latency != null ? state.latency.toFixed(1) + " s" : "–";
    $("edge-latency").textContent = state.edgeLatency != null ? state.edgeLatency.toFixed(1) + " s" : "–";
    $("position").textContent = t.toFixed(1) + " s (played " + state.progressedSeconds.toFixed(1) + " s)";
    $("stalls").textContent = String(state.stalls);
  }
  setInterval(tick, 250);

  async function pollStatus() {
    try {
      const status = await api("GET", "/channels/" + encodeURIComponent(channel) + "/status");
      state.status = status;
      state.channelState = (status && (status.state || (status.channel && status.channel.state))) || "";
      const badge = $("channel-state");
      badge.textContent = state.channelState || "unknown";
      badge.className = "badge " + state.channelState;
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
      const id = result && (result.id || result.break_id || (result.ad_break && result.ad_break.id));
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
    return;
  }
  $("ad-break").addEventListener("click", () => { insertAdBreak(adDuration).catch(() => {}); });
  document.querySelectorAll("[data-format]").forEach((b) => b.addEventListener("click", () => switchFormat(b.dataset.format)));
  pollStatus();
  setInterval(pollStatus, 2000);
  switchFormat(state.format);
})();
