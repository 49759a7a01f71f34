// shaka-player adapter: HLS or DASH, CMCD (query mode), the viewer's grant on every request
// (networking request filter), ad markers from DASH EventStream regions (SCTE-35 decoded to tell
// out from in) and HLS EXT-X-DATERANGE metadata regions.
import { fromXml } from "../markers.js";
import { needsCredentials, withGrant } from "../net.js";

export const name = "shaka";
export const label = "shaka-player";
export const formats = ["dash", "hls"];

let polyfilled = false;

// <Event><Signal><Binary>base64</Binary></Signal></Event> as shaka's parsed XML node tree.
function binaryText(node) {
  if (!node || typeof node !== "object") return "";
  if (/(^|:)Binary$/.test(node.tagName || "")) return (node.children || []).filter((c) => typeof c === "string").join("").trim();
  for (const child of node.children || []) {
    const found = binaryText(child);
    if (found) return found;
  }
  return "";
}

function metadataText(data) {
  if (data == null) return "";
  if (typeof data === "string" || typeof data === "number") return String(data);
  try { return new TextDecoder().decode(data); } catch (e) { return ""; }
}

export function create(ctx) {
  const shaka = window.shaka;
  if (!shaka) throw new Error("shaka-player did not load");
  if (!polyfilled) { shaka.polyfill.installAll(); polyfilled = true; }
  if (!shaka.Player.isBrowserSupported()) throw new Error("shaka-player does not support this browser");
  const player = new shaka.Player();
  const seen = new Set();
  let ready = false;

  player.configure({
    abr: { enabled: ctx.abr },
    cmcd: { enabled: true, useHeaders: false, sessionId: ctx.cmcd.sessionId, contentId: ctx.cmcd.contentId },
    // Without suggestedPresentationDelay shaka sits ~1.5 x minBufferTime behind the edge, closer
    // than a segment-publishing origin can keep up with: hold three 2 s segments back like the others.
    manifest: { defaultPresentationDelay: 6, dash: { clockSyncUri: ctx.timeUrl } },
    streaming: { retryParameters: { maxAttempts: 8, baseDelay: 500, backoffFactor: 1.5, fuzzFactor: 0.2 },
      lowLatencyMode: !!ctx.lowLatency },
  });
  player.getNetworkingEngine().registerRequestFilter((_type, request) => {
    request.uris = request.uris.map((u) => withGrant(u, ctx.grant().query));
    if (ctx.grant().cookies && request.uris.some(needsCredentials)) request.allowCrossSiteCredentials = true;
  });
  player.addEventListener("error", (e) => {
    const err = e.detail || {};
    ctx.log("shaka error " + err.code + " (category " + err.category + ", severity " + err.severity + ")", "error");
    if (err.severity === shaka.util.Error.Severity.CRITICAL) ctx.fatal(String(err.code), !ready);
  });
  player.addEventListener("buffering", (e) => { if (e.buffering && ready) ctx.stallEvent(); });
  player.addEventListener("trackschanged", () => ctx.renditionsChanged());
  player.addEventListener("adaptation", () => ctx.renditionChanged());
  player.addEventListener("variantchanged", () => ctx.renditionChanged());
  player.addEventListener("timelineregionadded", (e) => dashRegion(e.detail || e));

  function dashRegion(region) {
    if (!region || !/scte35/i.test(region.schemeIdUri || "")) return;
    const key = [region.schemeIdUri, region.id, region.startTime].join("|");
    if (seen.has(key)) return;
    seen.add(key);
    const duration = region.endTime > region.startTime ? region.endTime - region.startTime : null;
    const bytes = binaryText(region.eventNode);
    const xml = bytes ? null : fromXml(region.eventNode); // urn:scte:scte35:2013:xml
    ctx.signal({ source: "dash-event", kind: xml ? xml.kind : null, id: String(region.id), time: region.startTime,
      date: null, duration: duration != null ? duration : xml && xml.duration, scte35: bytes,
      eventId: xml ? xml.eventId : null });
  }

  // HLS: shaka turns each EXT-X-DATERANGE attribute into one metadata region (same start/end/id).
  function hlsDateRanges() {
    const groups = new Map();
    (player.getAllMetadataRegions ? player.getAllMetadataRegions() : []).forEach((r) => {
      const k = r.startTime + "|" + r.endTime;
      const g = groups.get(k) || { startTime: r.startTime, endTime: r.endTime, values: {} };
      if (r.payload && r.payload.key) g.values[r.payload.key] = metadataText(r.payload.data);
      groups.set(k, g);
    });
    groups.forEach((g) => {
      const v = g.values;
      const out = v["SCTE35-OUT"], inn = v["SCTE35-IN"];
      if (!out && !inn) return;
      const id = v.ID || "";
      const planned = v["PLANNED-DURATION"] != null ? parseFloat(v["PLANNED-DURATION"]) : null;
      const actual = v.DURATION != null ? parseFloat(v.DURATION) : null;
      const key = "dr|" + id + "|" + g.startTime + "|" + (actual != null) + "|" + !!inn;
      if (seen.has(key)) return;
      seen.add(key);
      if (out) {
        ctx.signal({ source: "daterange", kind: "out", id: id, time: g.startTime, date: null,
          duration: planned != null ? planned : actual, end: actual != null ? g.startTime + actual : null, scte35: out });
      }
      if (inn) {
        ctx.signal({ source: "daterange", kind: "in", id: id, time: g.startTime + (actual || 0), date: null, scte35: inn });
      }
    });
  }

  const variants = () => {
    const byVideo = new Map();
    player.getVariantTracks().forEach((t) => {
      const k = t.width + "x" + t.height + "@" + (t.videoBandwidth || t.bandwidth);
      if (!byVideo.has(k) || t.active) byVideo.set(k, t);
    });
    return Array.from(byVideo.values()).sort((a, b) => (b.videoBandwidth || b.bandwidth) - (a.videoBandwidth || a.bandwidth));
  };
  const rendition = (t, index) => t && { index: index, id: t.originalVideoId || String(t.videoId || t.id),
    width: t.width, height: t.height, bitrate: t.videoBandwidth || t.bandwidth, codecs: t.videoCodec || t.codecs || "" };

  return {
    engine: name,
    raw: player,
    async load(url) {
      await player.attach(ctx.video);
      try {
        await player.load(url);
      } catch (err) {
        ctx.log("shaka load failed: " + (err && err.code), "error");
        ctx.fatal(String(err && err.code), true);
        return;
      }
      ready = true;
      ctx.renditionsChanged();
      ctx.video.play().catch((err) => ctx.log("play() refused: " + err.message));
    },
    destroy() { return player.destroy(); },
    poll() {
      if (!ready) return;
      (player.getAllTimelineRegions ? player.getAllTimelineRegions() : []).forEach(dashRegion);
      hlsDateRanges();
    },
    renditions() { return variants().map(rendition); },
    current() {
      const list = variants();
      const i = list.findIndex((t) => t.active);
      return i >= 0 ? rendition(list[i], i) : null;
    },
    abr() { return !!player.getConfiguration().abr.enabled; },
    select(index) {
      const t = variants()[index];
      if (!t) return;
      player.configure({ abr: { enabled: false } });
      player.selectVariantTrack(t, true);
    },
    setAbr(on) { player.configure({ abr: { enabled: on } }); },
    bandwidth() { const s = player.getStats(); return Number.isFinite(s.estimatedBandwidth) ? s.estimatedBandwidth : null; },
    latency() {
      const d = player.getPlayheadTimeAsDate ? player.getPlayheadTimeAsDate() : null;
      const s = player.getStats();
      return { wallclock: d ? (Date.now() - d.getTime()) / 1000 : null,
        edge: Number.isFinite(s.liveLatency) ? s.liveLatency : null, target: null };
    },
    seekRange() { const r = player.seekRange(); return r && Number.isFinite(r.start) ? { start: r.start, end: r.end } : null; },
    liveEdge() { const r = player.seekRange(); return r ? r.end : null; },
    droppedFrames() { return player.getStats().droppedFrames; },
    config() {
      const c = player.getConfiguration();
      return { cmcd: c.cmcd.enabled, cmcdHeaders: c.cmcd.useHeaders, version: shaka.Player.version };
    },
  };
}
