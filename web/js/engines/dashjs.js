// dash.js adapter: DASH with CMCD (query mode), the viewer's grant on every request (request
// interceptor, after dash.js's own CMCD interceptor), SCTE-35 EventStream events told apart as
// out / in by decoding their splice_info_section, any number of Periods.
import { needsCredentials, withGrant } from "../net.js";

export const name = "dashjs";
export const label = "dash.js";
export const formats = ["dash"];

const SCTE35_SCHEMES = ["urn:scte:scte35:2014:xml+bin", "urn:scte:scte35:2013:bin", "urn:scte:scte35:2014:bin",
  "urn:scte:scte35:2013:xml"];

// dash.js hands the <Binary> payload over as a string or as bytes depending on the scheme.
function payload(data) {
  if (data == null) return "";
  if (typeof data === "string") return data.trim();
  if (data.byteLength) {
    const bytes = new Uint8Array(data.buffer || data, data.byteOffset || 0, data.byteLength);
    return btoa(String.fromCharCode.apply(null, Array.from(bytes)));
  }
  return "";
}

export function create(ctx) {
  if (!window.dashjs) throw new Error("dash.js did not load");
  const p = window.dashjs.MediaPlayer().create();
  const E = window.dashjs.MediaPlayer.events;
  let ready = false;
  let abr = ctx.abr;

  SCTE35_SCHEMES.forEach((scheme) => {
    p.on(scheme, (e) => {
      const ev = e.event || e;
      const time = ev.calculatedPresentationTime != null ? ev.calculatedPresentationTime
        : ev.presentationTime / ((ev.eventStream && ev.eventStream.timescale) || 1);
      // kind null: the SCTE-35 payload decides (splice_insert out_of_network, segmentation type). dash.js
      // passes no payload for the XML scheme: an Event that lasts is the out, one of no length the return.
      const bytes = payload(ev.messageData);
      ctx.signal({ source: "dash-event", kind: bytes ? null : (ev.duration > 0 ? "out" : "in"), id: String(ev.id),
        time: time, date: null, duration: ev.duration != null && ev.duration > 0 ? ev.duration : null,
        scte35: bytes, eventId: bytes || !(ev.duration > 0) ? null : String(ev.id) });
    }, null, { mode: E.EVENT_MODE_ON_RECEIVE });
  });
  p.on(E.STREAM_INITIALIZED, () => { ctx.renditionsChanged(); });
  p.on(E.QUALITY_CHANGE_RENDERED, (e) => { if (e.mediaType === "video") ctx.renditionChanged(); });
  p.on(E.FRAGMENT_LOADING_COMPLETED, () => { ready = true; });
  p.on(E.BUFFER_EMPTY, (e) => { if (!e.mediaType || e.mediaType === "video") ctx.stallEvent(); });
  p.on(E.ERROR, (e) => {
    const err = e.error || {};
    ctx.log("dash.js error " + (err.code || "") + ": " + (err.message || JSON.stringify(err)).slice(0, 200), "error");
    ctx.fatal(String(err.code || "error"), !ready);
  });
  p.addRequestInterceptor((request) => {
    request.url = withGrant(request.url, ctx.grant().query);
    if (ctx.grant().cookies && needsCredentials(request.url)) request.credentials = "include";
    return Promise.resolve(request);
  });
  p.updateSettings({ streaming: {
    delay: { liveDelayFragmentCount: 3 },
    // The MPD's own UTCTiming wins; the fallback is the page's server clock, never dash.js's
    // default internet time server (the page must work offline and on loopback).
    utcSynchronization: { defaultTimingSource: { scheme: "urn:mpeg:dash:utc:http-iso:2014", value: ctx.timeUrl } },
    cmcd: { enabled: true, mode: "query", sid: ctx.cmcd.sessionId, cid: ctx.cmcd.contentId },
    abr: { autoSwitchBitrate: { video: abr, audio: true } },
  } });

  const rendition = (r, index) => r && { index: index, id: r.id, width: r.width, height: r.height, bitrate: r.bandwidth,
    codecs: r.codecs || "" };
  const list = () => { try { return p.getRepresentationsByType("video") || []; } catch (e) { return []; } };

  return {
    engine: name,
    raw: p,
    load(url) { p.initialize(ctx.video, url, true); },
    destroy() { p.reset(); },
    renditions() { return list().map(rendition); },
    current() {
      const r = p.getCurrentRepresentationForType("video");
      if (!r) return null;
      const i = list().findIndex((x) => x.id === r.id);
      return rendition(r, i);
    },
    abr() { return abr; },
    select(index) {
      abr = false;
      p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
      p.setRepresentationForTypeByIndex("video", index, true);
    },
    setAbr(on) { abr = on; p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: on } } } }); },
    bandwidth() {
      const kbps = p.getAverageThroughput ? p.getAverageThroughput("video") : NaN;
      return Number.isFinite(kbps) && kbps > 0 ? kbps * 1000 : null;
    },
    latency() {
      const l = p.getCurrentLiveLatency();
      const live = Number.isFinite(l) && l > 0 ? l : null;
      return { wallclock: live, edge: live, target: p.getTargetLiveDelay ? p.getTargetLiveDelay() : null };
    },
    seekRange() {
      try {
        const w = p.getDvrWindow();
        return w && Number.isFinite(w.start) ? { start: w.start, end: w.end } : null;
      } catch (e) { return null; }
    },
    liveEdge() { const r = this.seekRange(); return r ? r.end : null; },
    config() {
      const s = p.getSettings().streaming;
      return { cmcd: !!(s.cmcd && s.cmcd.enabled), cmcdMode: s.cmcd && s.cmcd.mode, version: p.getVersion() };
    },
  };
}
