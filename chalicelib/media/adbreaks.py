"""Placing ad breaks on segment boundaries, choosing the SCTE-35 cues they carry, and reading the
source's own cues.

A break is requested for a wall-clock time, but a player can only switch at a segment
boundary (every segment starts on an IDR), so the splice-out moves to the first segment that
starts at or after the requested time. The in-point is snapped the same way, from the snapped
out-point plus the planned duration (what `break_duration` + `auto_return` mean to a
downstream splicer), or from the operator's early return. Both HLS and DASH render from the
same `PlacedBreak`, so every dialect always agrees on where a break is.

Breaks from the source (in-band SCTE-35 in the MPEG-TS chunks, or the cue tags of an encoder's
own HLS) carry their splice point on the run's media clock (`AdBreak.media_time`): they snap by
media time within their run, which is exact even where program date time was re-anchored (a clock
step), and pass the encoder's binary cue through verbatim. `source_signal` turns one decoded
source cue into what it asks for (a splice-out, a return, a cancel) at a media time.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import ValidationError
from . import scte35
from .scte35 import PTS_WRAP, Cue
from .timeline import AdBreak, Placement, Segment, Timeline

# PDTs come from float arithmetic upstream; a millisecond of slack keeps a break requested
# for exactly a segment's start on that segment instead of the next one.
_SNAP_SLACK = timedelta(milliseconds=1)
_MEDIA_SLACK = 0.001

# --- dialects --------------------------------------------------------------------------------------

# HLS ad-marker dialects, named as MediaLive / MediaPackage name them.
HLS_DIALECTS = ("daterange", "elemental", "scte35_enhanced", "interstitials")
# What the channel setting `marker_style` meant before the dialects: "cue" was OATCLS + CUE-OUT /
# CUE-OUT-CONT (ElapsedTime, Duration) / CUE-IN, which is SCTE-35 enhanced minus EXT-X-ASSET and the
# cue on CONT; "both" added DATERANGE.
LEGACY_MARKER_STYLES: dict[str, tuple[str, ...]] = {
    "cue": ("scte35_enhanced",),
    "both": ("scte35_enhanced", "daterange"),
}
DASH_SCHEMES = {"binary": "urn:scte:scte35:2014:xml+bin", "xml": "urn:scte:scte35:2013:xml"}
DASH_PERIOD_TRIGGERS = ("none", "avails")
INTERSTITIAL_CLASS = "com.apple.hls.interstitial"


def hls_dialects(marker_style: str) -> tuple[str, ...]:
    """The dialects a `marker_style` value names (one or more, comma-separated; legacy names mapped)."""
    names: list[str] = []
    for part in str(marker_style).split(","):
        part = part.strip()
        if not part:
            continue
        expanded = LEGACY_MARKER_STYLES.get(part, (part,))
        for name in expanded:
            if name not in HLS_DIALECTS:
                raise ValidationError(
                    f"unknown ad marker dialect {part!r}; use one or more of {', '.join(HLS_DIALECTS)} "
                    f"(comma-separated), or the older {', '.join(LEGACY_MARKER_STYLES)}")
            if name not in names:
                names.append(name)
    if not names:
        raise ValidationError(f"marker_style is empty; use one or more of {', '.join(HLS_DIALECTS)}")
    return tuple(names)


def check_marker_style(value: str | list[str] | tuple[str, ...]) -> str:
    """A channel's `marker_style` as stored: validated, legacy names kept as given (they still mean
    what they meant), several dialects joined with commas."""
    parts = [value] if isinstance(value, str) else list(value)
    joined = ",".join(p.strip() for p in parts)
    hls_dialects(joined)
    if joined in LEGACY_MARKER_STYLES:
        return joined
    return ",".join(hls_dialects(joined))


@dataclass(frozen=True)
class PlacedBreak:
    ad_break: AdBreak
    out_seq: int  # number (HLS media sequence) of the first segment of the break
    out_pdt: datetime  # its program date time: DATERANGE START-DATE
    out_media: float  # its media time: the cue's splice PTS and the DASH Event time
    in_seq: int | None  # number of the first segment after the break; None while it is not listed
    in_pdt: datetime | None
    in_media: float | None
    cue_out: Cue
    cue_in: Cue | None  # None until the in-point segment exists
    out_period: str = ""  # the DASH Period holding the out-point (its Event lives there)
    announced: bool = False  # the out-point is the next segment, not published yet (announce only)
    in_period: str = ""  # the DASH Period holding the in-point (its in Event lives there)

    def placement(self, out_run: str = "", in_run: str = "") -> Placement:
        """What the packager keeps so the break can still be rendered once its out segment has left."""
        return Placement(self.out_seq, out_run, self.out_pdt, self.out_media, self.out_period,
                         self.in_seq, in_run, self.in_pdt, self.in_media)

    @property
    def id(self) -> str:
        return self.ad_break.id

    @property
    def planned_duration(self) -> float:
        return self.ad_break.duration

    @property
    def returned_early(self) -> bool:
        """Ended before its planned end (operator's return or the source's cue-in)."""
        b = self.ad_break
        return b.returned_at is not None or b.return_media is not None

    @property
    def actual_duration(self) -> float | None:
        """Media seconds between the out and in segments, once the in-point exists."""
        return None if self.in_media is None else self.in_media - self.out_media

    def contains(self, seq: int) -> bool:
        """Is segment `seq` inside the break (out segment included, in segment excluded)?"""
        return self.out_seq <= seq and (self.in_seq is None or seq < self.in_seq)


def _snap(segments: tuple[Segment, ...], pdts: list[datetime], when: datetime) -> int | None:
    # Binary search assumes PDTs ascend with seq. They do unless an encoder's clock steps
    # backwards at a discontinuity; then a break may snap to the first matching run, which
    # is still a segment boundary, just not necessarily the nearest one.
    i = bisect_left(pdts, when - _SNAP_SLACK)
    return i if i < len(segments) else None


def _snap_media(segments: tuple[Segment, ...], run: str, t: float) -> int | None:
    """Index of the first segment of `run` starting at or after media time `t` (None: none listed)."""
    for i, s in enumerate(segments):
        if s.run == run and s.start >= t - _MEDIA_SLACK:
            return i
    return None


def _cues(b: AdBreak, out_media: float, in_media: float | None) -> tuple[Cue, Cue | None]:
    """Source breaks pass the encoder's cues through verbatim; API breaks get fresh ones."""
    if b.source == "source" and b.scte35_out:
        out = scte35.decode(b.scte35_out)
        cue_in = scte35.decode(b.scte35_in) if b.scte35_in and in_media is not None else None
        if cue_in is None and in_media is not None:
            cue_in = _source_in(b, out, in_media)
        return out, cue_in
    if b.kind == "time_signal":
        out = scte35.time_signal(out_media, "provider_po_start", b.duration or None, b.splice_event_id)
    elif b.kind == "splice_insert":
        out = scte35.splice_insert(b.splice_event_id, out_media, b.duration or None, True, True)
    else:
        raise ValidationError(f"ad break {b.id!r} has unknown kind {b.kind!r}")
    return out, (None if in_media is None else _api_in(b, in_media))


def _api_in(b: AdBreak, in_media: float) -> Cue:
    if b.kind == "time_signal":
        return scte35.time_signal(in_media, "provider_po_end", None, b.splice_event_id)
    return scte35.splice_insert(b.splice_event_id, in_media, None, False, False)


def _source_in(b: AdBreak, out: Cue, in_media: float) -> Cue:
    """The return of a source break that sent none (it ended at its planned end, or the operator ended
    it): the partner of the source's out cue (its segmentation type + 1, same event id) at the in-point."""
    event_id = out.event_id if out.event_id is not None else b.splice_event_id
    if out.command == "time_signal":
        # The descriptor that opened this break: in a cue with several (a PO end, then the next PO start)
        # the one with the break's event id that starts an avail.
        opening = [s for s in out.segmentations if not s.cancelled and s.type_id in scte35.OUT_SEGMENTATION_TYPES]
        mine = [s for s in opening if s.event_id == b.splice_event_id] or opening
        if mine and mine[0].type_id is not None:
            end = scte35.segmentation_name(mine[0].type_id + 1)
            if end is not None:
                return scte35.time_signal(in_media, end, None, mine[0].event_id)
    return scte35.splice_insert(event_id, in_media, None, False, False)


def place_breaks(tl: Timeline) -> list[PlacedBreak]:
    """Every non-cancelled break whose out-point segment exists (or was published earlier and is
    remembered in `AdBreak.placement`), in out-point order.

    Breaks still in the future are left out, except the one whose out-point is the next segment to
    be published: it is *announced* (`announced=True`) with its START-DATE and out cue, so HLS
    shows it with the last pre-splice segment (RFC 8216bis 4.4.5.1.1). Early returns that came
    before the break began are dropped (nothing was ever out of network). When two breaks land on
    the same out segment the earlier-requested one wins; a break whose out-point falls inside an
    earlier break is dropped, since a splicer cannot be out of network twice.
    """
    segs = tl.segments
    if not segs or not tl.ad_breaks:
        return []
    pdts = [s.program_date_time for s in segs]
    first = pdts[0]
    # A break whose out-point segment is no longer stored and that was never placed has left the
    # timeline for good: snapping it would land it on the first stored segment, a fake splice whose
    # START-DATE moves every time the DVR window slides. (With nothing removed yet, an early break
    # starts at the first segment.)
    left_before = first - timedelta(seconds=tl.ladder.segment_duration) + _SNAP_SLACK
    trimmed = segs[0].number > 0
    placed: list[PlacedBreak] = []
    for b in sorted(tl.ad_breaks, key=lambda x: (x.start, x.id)):
        if b.cancelled:
            continue
        p = b.placement
        if p is not None:
            out = _Point(p.out_seq, p.out_pdt, p.out_media, p.out_period)
        else:
            on_media = b.media_time is not None and bool(b.run)
            if on_media:
                i, left = _media_out(segs, b)
                if left:
                    continue
            else:
                if (b.returned_at or b.start + timedelta(seconds=b.duration)) <= first:
                    continue  # over before anything still stored
                if trimmed and b.start <= left_before:
                    continue
                i = _snap(segs, pdts, b.start)
            if i is None:
                if tl.announce_breaks and not tl.ended:
                    ann = _announce(tl, b)
                    if ann is not None:
                        placed.append(ann)
                continue
            out = _Point(segs[i].number, segs[i].program_date_time, segs[i].start, segs[i].period)
        in_point = _in_point(segs, pdts, b, out, p)
        if in_point is None and b.returned_at is not None and b.returned_at <= out.pdt:
            continue
        if in_point is None and b.return_media is not None and b.return_media <= out.media + _MEDIA_SLACK:
            continue
        in_point = _closed_at_stretch_end(tl, out, in_point, p)
        if placed and placed[-1].contains(out.number) and not placed[-1].announced:
            continue
        in_media = in_point.media if in_point is not None else None
        cue_out, cue_in = _cues(b, out.media, in_media)
        placed.append(
            PlacedBreak(
                ad_break=b,
                out_seq=out.number,
                out_pdt=out.pdt,
                out_media=out.media,
                in_seq=in_point.number if in_point is not None else None,
                in_pdt=in_point.pdt if in_point is not None else None,
                in_media=in_media,
                cue_out=cue_out,
                cue_in=cue_in,
                out_period=out.period,
                in_period=in_point.period if in_point is not None else "",
            )
        )
    return placed


def _closed_at_stretch_end(tl: Timeline, out: _Point, in_point: _Point | None,
                           p: Placement | None) -> _Point | None:
    """A break cannot outlive the run it started in: once that run is over (a later run is listed, or
    the event ended) a break still out of network at its last segment, or whose in-point would land in
    a later run, returns where the run's last segment ends. That is the in-point every rendering closes
    it at: HLS CUE-IN / DATERANGE END-DATE on the next run's first segment or, at the very end, before
    EXT-X-ENDLIST; DASH the out Event's duration, which then ends inside its Period. The point depends
    only on the run's last segment, so every later version (and the run's VOD) renders the same one."""
    segs = tl.segments
    run = next((s.run for s in segs if s.number == out.number), p.out_run if p is not None else None)
    if run is None:
        return in_point
    last_i = next((i for i in range(len(segs) - 1, -1, -1) if segs[i].run == run), None)
    if last_i is None:
        if in_point is not None and p is not None and p.in_run and p.in_run != p.out_run:
            # Closed where its run ended and that run has left: the in-point is not the next run's
            # splice (no in-cue Event in that run's Period).
            return _Point(in_point.number, in_point.pdt, in_point.media, p.out_period)
        return in_point
    last = segs[last_i]
    if last.number < out.number or not (tl.ended or last_i + 1 < len(segs)):
        return in_point  # the run is still growing (or its out segment is the next one)
    if in_point is not None and in_point.number <= last.number:
        return in_point  # it returns inside the run
    return _Point(last.number + 1, last.program_date_time + timedelta(seconds=last.duration), last.end,
                  last.period)


def _media_out(segs: tuple[Segment, ...], b: AdBreak) -> tuple[int | None, bool]:
    """(index of the out segment, or None while it is not listed; True when the break has left the
    stored segments for good and must not be placed)."""
    assert b.media_time is not None
    mine = [s for s in segs if s.run == b.run]
    if not mine:
        # Its run is not listed: an older run that left the window, or one not listed yet.
        return None, _run_number(b.run) < _run_number(segs[-1].run)
    end = b.return_media if b.return_media is not None else (b.media_time + b.duration if b.duration > 0 else None)
    if end is not None and end <= mine[0].start + _MEDIA_SLACK:
        return None, True  # over before anything of its run still stored
    if mine[0] is segs[0] and segs[0].number > 0 and b.media_time <= mine[0].start - mine[0].duration + _MEDIA_SLACK:
        return None, True  # its out segment was trimmed before the break was ever placed
    return _snap_media(segs, b.run, b.media_time), False


def _run_number(run: str) -> int:
    digits = run[1:] if run[:1] == "r" else run
    return int(digits) if digits.isdigit() else 0


@dataclass(frozen=True)
class _Point:
    number: int
    pdt: datetime
    media: float
    period: str = ""


def _in_point(segs: tuple[Segment, ...], pdts: list[datetime], b: AdBreak, out: _Point,
              p: Placement | None) -> _Point | None:
    if p is not None and p.in_seq is not None and p.in_pdt is not None and p.in_media is not None:
        period = next((s.period for s in segs if s.number == p.in_seq), "")
        return _Point(p.in_seq, p.in_pdt, p.in_media, period)
    if b.media_time is not None and b.run and (b.return_media is not None or b.returned_at is None):
        if b.return_media is not None:
            if b.return_media <= out.media + _MEDIA_SLACK:
                return None
            j = _snap_media(segs, b.run, b.return_media)
        elif b.duration > 0:
            j = _snap_media(segs, b.run, out.media + b.duration)
        else:
            return None  # open-ended (no duration in the cue): until the source's return
    elif b.returned_at is not None:
        if b.returned_at <= out.pdt:
            return None
        j = _snap(segs, pdts, b.returned_at)
    else:
        j = _snap(segs, pdts, out.pdt + timedelta(seconds=b.duration))
    numbers = [s.number for s in segs]
    if j is not None and segs[j].number <= out.number:
        k = bisect_left(numbers, out.number + 1)
        j = k if k < len(segs) else None
    if j is None:
        return None
    return _Point(segs[j].number, segs[j].program_date_time, segs[j].start, segs[j].period)


def _announce(tl: Timeline, b: AdBreak) -> PlacedBreak | None:
    """A break that starts with the next segment (not published yet): its START-DATE is where the last
    listed segment ends, so it can be published now and never change when the segment arrives."""
    last = tl.segments[-1]
    end = last.program_date_time + timedelta(seconds=last.duration)
    if b.media_time is not None and b.run:
        if last.run != b.run or not (last.start + _MEDIA_SLACK < b.media_time <= last.end + _MEDIA_SLACK):
            return None
    elif not (last.program_date_time + _SNAP_SLACK < b.start <= end + _SNAP_SLACK):
        return None
    cue_out, _ = _cues(b, last.end, None)
    return PlacedBreak(b, last.number + 1, end, last.end, None, None, None, cue_out, None,
                       out_period=last.period, announced=True)


# --- cues from the source --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSignal:
    """What one cue from the source asks for, on the run's media clock."""

    action: str  # "out" (splice-out / avail start), "in" (return / avail end), "cancel", "skip"
    cue: Cue
    event_id: int
    media: float  # media seconds of the splice point on the run's clock
    duration: float | None  # planned length from the cue (break_duration / segmentation_duration)
    reason: str = ""  # for "skip": why nothing happens


def _signed33(ticks: int) -> int:
    """A 33-bit PTS difference as the nearest signed value (a wrap between the two is one step)."""
    d = ticks % PTS_WRAP
    return d - PTS_WRAP if d >= PTS_WRAP // 2 else d


def splice_media(cue: Cue, position: int | None, src_start: int, media_start: int) -> float:
    """Where a source cue splices, in media seconds of the run: its splice PTS (pts_adjustment and the
    33-bit wrap applied by `scte35.decode`), or for an immediate splice the cue's own position in the
    stream, mapped through the chunk's first frame (source PTS `src_start` sits at `media_start`, both
    90 kHz ticks)."""
    at = cue.pts_ticks if cue.pts_ticks is not None and not cue.immediate else position
    if at is None:
        at = src_start
    return (media_start + _signed33(at - src_start)) / scte35.TICKS_PER_SECOND


def source_signal(cue: Cue, *, position: int | None, src_start: int, media_start: int,
                  scte_filter: tuple[str, ...] = scte35.DEFAULT_SCTE_FILTER) -> SourceSignal:
    """Classify a decoded source cue against the channel's SCTE filter (MediaPackage's ScteFilter)."""
    event_id = cue.event_id if cue.event_id is not None else 0
    media = splice_media(cue, position, src_start, media_start)
    kind = cue.filter_type
    if cue.command not in ("splice_insert", "time_signal"):
        return SourceSignal("skip", cue, event_id, media, None, f"{cue.command} carries no avail")
    if cue.cancelled:  # a cancelled segmentation descriptor carries no type: the event id names the break
        return SourceSignal("cancel", cue, event_id, media, None)
    if kind is None:
        what = (f"segmentation type 0x{cue.segmentation_type_id:02x}" if cue.segmentation_type_id is not None
                else "a time_signal without a segmentation descriptor")
        return SourceSignal("skip", cue, event_id, media, None, f"{what} is not an avail")
    if kind not in scte_filter:
        return SourceSignal("skip", cue, event_id, media, None, f"{kind} is not in the channel's scte_filter")
    if cue.command == "splice_insert":
        action = "out" if cue.out_of_network else "in"
    else:
        action = "out" if cue.starts_avail else "in"
    return SourceSignal(action, cue, event_id, media, cue.duration if action == "out" else None)


_ORDER = {"cancel": 0, "in": 1, "out": 2}


def source_signals(cue: Cue, *, position: int | None, src_start: int, media_start: int,
                   scte_filter: tuple[str, ...] = scte35.DEFAULT_SCTE_FILTER) -> tuple[SourceSignal, ...]:
    """Every signal of a source cue. A time_signal may carry several segmentation descriptors (a PO end
    and the next PO start at the same splice time, an ad start nested in a PO start): each one is
    classified against the filter; cancels and ends come first (the avail they close ends where the
    next begins), and at most one start opens a break: the first the filter lets through (two avails
    opening at one splice point are one break to a downstream; CUE-OUT cannot nest)."""
    if cue.command != "time_signal" or len(cue.segmentations) < 2:
        return (source_signal(cue, position=position, src_start=src_start, media_start=media_start,
                              scte_filter=scte_filter),)
    sigs = [source_signal(cue.for_segmentation(s), position=position, src_start=src_start,
                          media_start=media_start, scte_filter=scte_filter) for s in cue.segmentations]
    acting = [s for s in sigs if s.action != "skip"]
    if not acting:
        return (sigs[0],)
    outs = [s for s in acting if s.action == "out"][:1]
    return tuple(sorted([s for s in acting if s.action != "out"], key=lambda s: _ORDER[s.action]) + outs)
