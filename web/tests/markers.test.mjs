// Unit tests of the page's pure modules (node --test web/tests/markers.test.mjs).
// SCTE-35 sections come from the packager's own encoder (threefive via chalicelib.media.scte35):
// tests/unit/web/test_player_modules.py writes them to $SCTE35_FIXTURES; the defaults below are the
// same sections, so the file also runs on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decode } from "../js/scte35.js";
import { BreakTimeline, describe, fromXml, parseCueTag } from "../js/markers.js";
import { withGrant } from "../js/net.js";

const F = process.env.SCTE35_FIXTURES ? JSON.parse(readFileSync(process.env.SCTE35_FIXTURES, "utf8")) : {
  out: "/DAgAAAAAAAAAP/wDwUAAAAqf//+ACky4AAqAAAAAPQhToc=", // splice_insert 42, out, 30 s, immediate
  in: "0xfc302000000000000000fff00f050000002a7f4ffe00112a88002a0000000073ed9e79", // 42, in, pts 12.5
  poStart: "/DAsAAAAAAAAAP/wBQb+AIlUQAAWAhRDVUVJAAAAB3//AAAbd0AAADQAAPWceEc=", // time_signal 0x34, 20 s
  poEnd: "/DAnAAAAAAAAAP/wBQb+AKTLgAARAg9DVUVJAAAAB3+/AAA1AAAGpuX1", // time_signal 0x35
  cancel: "/DAWAAAAAAAAAP/wBQUAAAAq/wAAxpzvAw==",
  outXml: '<scte35:SpliceInfoSection ptsAdjustment="0" protocolVersion="0" tier="4095"><scte35:SpliceInsert ' +
    'spliceEventId="42" spliceEventCancelIndicator="false" outOfNetworkIndicator="true" spliceImmediateFlag="true" ' +
    'uniqueProgramId="42" availNum="0" availsExpected="0"><scte35:BreakDuration autoReturn="true" duration="2700000"/>' +
    "</scte35:SpliceInsert></scte35:SpliceInfoSection>",
  poEndXml: '<scte35:SpliceInfoSection ptsAdjustment="0" protocolVersion="0" tier="4095"><scte35:TimeSignal>' +
    '<scte35:SpliceTime ptsTime="10800000"/></scte35:TimeSignal><scte35:SegmentationDescriptor segmentationEventId="7" ' +
    'segmentationEventCancelIndicator="false" segmentationTypeId="53" segmentNum="0" segmentsExpected="0">' +
    "</scte35:SegmentationDescriptor></scte35:SpliceInfoSection>",
};

test("splice_insert out and in are told apart, with id and duration", () => {
  const out = decode(F.out);
  assert.equal(out.command, "splice_insert");
  assert.equal(out.kind, "out");
  assert.equal(out.spliceEventId, 42);
  assert.equal(out.duration, 30);
  const inn = decode(F.in); // hex form, as in SCTE35-IN= of a DATERANGE
  assert.equal(inn.kind, "in");
  assert.equal(inn.spliceEventId, 42);
  assert.equal(inn.pts, 12.5);
  assert.equal(decode(F.cancel).cancel, true);
});

test("time_signal placement opportunities: start is out, end is in", () => {
  const start = decode(F.poStart);
  assert.equal(start.command, "time_signal");
  assert.deepEqual([start.kind, start.spliceEventId, start.duration, start.pts], ["out", 7, 20, 100]);
  assert.equal(start.segmentation[0].typeId, 0x34);
  const end = decode(F.poEnd);
  assert.deepEqual([end.kind, end.spliceEventId], ["in", 7]);
  assert.equal(decode("not scte35"), null);
});

test("CUE-OUT, CUE-OUT-CONT in both dialects and CUE-IN parse", () => {
  assert.deepEqual(parseCueTag("EXT-X-CUE-OUT", "DURATION=30.000"), { kind: "out", duration: 30 });
  assert.deepEqual(parseCueTag("EXT-X-CUE-OUT", "8"), { kind: "out", duration: 8 });
  const elemental = parseCueTag("EXT-X-CUE-OUT-CONT", "ElapsedTime=4.000,Duration=8.000,SCTE35=/DAg");
  assert.deepEqual([elemental.elapsed, elemental.duration, elemental.scte35], [4, 8, "/DAg"]);
  const slash = parseCueTag("EXT-X-CUE-OUT-CONT", "2.5/8");
  assert.deepEqual([slash.elapsed, slash.duration], [2.5, 8]);
  assert.deepEqual(parseCueTag("EXT-X-CUE-IN", ""), { kind: "in" });
});

test("CUE and DATERANGE of one break are one marker, closed by either in", () => {
  const t = new BreakTimeline();
  t.ingest({ source: "daterange", kind: "out", id: "b1", time: 100.02, duration: 8, scte35: F.out });
  t.ingest({ source: "cue", kind: "out", id: null, time: 100, duration: 8 });
  for (const e of [2, 4, 6]) t.ingest({ source: "cue", kind: "cont", time: 100 + e, elapsed: e, duration: 8 });
  assert.equal(t.breaks.length, 1);
  assert.deepEqual(Array.from(t.breaks[0].sources).sort(), ["cue", "daterange"]);
  assert.equal(describe(t.at(103)), "in break, elapsed 3.0 s of 8.0 s");
  t.ingest({ source: "cue", kind: "in", time: 107 }); // returned a second early
  assert.equal(t.breaks[0].end, 107);
  assert.equal(t.at(107.5), null);
  // The same signals again (every playlist refresh) change nothing.
  t.ingest({ source: "cue", kind: "out", id: null, time: 100, duration: 8 });
  assert.equal(t.breaks.length, 1);
});

test("a viewer joining mid-break gets the start from CUE-OUT-CONT's elapsed time", () => {
  const t = new BreakTimeline();
  t.ingest({ source: "cue", kind: "cont", time: 50, elapsed: 6, duration: 30 });
  t.ingest({ source: "cue", kind: "cont", time: 52, elapsed: 8, duration: 30 });
  assert.equal(t.breaks.length, 1);
  assert.equal(t.breaks[0].start, 44);
  assert.equal(describe(t.at(60)), "in break, elapsed 16.0 s of 30.0 s");
});

test("DASH events: kind from the payload; out and in of one splice_event_id are one break", () => {
  const t = new BreakTimeline();
  t.ingest({ source: "dash-event", kind: null, id: "42", time: 10, duration: null, scte35: F.out });
  assert.equal(t.breaks[0].duration, 30); // from break_duration
  t.ingest({ source: "dash-event", kind: null, id: "43", time: 22.5, duration: null, scte35: F.in });
  assert.equal(t.breaks.length, 1, "the in (another Event@id, same splice_event_id) closes break 42");
  assert.equal(t.breaks[0].end, 22.5);
  assert.equal(t.ingest({ source: "dash-event", kind: null, id: "44", time: 30, scte35: F.cancel }), null);
  // Two breaks in two Periods stay two markers.
  t.ingest({ source: "dash-event", kind: null, id: "7", time: 200, scte35: F.poStart });
  assert.equal(t.breaks.length, 2);
  assert.equal(describe(t.at(205)), "in break, elapsed 5.0 s of 20.0 s");
});

test("the grant goes on once, after any CMCD query", () => {
  const q = "Policy=p&Signature=s&Key-Pair-Id=K";
  assert.equal(withGrant("https://cdn/news/1.m4s?CMCD=br%3D800", q), "https://cdn/news/1.m4s?CMCD=br%3D800&" + q);
  assert.equal(withGrant("https://cdn/news/1.m4s?" + q, q), "https://cdn/news/1.m4s?" + q);
  assert.equal(withGrant("https://cdn/news/1.m4s", ""), "https://cdn/news/1.m4s");
});

// A minimal XML -> {tagName, attributes, children} tree, the shape shaka hands over for an Event's content.
function tree(text) {
  const root = { tagName: "root", attributes: {}, children: [] };
  const stack = [root];
  for (const m of text.matchAll(/<(\/?)([\w:]+)([^>]*?)(\/?)>/g)) {
    if (m[1]) { stack.pop(); continue; }
    const attributes = {};
    for (const a of m[3].matchAll(/([\w:]+)="([^"]*)"/g)) attributes[a[1]] = a[2];
    const node = { tagName: m[2], attributes, children: [] };
    stack[stack.length - 1].children.push(node);
    if (!m[4]) stack.push(node);
  }
  return root;
}

test("SCTE 35 XML (urn:scte:scte35:2013:xml) tells out from in like the binary form", () => {
  const out = fromXml(tree(F.outXml));
  assert.deepEqual([out.kind, out.eventId, out.duration, out.cancel], ["out", "42", 30, false]);
  const end = fromXml(tree(F.poEndXml));
  assert.deepEqual([end.kind, end.eventId, end.pts], ["in", "7", 120]);
  assert.equal(fromXml(tree("<Signal/>")), null);
  const t = new BreakTimeline();
  t.ingest({ source: "dash-event", kind: out.kind, id: "42", time: 10, duration: out.duration, eventId: out.eventId });
  t.ingest({ source: "dash-event", kind: "in", id: "99", time: 15, eventId: "42" }); // an early return
  assert.equal(t.breaks.length, 1);
  assert.deepEqual([t.breaks[0].eventId, t.breaks[0].duration, t.breaks[0].end], ["42", 30, 15]);
});

test("an interstitial and the SCTE-35 DATERANGE of one break are one break", () => {
  const t = new BreakTimeline();
  t.ingest({ source: "daterange", kind: "out", id: "b1", time: 100, duration: 8, scte35: F.out });
  t.ingest({ source: "interstitial", kind: "out", id: "b1-ad", time: 100, duration: 8 });
  t.ingest({ source: "interstitial", kind: "in", id: "b1-ad", time: 104 });
  assert.equal(t.breaks.length, 1);
  assert.deepEqual(Array.from(t.breaks[0].sources).sort(), ["daterange", "interstitial"]);
  assert.equal(t.breaks[0].end, 104);
});
