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
