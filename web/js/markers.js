// Ad-break markers as the player sees them, joined into breaks for the seek bar.
//
// Engines report *signals*; this module turns them into one break per ad avail:
//   {source: "cue"|"daterange"|"dash-event"|..., kind: "out"|"cont"|"in", id, time (media s),
//    date (epoch ms or null), duration (planned s), elapsed (s, CUE-OUT-CONT), scte35}
// Joining rules (one break may be signalled in several dialects at once):
// - the same explicit id (DATERANGE ID, DASH Event id, the SCTE-35 splice_event_id) is one break;
// - a signal without an id (EXT-X-CUE-OUT / -CONT / -IN) joins the break starting within
//   JOIN_TOLERANCE of its start: CUE-OUT-CONT's ElapsedTime gives the start of a break whose
//   CUE-OUT already left the live window;
// - an "in" ends the break it names, or the latest open break that started before it.
import { decode } from "./scte35.js";

export const JOIN_TOLERANCE = 1.0; // seconds: CUE and DATERANGE of one splice share a segment boundary

// Fill in what the SCTE-35 payload says: kind (out/in) when the engine could not tell, the
// splice_event_id, the break duration. Returns a new object; null for cancelled splices.
export function normalize(signal) {
  const s = Object.assign({}, signal);
  const cue = s.scte35 ? decode(s.scte35) : null;
  if (cue && cue.cancel) return null;
  if (cue && s.kind == null) s.kind = cue.kind === "other" ? null : cue.kind;
  // An engine that read the splice_event_id itself (SCTE 35 XML) keeps it when there are no bytes to decode.
  s.eventId = cue && cue.spliceEventId != null ? String(cue.spliceEventId) : (s.eventId != null ? String(s.eventId) : null);
  if (s.duration == null && cue && cue.duration != null && s.kind === "out") s.duration = cue.duration;
  return s;
}

export class BreakTimeline {
  constructor() {
    this.breaks = [];
    this.listeners = [];
    this.seen = new Map(); // engines report every signal on every playlist refresh
  }

  onChange(fn) { this.listeners.push(fn); }

  _changed(brk) { this.listeners.forEach((fn) => fn(brk, this)); }

  clear() { this.breaks = []; this.seen.clear(); this._changed(null); }

  // A signal from an engine adapter; returns the break it belongs to (or null if ignored).
  ingest(signal) {
    const s = normalize(signal);
    if (!s || !s.kind || !Number.isFinite(s.time)) return null;
    const dedup = [s.source, s.kind, s.id, s.time.toFixed(2), s.duration, s.end, s.elapsed].join("|");
    if (this.seen.has(dedup)) return this.seen.get(dedup);
    const eventId = s.eventId;
    const start = s.kind === "cont" && Number.isFinite(s.elapsed) ? s.time - s.elapsed : s.time;
    let brk = this._find(s, eventId, start);
    if (s.kind === "in") {
      if (!brk) return null; // an in whose out we never saw: nothing to draw
      if (brk.end == null || Math.abs(brk.end - s.time) > JOIN_TOLERANCE) brk.end = s.time;
      brk.sources.add(s.source);
      if (s.id) brk.ids.add(String(s.id));
      brk.signals.push(s);
      this.seen.set(dedup, brk);
      this._changed(brk);
      return brk;
    }
    if (!brk) {
      brk = { key: "b" + (this.breaks.length + 1), ids: new Set(), eventId: eventId, start: start,
        date: s.date != null ? s.date - (s.kind === "cont" && s.elapsed ? s.elapsed * 1000 : 0) : null,
        duration: null, end: null, sources: new Set(), signals: [], scte35: "" };
      this.breaks.push(brk);
      this.breaks.sort((a, b) => a.start - b.start);
    }
    if (s.id) brk.ids.add(String(s.id));
    if (eventId && !brk.eventId) brk.eventId = eventId;
    brk.sources.add(s.source);
    brk.signals.push(s);
    // An explicit out is more precise than a start derived from CUE-OUT-CONT's elapsed time.
    if (s.kind === "out") brk.start = start;
    if (s.duration != null && Number.isFinite(Number(s.duration))) brk.duration = Number(s.duration);
    if (s.end != null && Number.isFinite(s.end)) brk.end = s.end; // DATERANGE END-DATE / DURATION
    if (s.scte35 && !brk.scte35) brk.scte35 = String(s.scte35);
    this.seen.set(dedup, brk);
    this._changed(brk);
    return brk;
  }

  _find(s, eventId, start) {
    const ids = [s.id && String(s.id), eventId].filter(Boolean);
    let found = this.breaks.find((b) => ids.some((id) => b.ids.has(id) || b.eventId === id));
    if (found) return found;
    if (s.kind === "in") {
      // The latest break that began before this in and is not closed before it.
      const open = this.breaks.filter((b) => b.start <= s.time + JOIN_TOLERANCE && (b.end == null || b.end >= s.time - JOIN_TOLERANCE));
      return open.length ? open[open.length - 1] : null;
    }
    found = this.breaks.find((b) => Math.abs(b.start - start) <= JOIN_TOLERANCE);
    return found || null;
  }

  // The end a viewer should expect: the in-point once known, else start + planned duration.
  static endOf(brk) {
    if (brk.end != null) return brk.end;
    return brk.duration != null ? brk.start + brk.duration : null;
  }

  // {brk, elapsed, duration} when media time t is inside a break, else null.
  at(t) {
    for (const brk of this.breaks) {
      const end = BreakTimeline.endOf(brk);
      if (t >= brk.start && (end == null ? true : t < end)) {
        return { brk: brk, elapsed: t - brk.start, duration: end == null ? null : end - brk.start };
      }
    }
    return null;
  }

  summary() {
    return this.breaks.map((b) => ({ key: b.key, ids: Array.from(b.ids), eventId: b.eventId, start: b.start,
      date: b.date, duration: b.duration, end: b.end, sources: Array.from(b.sources).sort(),
      kinds: b.signals.map((s) => s.kind) }));
  }
}

// "in break, elapsed 12.0 s of 30.0 s" (or "of ?" before the duration is known).
export function describe(position) {
  if (!position) return "";
  const of = position.duration == null ? "?" : position.duration.toFixed(1) + " s";
  return "in break, elapsed " + position.elapsed.toFixed(1) + " s of " + of;
}

// An SCTE 35 XML SpliceInfoSection (the urn:scte:scte35:2013:xml Event payload) as a parsed node tree
// ({tagName, attributes, children}, what shaka hands over; a DOM Element works too) -> {kind, eventId,
// duration, pts} or null. Segmentation types pair up like the binary form's (start even, end = start + 1).
export function fromXml(node) {
  const found = {};
  const attrs = (n) => (n && n.attributes) || {};
  const get = (n, k) => (typeof n.getAttribute === "function" ? n.getAttribute(k) : attrs(n)[k]);
  const walk = (n) => {
    if (!n || typeof n !== "object") return;
    const tag = String(n.tagName || n.localName || "").replace(/^.*:/, "");
    if (tag && !found[tag]) found[tag] = n;
    const kids = n.children ? Array.from(n.children) : [];
    kids.forEach(walk);
  };
  walk(node);
  const si = found.SpliceInsert, seg = found.SegmentationDescriptor;
  if (!si && !seg) return null;
  const out = { kind: null, eventId: null, duration: null, pts: null, cancel: false };
  const time = found.SpliceTime && get(found.SpliceTime, "ptsTime");
  if (time != null) out.pts = Number(time) / 90000;
  if (si) {
    out.eventId = get(si, "spliceEventId");
    out.cancel = get(si, "spliceEventCancelIndicator") === "true";
    out.kind = get(si, "outOfNetworkIndicator") === "true" ? "out" : "in";
    const d = found.BreakDuration && get(found.BreakDuration, "duration");
    if (d != null) out.duration = Number(d) / 90000;
  } else {
    out.eventId = get(seg, "segmentationEventId");
    out.cancel = get(seg, "segmentationEventCancelIndicator") === "true";
    const type = Number(get(seg, "segmentationTypeId"));
    out.kind = OUT_XML_TYPES.has(type) ? "out" : OUT_XML_TYPES.has(type - 1) ? "in" : null;
    const d = get(seg, "segmentationDuration");
    if (d != null) out.duration = Number(d) / 90000;
  }
  return out;
}
const OUT_XML_TYPES = new Set([0x10, 0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3a, 0x3c, 0x3e, 0x44, 0x46]);

// EXT-X-CUE-OUT:30 | EXT-X-CUE-OUT:DURATION=30 -> 30; EXT-X-CUE-OUT-CONT:ElapsedTime=4,Duration=30
// | EXT-X-CUE-OUT-CONT:4/30 -> {elapsed: 4, duration: 30}.
export function parseCueTag(name, value) {
  const text = String(value || "");
  if (name === "EXT-X-CUE-OUT") {
    const m = /(?:DURATION=)?([0-9.]+)/i.exec(text);
    return { kind: "out", duration: m ? parseFloat(m[1]) : null };
  }
  if (name === "EXT-X-CUE-OUT-CONT") {
    let m = /ElapsedTime=([0-9.]+)/i.exec(text);
    const d = /Duration=([0-9.]+)/i.exec(text);
    if (m) return { kind: "cont", elapsed: parseFloat(m[1]), duration: d ? parseFloat(d[1]) : null,
      scte35: (/SCTE35=([^,]+)/i.exec(text) || [])[1] || "" };
    m = /^([0-9.]+)\/([0-9.]+)/.exec(text);
    if (m) return { kind: "cont", elapsed: parseFloat(m[1]), duration: parseFloat(m[2]) };
    return { kind: "cont", elapsed: null, duration: null };
  }
  if (name === "EXT-X-CUE-IN") return { kind: "in" };
  return null;
}
