"""The live update rules as a checked contract: compare each published version of a playlist or MPD with
its predecessor and name every change RFC 8216bis 6.2.1/6.2.2 or the DASH-IF MPD update rules forbid.

HLS media playlists (`hls_violations(prev, cur)`):
- EXT-X-MEDIA-SEQUENCE never goes back; segments leave only from the start and arrive only at the end;
- a segment listed in both versions keeps its URI, EXTINF, EXT-X-DISCONTINUITY, EXT-X-GAP, byte range,
  EXT-X-MAP and PROGRAM-DATE-TIME;
- EXT-X-DISCONTINUITY-SEQUENCE counts exactly the discontinuities that left;
- EXT-X-TARGETDURATION and EXT-X-VERSION never change; every EXTINF rounds to at most TARGETDURATION;
- once EXT-X-ENDLIST is published nothing changes; a live playlist has no EXT-X-PLAYLIST-TYPE;
- a DATERANGE stays while any date in its range maps to a listed segment, and an attribute it carries
  keeps its value in every tag with its ID;
- PROGRAM-DATE-TIME never goes back from one segment to the next.
DASH MPDs (`mpd_violations(prev, cur)`):
- availabilityStartTime and the MPD type stay, publishTime never goes back;
- a Period in both versions keeps its @start, AdaptationSet ids, timescale, media template and
  presentationTimeOffset; Periods leave only from the start and arrive only at the end;
- a segment in both versions keeps its @t/@d/number; segments leave from the start, arrive at the end;
- inside a Period the SegmentTimeline is contiguous (no hole, no overlap).
`Watcher` polls a channel's manifests, checks every new version against the last one and that every
listed URL answers 200 (`missing` counts those that do not).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import m3u8
from mpegdash.parser import MPEGDASHParser


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class _Seg:
    msn: int
    uri: str
    duration: float
    discontinuity: bool
    gap: bool
    byterange: str
    map_uri: str
    pdt: datetime | None


@dataclass
class _Playlist:
    text: str
    media_sequence: int
    dsn: int
    target: int
    version: int
    endlist: bool
    playlist_type: str | None
    segs: list[_Seg]
    dateranges: dict[str, list[dict[str, str]]]


_DATERANGE_RE = re.compile(r"^#EXT-X-DATERANGE:(.*)$", re.M)
_ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _parse_hls(text: str) -> _Playlist:
    pl = m3u8.loads(text)
    segs = []
    map_uri = ""
    for i, s in enumerate(pl.segments):
        if s.init_section is not None:
            map_uri = s.init_section.uri
        pdt = s.program_date_time
        segs.append(_Seg(pl.media_sequence + i, s.uri, round(float(s.duration), 3), bool(s.discontinuity),
                         bool(s.gap_tag), str(s.byterange or ""), map_uri, pdt))
    ranges: dict[str, list[dict[str, str]]] = {}
    for m in _DATERANGE_RE.finditer(text):
        attrs = {k: v.strip('"') for k, v in _ATTR_RE.findall(m.group(1))}
        ranges.setdefault(attrs.get("ID", ""), []).append(attrs)
    return _Playlist(text, int(pl.media_sequence or 0), int(pl.discontinuity_sequence or 0),
                     int(pl.target_duration or 0), int(pl.version or 1), bool(pl.is_endlist), pl.playlist_type,
                     segs, ranges)


def _range_end(tags: list[dict[str, str]]) -> datetime | None:
    """Where a DATERANGE's dates end (None: open, still running)."""
    start = _dt(tags[0]["START-DATE"]) if "START-DATE" in tags[0] else None
    for t in tags:
        if "END-DATE" in t:
            return _dt(t["END-DATE"])
        if "DURATION" in t and start is not None:
            return start + timedelta(seconds=float(t["DURATION"]))
    return None


def hls_violations(prev_text: str | None, cur_text: str, live: bool = True) -> list[str]:
    cur = _parse_hls(cur_text)
    out: list[str] = []
    for s in cur.segs:
        if math.floor(s.duration + 0.5) > cur.target:
            out.append(f"EXTINF {s.duration} of {s.uri} rounds above TARGETDURATION {cur.target}")
    for a, b in zip(cur.segs, cur.segs[1:], strict=False):
        if a.pdt and b.pdt and b.pdt < a.pdt + timedelta(seconds=a.duration) - timedelta(milliseconds=1) \
                and not b.discontinuity:
            out.append(f"PROGRAM-DATE-TIME goes back at {b.uri}")
        if a.pdt and b.pdt and b.pdt < a.pdt:
            out.append(f"PROGRAM-DATE-TIME goes back at {b.uri} ({b.pdt} < {a.pdt})")
    if live and cur.playlist_type is not None:
        out.append(f"a live playlist carries EXT-X-PLAYLIST-TYPE:{cur.playlist_type}")
    if prev_text is None:
        return out
    prev = _parse_hls(prev_text)
    if prev.endlist and cur_text != prev_text:
        out.append("the playlist changed after EXT-X-ENDLIST")
    if cur.media_sequence < prev.media_sequence:
        out.append(f"MEDIA-SEQUENCE went back: {prev.media_sequence} -> {cur.media_sequence}")
    if cur.target != prev.target:
        out.append(f"TARGETDURATION changed: {prev.target} -> {cur.target}")
    if cur.version != prev.version:
        out.append(f"EXT-X-VERSION changed: {prev.version} -> {cur.version}")
    before = {s.msn: s for s in prev.segs}
    for s in cur.segs:
        old = before.get(s.msn)
        if old is not None and old != s:
            diff = [f for f in ("uri", "duration", "discontinuity", "gap", "byterange", "map_uri", "pdt")
                    if getattr(old, f) != getattr(s, f)]
            changes = ", ".join(f"{f}: {getattr(old, f)} -> {getattr(s, f)}" for f in diff)
            out.append(f"segment {s.msn} changed ({changes})")
    prev_end = prev.media_sequence + len(prev.segs)
    cur_end = cur.media_sequence + len(cur.segs)
    if cur_end < prev_end:
        out.append(f"segments removed from the end: last {prev_end - 1} -> {cur_end - 1}")
    left = [s for s in prev.segs if s.msn < cur.media_sequence]
    expected_dsn = prev.dsn + sum(1 for s in left if s.discontinuity)
    if cur.segs and cur.dsn != expected_dsn:
        out.append(f"DISCONTINUITY-SEQUENCE {cur.dsn}, expected {expected_dsn} "
                   f"({prev.dsn} + the discontinuities that left)")
    first_pdt = cur.segs[0].pdt if cur.segs else None
    for rid, tags in prev.dateranges.items():
        if rid in cur.dateranges or first_pdt is None:
            continue
        end = _range_end(tags)
        if end is None or end > first_pdt:
            out.append(f"DATERANGE {rid} removed while its range still covers listed segments")
    for rid, tags in cur.dateranges.items():
        seen: dict[str, str] = {}
        for t in tags + prev.dateranges.get(rid, []):
            for k, v in t.items():
                if k in seen and seen[k] != v:
                    out.append(f"DATERANGE {rid}: {k} changed ({seen[k]} -> {v})")
                seen.setdefault(k, v)
    return out


@dataclass(frozen=True)
class _PeriodView:
    id: str
    start: str
    sets: dict[str, dict[str, Any]]  # AdaptationSet id -> {timescale, media, pto, segments: [(n, t, d)]}


def _parse_mpd(text: str) -> tuple[Any, list[_PeriodView]]:
    mpd = MPEGDASHParser.parse(text)
    periods = []
    for p in mpd.periods or []:
        sets: dict[str, dict[str, Any]] = {}
        for a in p.adaptation_sets or []:
            tmpl = a.segment_templates[0]
            segs = []
            n, t = int(tmpl.start_number) if tmpl.start_number is not None else 1, 0
            for s in (tmpl.segment_timelines[0].Ss if tmpl.segment_timelines else []):
                t = int(s.t) if s.t is not None else t
                for _ in range(int(s.r or 0) + 1):
                    segs.append((n, t, int(s.d)))
                    n, t = n + 1, t + int(s.d)
            sets[str(a.id)] = {"timescale": int(tmpl.timescale or 1), "media": tmpl.media,
                               "init": tmpl.initialization, "pto": int(tmpl.presentation_time_offset or 0),
                               "segments": segs}
        periods.append(_PeriodView(str(p.id), str(p.start), sets))
    return mpd, periods


def mpd_violations(prev_text: str | None, cur_text: str) -> list[str]:
    mpd, periods = _parse_mpd(cur_text)
    out: list[str] = []
    for p in periods:
        for aid, a in p.sets.items():
            for (n1, t1, d1), (n2, t2, _d2) in zip(a["segments"], a["segments"][1:], strict=False):
                if t2 != t1 + d1:
                    out.append(f"Period {p.id} set {aid}: {'hole' if t2 > t1 + d1 else 'overlap'} of "
                               f"{abs(t2 - t1 - d1)} ticks between segments {n1} and {n2}")
    if prev_text is None:
        return out
    old, old_periods = _parse_mpd(prev_text)
    if old.availability_start_time != mpd.availability_start_time:
        out.append(f"availabilityStartTime changed: {old.availability_start_time} -> {mpd.availability_start_time}")
    if old.type != mpd.type:
        out.append(f"MPD type changed: {old.type} -> {mpd.type}")
    if old.publish_time and mpd.publish_time and _dt(mpd.publish_time) < _dt(old.publish_time):
        out.append("publishTime went back")
    ids = [p.id for p in periods]
    old_ids = [p.id for p in old_periods]
    kept = [i for i in old_ids if i in ids]
    if kept != ids[: len(kept)] or kept != old_ids[len(old_ids) - len(kept):]:
        out.append(f"Periods were not only removed from the start and added at the end: {old_ids} -> {ids}")
    by_id = {p.id: p for p in periods}
    for op in old_periods:
        np = by_id.get(op.id)
        if np is None:
            continue
        if np.start != op.start:
            out.append(f"Period {op.id}: start changed {op.start} -> {np.start}")
        if set(np.sets) != set(op.sets):
            out.append(f"Period {op.id}: AdaptationSet ids changed {sorted(op.sets)} -> {sorted(np.sets)}")
        for aid, a in op.sets.items():
            b = np.sets.get(aid)
            if b is None:
                continue
            for k in ("timescale", "media", "init", "pto"):
                if a[k] != b[k]:
                    out.append(f"Period {op.id} set {aid}: {k} changed {a[k]} -> {b[k]}")
            old_segs = {n: (t, d) for n, t, d in a["segments"]}
            for n, t, d in b["segments"]:
                if n in old_segs and old_segs[n] != (t, d):
                    out.append(f"Period {op.id} set {aid}: segment {n} changed {old_segs[n]} -> {(t, d)}")
            if a["segments"] and b["segments"] and b["segments"][-1][0] < a["segments"][-1][0] \
                    and op.id == old_periods[-1].id:
                out.append(f"Period {op.id} set {aid}: segments removed from the end")
            if a["segments"] and b["segments"] and b["segments"][0][0] < a["segments"][0][0]:
                out.append(f"Period {op.id} set {aid}: a segment reappeared at the start")
    return out


def listed_urls(kind: str, text: str, base: str) -> list[str]:
    """Paths of every segment (and init) a manifest lists, relative to the channel root `base`."""
    if kind == "hls":
        pl = m3u8.loads(text)
        folder = base.rsplit("/", 1)[0]
        out = []
        for s in pl.segments:
            out.append(f"{folder}/{s.uri}")
            if s.init_section is not None:
                out.append(f"{folder}/{s.init_section.uri}")
        return sorted(set(out), key=out.index)
    _, periods = _parse_mpd(text)
    mpd = MPEGDASHParser.parse(text)
    out = []
    for p, view in zip(mpd.periods or [], periods, strict=True):
        for a in p.adaptation_sets or []:
            a_view = view.sets[str(a.id)]
            for r in a.representations or []:
                init = str(a_view["init"]).replace("$RepresentationID$", str(r.id))
                out.append(f"{base}/{init}")
                for n, _t, _d in a_view["segments"]:
                    out.append(f"{base}/{_number(str(a_view['media']), n).replace('$RepresentationID$', str(r.id))}")
    return out


def _number(template: str, n: int) -> str:
    def fill(m: re.Match[str]) -> str:
        return f"{n:0{int(m.group(1))}d}"

    return re.sub(r"\$Number%0(\d+)d\$", fill, template).replace("$Number$", str(n))


@dataclass
class Watcher:
    """Polls manifests of a channel; every new version is checked against its predecessor, every listed
    URL is checked once (`exists`, else a full `fetch`), and the wall time between two versions of each
    manifest is kept (`intervals`: a live playlist must get a new version within 1.5 x TARGETDURATION)."""

    fetch: Callable[[str], bytes | None]  # path -> body (None: 404)
    channel: str
    playlists: Iterable[str] = ("360p/live.m3u8", "360p/dvr.m3u8", "audio/live.m3u8", "audio/dvr.m3u8")
    check_urls: bool = True
    exists: Callable[[str], bool] | None = None  # path -> answers 200 (cheaper than fetching the body)
    clock: Callable[[], float] = time.time
    versions: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # path -> (at, seconds since last)
    _last: dict[str, str] = field(default_factory=dict)
    _changed_at: dict[str, float] = field(default_factory=dict)
    _seen_urls: set[str] = field(default_factory=set)

    def poll(self) -> None:
        for rel in [*self.playlists, "manifest.mpd"]:
            path = f"{self.channel}/{rel}"
            body = self.fetch(path)
            if body is None:
                continue
            text = body.decode()
            prev = self._last.get(path)
            if prev == text:
                continue
            now = self.clock()
            if path in self._changed_at:
                self.intervals.setdefault(path, []).append((now, now - self._changed_at[path]))
            self._changed_at[path] = now
            if rel.endswith(".mpd"):
                found = mpd_violations(prev, text)
                urls = listed_urls("dash", text, self.channel)
            else:
                found = hls_violations(prev, text, live=True)
                urls = listed_urls("hls", text, path)
            self.violations += [f"{rel} v{self.versions.get(path, 0) + 1}: {v}" for v in found]
            self.versions[path] = self.versions.get(path, 0) + 1
            self._last[path] = text
            if self.check_urls:
                for u in urls:
                    if u in self._seen_urls:
                        continue
                    self._seen_urls.add(u)
                    ok = self.exists(u) if self.exists is not None else self.fetch(u) is not None
                    if not ok:
                        self.missing.append(u)

    def last(self, rel: str) -> str | None:
        """The last version seen of a manifest (path relative to the channel)."""
        return self._last.get(f"{self.channel}/{rel}")

    def longest_wait(self, rel: str, outside: Iterable[tuple[float, float]] = ()) -> float:
        """The longest wall time between two versions of a manifest, leaving out waits that overlap one of
        the `outside` windows (e.g. while the channel was stopped)."""
        windows = list(outside)
        worst = 0.0
        for at, seconds in self.intervals.get(f"{self.channel}/{rel}", []):
            start = at - seconds
            if any(start < hi and at > lo for lo, hi in windows):
                continue
            worst = max(worst, seconds)
        return worst


# --------------------------------------------------------------------------- Low-Latency HLS

PART_WINDOW_TARGETS = 3  # parts are listed for the segments ending within 3 target durations of the end
_EPS = 0.002  # seconds: EXTINF is printed to the millisecond, EXT-X-PART durations to 10 us
# The part window is drawn on the video clock; an audio playlist's segments (whole AAC frames) end up to
# about one AAC frame off it.
_EDGE = 0.05
_LL_ONLY = ("#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:", "#EXT-X-RENDITION-REPORT:", "#EXT-X-SERVER-CONTROL:",
            "#EXT-X-PART-INF:", "#EXT-X-SKIP:")


@dataclass(frozen=True)
class _Part:
    uri: str
    duration: float
    independent: bool
    gap: bool


@dataclass
class _LLPlaylist:
    media_sequence: int
    target: int
    version: int
    endlist: bool
    server_control: dict[str, str]
    part_target: float | None
    skip: dict[str, str] | None
    segs: list[tuple[int, str, float, bool]]  # (msn, uri, EXTINF, discontinuity) of the listed complete segments
    parts: dict[int, list[_Part]]  # parent msn -> its listed parts, in order
    partial_msn: int  # the msn of the segment being written (its parts follow the last complete segment)
    partial_discontinuity: bool
    hints: list[dict[str, str]]
    reports: list[dict[str, str]]

    @property
    def end(self) -> float:
        """Seconds listed after the first listed segment: complete segments plus the parts being written."""
        return sum(d for _, _, d, _ in self.segs) + sum(p.duration for p in self.parts.get(self.partial_msn, ()))

    def ends_before_end(self) -> dict[int, float]:
        """msn -> how many seconds before the playlist's end that complete segment ends."""
        out: dict[int, float] = {}
        tail = sum(p.duration for p in self.parts.get(self.partial_msn, ()))
        for msn, _, d, _ in reversed(self.segs):
            out[msn] = tail
            tail += d
        return out

    def last_part(self) -> tuple[int, int]:
        """(parent msn, parts listed for it) of the newest listed part; (-1, 0) if none."""
        for msn in sorted(self.parts, reverse=True):
            if self.parts[msn]:
                return msn, len(self.parts[msn])
        return -1, 0


def _attrs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR_RE.findall(line.split(":", 1)[1])}


def _parse_ll(text: str) -> _LLPlaylist:
    ms = target = 0
    version = 1
    control: dict[str, str] = {}
    part_target: float | None = None
    skip: dict[str, str] | None = None
    segs: list[tuple[int, str, float, bool]] = []
    parts: dict[int, list[_Part]] = {}
    pending: list[_Part] = []
    hints: list[dict[str, str]] = []
    reports: list[dict[str, str]] = []
    extinf: float | None = None
    disc = endlist = False
    msn: int | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            ms = int(line.split(":")[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":")[1])
        elif line.startswith("#EXT-X-VERSION:"):
            version = int(line.split(":")[1])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            control = _attrs(line)
        elif line.startswith("#EXT-X-PART-INF:"):
            part_target = float(_attrs(line).get("PART-TARGET", "nan"))
        elif line.startswith("#EXT-X-SKIP:"):
            skip = _attrs(line)
        elif line.startswith("#EXT-X-PART:"):
            a = _attrs(line)
            pending.append(_Part(a.get("URI", ""), float(a.get("DURATION", "nan")), a.get("INDEPENDENT") == "YES",
                                 a.get("GAP") == "YES"))
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            hints.append(_attrs(line))
        elif line.startswith("#EXT-X-RENDITION-REPORT:"):
            reports.append(_attrs(line))
        elif line.startswith("#EXT-X-DISCONTINUITY") and not line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE"):
            disc = True
        elif line.startswith("#EXT-X-ENDLIST"):
            endlist = True
        elif line.startswith("#EXTINF:"):
            extinf = float(line.split(":")[1].split(",")[0])
        elif line and not line.startswith("#"):
            if msn is None:
                msn = ms + int((skip or {}).get("SKIPPED-SEGMENTS", 0))
            if pending:
                parts[msn] = pending
            segs.append((msn, line, float(extinf if extinf is not None else math.nan), disc))
            pending, extinf, disc, msn = [], None, False, msn + 1
    if msn is None:
        msn = ms + int((skip or {}).get("SKIPPED-SEGMENTS", 0))
    if pending:
        parts[msn] = pending
    return _LLPlaylist(ms, target, version, endlist, control, part_target, skip, segs, parts, msn, disc, hints,
                       reports)


def regular_view(ll_text: str) -> str:
    """The LL playlist as a regular client reads it: no LL tags and no segment being written (its tags
    follow the last complete segment). hls_violations applies to it unchanged."""
    lines = [ln for ln in ll_text.splitlines() if not ln.startswith(_LL_ONLY)]
    last_uri = max((i for i, ln in enumerate(lines) if ln and not ln.startswith("#")), default=-1)
    if last_uri < 0:
        head = [ln for ln in lines if not ln.startswith(("#EXT-X-PROGRAM-DATE-TIME", "#EXT-X-DATERANGE",
                                                          "#EXT-X-CUE", "#EXT-X-MAP", "#EXT-X-DISCONTINUITY:"))]
        return "\n".join(head) + "\n"
    tail = ["#EXT-X-ENDLIST"] if "#EXT-X-ENDLIST" in lines[last_uri + 1:] else []
    return "\n".join(lines[: last_uri + 1] + tail) + "\n"


def ll_violations(prev_text: str | None, cur_text: str, renditions: Iterable[str] = ()) -> list[str]:
    """What RFC 8216bis (4.4.3.7-8, 4.4.4.9, 4.4.5.1-2, 6.2.2, 6.2.5) and this origin's contract forbid in a
    full LL-HLS media playlist `cur_text`, and between it and the previous full version `prev_text`:
    - EXT-X-SERVER-CONTROL with CAN-BLOCK-RELOAD=YES, PART-HOLD-BACK >= 2 x PART-TARGET (and >= 3 x, as
      advised), CAN-SKIP-UNTIL >= 6 x TARGETDURATION; EXT-X-PART-INF when parts are listed;
    - every part at most PART-TARGET long and INDEPENDENT=YES (each starts on an IDR); a complete segment's
      parts add up to its EXTINF;
    - parts are listed for whole parent segments, for every segment ending within 3 target durations of
      the end that had them, and for none ending more than 3 target durations before the end;
    - one EXT-X-PRELOAD-HINT:TYPE=PART on a live playlist, naming a part not listed yet; the first part
      added in the next version is the hinted one (unless that part starts a discontinuity);
    - an EXT-X-RENDITION-REPORT for every other rendition in `renditions` (URIs as listed), none for itself,
      with a LAST-MSN within one segment of this playlist's edge;
    - between versions: a part keeps its URI, duration, INDEPENDENT and GAP; parts are only appended to
      the segment being written and never to a complete one; the newest part never goes back;
    - plus every RFC 8216bis 6.2.1/6.2.2 rule of `hls_violations` on the regular view of both versions.
    A Playlist Delta Update is checked against a full playlist by `delta_violations`."""
    cur = _parse_ll(cur_text)
    out = [f"regular view: {v}" for v in hls_violations(
        regular_view(prev_text) if prev_text is not None else None, regular_view(cur_text), live=True)]
    if cur.skip is not None:
        out.append("a full playlist carries EXT-X-SKIP")
    c = cur.server_control
    pt = cur.part_target
    if c.get("CAN-BLOCK-RELOAD") != "YES":
        out.append("EXT-X-SERVER-CONTROL lacks CAN-BLOCK-RELOAD=YES")
    if cur.parts and pt is None:
        out.append("EXT-X-PART without EXT-X-PART-INF")
    if pt is not None:
        hold = float(c.get("PART-HOLD-BACK", "nan"))
        if not hold >= 2 * pt - 1e-6:
            out.append(f"PART-HOLD-BACK {c.get('PART-HOLD-BACK')} is less than twice PART-TARGET {pt}")
        elif hold < 3 * pt - 1e-3:
            out.append(f"PART-HOLD-BACK {hold} is less than three PART-TARGETs ({pt})")
    if "CAN-SKIP-UNTIL" in c and float(c["CAN-SKIP-UNTIL"]) < 6 * cur.target - 1e-6:
        out.append(f"CAN-SKIP-UNTIL {c['CAN-SKIP-UNTIL']} is less than six target durations ({cur.target})")
    extinf = {msn: d for msn, _, d, _ in cur.segs}
    for msn, plist in cur.parts.items():
        for p in plist:
            if pt is not None and p.duration > pt + 1e-5:
                out.append(f"part {p.uri} lasts {p.duration} s, more than PART-TARGET {pt}")
            if not p.independent:
                out.append(f"part {p.uri} is not INDEPENDENT=YES")
        if msn in extinf and abs(sum(p.duration for p in plist) - extinf[msn]) > _EPS:
            out.append(f"the parts of segment {msn} add up to {sum(p.duration for p in plist):.5f} s, "
                       f"its EXTINF is {extinf[msn]}")
    before_end = cur.ends_before_end()
    window = PART_WINDOW_TARGETS * cur.target
    for msn, plist in cur.parts.items():
        if plist and before_end.get(msn, 0.0) > window + _EDGE:
            out.append(f"parts of segment {msn} listed though it ends {before_end[msn]:.3f} s "
                       f"(more than {PART_WINDOW_TARGETS} target durations) before the end")
    with_parts = sorted(m for m in cur.parts if m in extinf)
    if with_parts and any(m not in cur.parts for m in extinf if m > with_parts[0]):
        out.append(f"a segment after {with_parts[0]} has no parts while an older one has")
    listed = {p.uri for plist in cur.parts.values() for p in plist}
    part_hints = [h for h in cur.hints if h.get("TYPE") == "PART"]
    if not cur.endlist and pt is not None and len(part_hints) != 1:
        out.append(f"{len(part_hints)} EXT-X-PRELOAD-HINT:TYPE=PART on a live LL playlist (one expected)")
    for h in part_hints:
        if h.get("URI") in listed:
            out.append(f"EXT-X-PRELOAD-HINT names {h.get('URI')}, a part already listed")
    out += _report_violations(cur, list(renditions))
    if prev_text is None:
        return out
    prev = _parse_ll(prev_text)
    if prev.endlist:
        return out  # hls_violations flags any change after ENDLIST
    prev_extinf = {msn: d for msn, _, d, _ in prev.segs}
    for msn, old in prev.parts.items():
        new = cur.parts.get(msn)
        if new is None:
            still = before_end.get(msn)
            if still is not None and still < window - _EDGE and msn in extinf:
                out.append(f"parts of segment {msn} removed while it ends only {still:.3f} s before the end")
            continue
        if new[: len(old)] != old:
            out.append(f"parts of segment {msn} changed: {[p.uri for p in old]} -> {[p.uri for p in new]}")
        if len(new) > len(old) and msn in prev_extinf:
            out.append(f"parts added to segment {msn}, complete in the previous version")
    if cur.last_part() < prev.last_part() and cur.media_sequence <= prev.last_part()[0]:
        out.append(f"the newest part went back: {prev.last_part()} -> {cur.last_part()}")
    prev_hint = next((h.get("URI") for h in prev.hints if h.get("TYPE") == "PART"), None)
    added = _added_parts(prev, cur)
    if prev_hint and added and added[0][1].uri != prev_hint:
        msn = added[0][0]
        starts_disc = (msn == cur.partial_msn and cur.partial_discontinuity) or any(
            m == msn and d for m, _, _, d in cur.segs)
        if not (starts_disc and not prev.parts.get(msn)):
            out.append(f"the first part added is {added[0][1].uri}, the previous version hinted {prev_hint}")
    return out


def _added_parts(prev: _LLPlaylist, cur: _LLPlaylist) -> list[tuple[int, _Part]]:
    out = []
    for msn in sorted(cur.parts):
        if msn < prev.partial_msn:
            continue
        old = prev.parts.get(msn, []) if msn == prev.partial_msn else []
        out += [(msn, p) for p in cur.parts[msn][len(old):]]
    return out


def _report_violations(cur: _LLPlaylist, renditions: list[str]) -> list[str]:
    if not renditions:
        return []
    out = []
    uris = [r.get("URI", "") for r in cur.reports]
    for name in renditions:
        n = uris.count(name)
        if n != 1 and not cur.endlist:
            out.append(f"{n} EXT-X-RENDITION-REPORT for {name} (one expected)")
    for r in cur.reports:
        if r.get("URI") not in renditions:
            out.append(f"EXT-X-RENDITION-REPORT for {r.get('URI')}, not another rendition")
        if "LAST-MSN" not in r:
            out.append(f"EXT-X-RENDITION-REPORT for {r.get('URI')} without LAST-MSN")
            continue
        edge = cur.partial_msn if cur.parts.get(cur.partial_msn) else cur.partial_msn - 1
        if abs(int(r["LAST-MSN"]) - edge) > 1:
            out.append(f"EXT-X-RENDITION-REPORT for {r.get('URI')}: LAST-MSN {r['LAST-MSN']} is more than one "
                       f"segment from this playlist's edge {edge}")
    return out


def delta_violations(full_text: str, delta_text: str) -> list[str]:
    """A Playlist Delta Update (`_HLS_skip=YES|v2`) against the full playlist a client holds (of the same moment or
    older): can the client merge it? MEDIA-SEQUENCE never behind the full playlist's; every skipped segment is one
    the client has; what the delta still lists lasts at least CAN-SKIP-UNTIL (only segments beyond the Skip Boundary
    are skipped); EXT-X-VERSION 9 (10 with RECENTLY-REMOVED-DATERANGES); a segment in both is the same (URI, EXTINF)
    and so are the parts they both list."""
    full, delta = _parse_ll(full_text), _parse_ll(delta_text)
    out: list[str] = []
    if delta.skip is None:
        return ["no EXT-X-SKIP in the delta update"]
    until = float(delta.server_control.get("CAN-SKIP-UNTIL", "nan"))
    if math.isnan(until):
        out.append("a delta update for a playlist without CAN-SKIP-UNTIL")
    need = 10 if "RECENTLY-REMOVED-DATERANGES" in delta.skip else 9
    if delta.version < need:
        out.append(f"EXT-X-SKIP in EXT-X-VERSION {delta.version} (at least {need})")
    if delta.media_sequence < full.media_sequence:
        out.append(f"MEDIA-SEQUENCE {delta.media_sequence} in the delta, behind the full playlist's "
                   f"{full.media_sequence}")
    # The delta's segments are numbered from MEDIA-SEQUENCE + SKIPPED-SEGMENTS (_parse_ll): a miscount
    # shows as segments that differ from the full playlist's of the same number.
    skipped = int(delta.skip.get("SKIPPED-SEGMENTS", "-1"))
    if skipped < 0:
        out.append(f"SKIPPED-SEGMENTS={skipped}")
    held = {m: (u, d) for m, u, d, _ in full.segs}
    missing = [m for m in range(delta.media_sequence, delta.media_sequence + max(0, skipped)) if m not in held]
    if missing:
        out.append(f"the delta skips segments {missing[0]}..{missing[-1]}, not in the full playlist")
    if not math.isnan(until) and sum(d for _, _, d, _ in delta.segs) < until - _EPS:
        out.append(f"the delta lists {sum(d for _, _, d, _ in delta.segs):.3f} s, less than CAN-SKIP-UNTIL {until}")
    for m, u, d, _ in delta.segs:
        if m in held and held[m] != (u, d):
            out.append(f"segment {m} is {u} ({d}) in the delta, {held[m][0]} ({held[m][1]}) in the full playlist")
    for msn in set(full.parts) & set(delta.parts):
        x, y = full.parts[msn], delta.parts[msn]
        if x[: len(y)] != y[: len(x)]:
            out.append(f"the parts of segment {msn} differ between the delta and the full playlist")
    return out
