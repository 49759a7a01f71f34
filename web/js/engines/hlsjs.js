// hls.js adapter: HLS with load policies, CMCD (query mode), the viewer's grant on every request,
// ad markers from EXT-X-CUE-OUT / -CUE-OUT-CONT / -CUE-IN and EXT-X-DATERANGE (SCTE35-OUT/IN), and HLS
// Interstitials (EXT-X-DATERANGE CLASS="com.apple.hls.interstitial"): hls.js schedules and plays the
// ad asset itself; the page reports the schedule and every interstitial / asset start and end.
import { parseCueTag } from "../markers.js";
import { needsCredentials, withGrant } from "../net.js";

const INTERSTITIAL_CLASS = "com.apple.hls.interstitial";

export const name = "hlsjs";
export const label = "hls.js";
export const formats = ["hls"];

// A live origin answers 404 for a moment before a segment or playlist is published (and caches
// the error for about a second): retry those, with linear back-off, within a few target durations.
function retryPolicy(ttfbMs, loadMs, errorRetries, delayMs, maxDelayMs) {
  return {
    default: {
      maxTimeToFirstByteMs: ttfbMs,
      maxLoadTimeMs: loadMs,
      timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: {
        maxNumRetry: errorRetries, retryDelayMs: delayMs, maxRetryDelayMs: maxDelayMs, backoff: "linear",
        shouldRetry: (config, count, isTimeout, response, retry) =>
          retry || (!!response && response.code === 404 && count < config.maxNumRetry),
      },
    },
  };
}

export const LOAD_POLICIES = {
  manifestLoadPolicy: retryPolicy(10000, 20000, 1, 1000, 8000),
  playlistLoadPolicy: retryPolicy(10000, 20000, 8, 500, 4000),
  fragLoadPolicy: retryPolicy(10000, 120000, 8, 500, 4000),
  keyLoadPolicy: retryPolicy(8000, 20000, 2, 1000, 8000),
};

export function create(ctx) {
  const Hls = window.Hls;
  if (!Hls || !Hls.isSupported()) throw new Error("hls.js is not supported in this browser");
  const h = new Hls(Object.assign({
    // Low-Latency HLS: parts, blocking playlist reload and preload hints; hold PART-HOLD-BACK behind the
    // edge and catch up by playing up to 1.5x when further behind (the page shows the rate). A
    // liveSyncDuration(Count) in the config would override PART-HOLD-BACK, so LL leaves it out.
    lowLatencyMode: !!ctx.lowLatency,
    maxLiveSyncPlaybackRate: ctx.lowLatency ? 1.5 : 1,
    // An interstitial's ad plays in its own asset player (an ad server's encoding rarely matches the
    // channel's ladder); adInPlace=1 on the page appends it into the main buffers instead.
    interstitialAppendInPlace: !!ctx.adInPlace,
    backBufferLength: 30,
    cmcd: { sessionId: ctx.cmcd.sessionId, contentId: ctx.cmcd.contentId, useHeaders: false },
    xhrSetup: (xhr, url) => {
      const signed = withGrant(url, ctx.grant().query);
      if (signed !== url) xhr.open("GET", signed, true);
      if (ctx.grant().cookies && needsCredentials(url)) xhr.withCredentials = true;
    },
  }, ctx.lowLatency ? {} : { liveSyncDurationCount: 3 }, LOAD_POLICIES));
  let ready = false;

  const emitCues = (frag) => {
    (frag.tagList || []).forEach((tag) => {
      const tagName = String(tag[0] || "").replace(/^#/, "");
      const cue = parseCueTag(tagName, tag[1]);
      if (!cue) return;
      ctx.signal(Object.assign({ source: "cue", id: null, time: frag.start,
        date: frag.programDateTime || null }, cue));
    });
  };
  const emitDateRanges = (details) => {
    const ranges = (details && details.dateRanges) || {};
    Object.keys(ranges).forEach((id) => {
      const dr = ranges[id];
      if (!dr || !dr.isValid) return;
      const attr = dr.attr || {};
      if (dr.class === INTERSTITIAL_CLASS) {
        ctx.signal({ source: "interstitial", kind: "out", id: id, time: dr.startTime, date: dr.startDate.getTime(),
          duration: dr.plannedDuration != null ? dr.plannedDuration : dr.duration,
          end: dr.duration != null ? dr.startTime + dr.duration : null, scte35: "" });
        if (dr.duration != null) {
          ctx.signal({ source: "interstitial", kind: "in", id: id, time: dr.startTime + dr.duration,
            date: dr.endDate ? dr.endDate.getTime() : null, scte35: "" });
        }
        return;
      }
      if (!(attr["SCTE35-OUT"] || attr["SCTE35-IN"] || attr["SCTE35-CMD"] || /scte35/i.test(dr.class || ""))) return;
      const start = dr.startTime;
      const out = attr["SCTE35-OUT"] || attr["SCTE35-CMD"];
      if (out || dr.plannedDuration != null) {
        ctx.signal({ source: "daterange", kind: attr["SCTE35-OUT"] || !attr["SCTE35-CMD"] ? "out" : null, id: id,
          time: start, date: dr.startDate.getTime(), duration: dr.plannedDuration != null ? dr.plannedDuration : dr.duration,
          end: dr.duration != null ? start + dr.duration : null, scte35: out || "" });
      }
      if (attr["SCTE35-IN"] || (dr.duration != null && !out)) {
        ctx.signal({ source: "daterange", kind: "in", id: id, time: start + (dr.duration || 0),
          date: dr.endDate ? dr.endDate.getTime() : null, scte35: attr["SCTE35-IN"] || "" });
      }
    });
  };
  const onLevel = (_e, data) => {
    (data.details.fragments || []).forEach(emitCues);
    emitDateRanges(data.details);
  };

  h.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    ctx.log("HLS multivariant playlist: " + data.levels.length + " renditions");
    ctx.renditionsChanged();
    ctx.video.play().catch((err) => ctx.log("play() refused: " + err.message));
  });
  const interstitial = (type) => (_e, data) => {
    const ev = (data && data.event) || {};
    ctx.interstitial({ type: type, id: ev.identifier || null, asset: data && data.asset ? data.asset.uri || null : null,
      time: ctx.video.currentTime, at: new Date().toISOString(),
      error: data && data.error ? String(data.error.message || data.error) : null });
  };
  [["started", Hls.Events.INTERSTITIAL_STARTED], ["asset-started", Hls.Events.INTERSTITIAL_ASSET_STARTED],
    ["asset-ended", Hls.Events.INTERSTITIAL_ASSET_ENDED], ["ended", Hls.Events.INTERSTITIAL_ENDED],
    ["primary-resumed", Hls.Events.INTERSTITIALS_PRIMARY_RESUMED], ["asset-error", Hls.Events.INTERSTITIAL_ASSET_ERROR]]
    .forEach(([type, event]) => { if (event) h.on(event, interstitial(type)); });
  h.on(Hls.Events.LEVEL_LOADED, onLevel);
  h.on(Hls.Events.LEVEL_UPDATED, onLevel);
  h.on(Hls.Events.LEVEL_SWITCHED, () => ctx.renditionChanged());
  h.on(Hls.Events.FRAG_BUFFERED, () => { ready = true; });
  h.on(Hls.Events.ERROR, (_e, data) => {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) ctx.stallEvent();
    if (!data.fatal) return;
    ctx.log("hls.js fatal " + data.type + ": " + data.details + (data.response ? " (" + data.response.code + ")" : ""), "error");
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) { h.recoverMediaError(); return; }
    ctx.fatal(data.details, !ready);
  });

  const rendition = (level, index) => level && {
    index: index, id: level.name || String(index), width: level.width, height: level.height,
    bitrate: level.averageBitrate || level.bitrate, codecs: level.codecSet || "",
  };

  return {
    engine: name,
    raw: h,
    load(url) { h.loadSource(url); h.attachMedia(ctx.video); },
    destroy() { h.destroy(); },
    renditions() { return h.levels.map(rendition); },
    current() { return h.currentLevel >= 0 ? rendition(h.levels[h.currentLevel], h.currentLevel) : null; },
    abr() { return h.autoLevelEnabled; },
    // Manual: switch now (flushes the buffer ahead); auto: hand the choice back to the ABR controller.
    select(index) { h.currentLevel = index; },
    setAbr(on) { if (on) h.currentLevel = -1; else h.currentLevel = Math.max(0, h.currentLevel); },
    bandwidth() { return h.bandwidthEstimate || null; },
    latency() {
      const pd = h.playingDate;
      return { wallclock: pd ? (Date.now() - pd.getTime()) / 1000 : null,
        edge: Number.isFinite(h.latency) ? h.latency : null, target: h.targetLatency };
    },
    // The playlist's window, not video.seekable: without liveDurationInfinity hls.js sets the
    // MediaSource duration to the playlist end, so seekable starts at 0 whatever left the window.
    seekRange() {
      const level = h.levels[h.currentLevel >= 0 ? h.currentLevel : h.loadLevel];
      const d = h.latestLevelDetails || (level && level.details);
      if (!d || !d.fragments || !d.fragments.length) return null;
      return { start: d.fragments[0].start, end: d.edge };
    },
    liveEdge() { return h.liveSyncPosition; },
    config() {
      const c = h.config;
      return { loadPolicies: Object.keys(LOAD_POLICIES).filter((k) => c[k] && c[k].default),
        fragLoadPolicy: c.fragLoadPolicy && c.fragLoadPolicy.default && {
          maxTimeToFirstByteMs: c.fragLoadPolicy.default.maxTimeToFirstByteMs,
          errorRetries: c.fragLoadPolicy.default.errorRetry && c.fragLoadPolicy.default.errorRetry.maxNumRetry },
        legacyRetryOptions: ["fragLoadingMaxRetry", "manifestLoadingMaxRetry", "levelLoadingMaxRetry"]
          .filter((k) => h.userConfig && h.userConfig[k] !== undefined),
        cmcd: !!c.cmcd, lowLatencyMode: !!c.lowLatencyMode, version: Hls.version };
    },
  };
}
