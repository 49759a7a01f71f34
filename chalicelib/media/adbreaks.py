"""Placing ad breaks on segment boundaries, and choosing the SCTE-35 cues they carry.

A break is requested for a wall-clock time, but a player can only switch at a segment
boundary (every segment starts on an IDR), so the splice-out moves to the first segment that
starts at or after the requested time. The in-point is snapped the same way, from the snapped
out-point plus the planned duration (what `break_duration` + `auto_return` mean to a
downstream splicer), or from the operator's early return. Both HLS and DASH render from the
same `PlacedBreak`, so both dialects always agree on where a break is.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import ValidationError
from . import scte35
from .scte35 import Cue
from .timeline import AdBreak, Placement, Segment, Timeline

# PDTs come from float arithmetic upstream; a millisecond of slack keeps a break requested
# for exactly a segment's start on that segment instead of the next one.
_SNAP_SLACK = timedelta(milliseconds=1)


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


def _cues(b: AdBreak, out_media: float, in_media: float | None) -> tuple[Cue, Cue | None]:
    """Source breaks pass the encoder's cues through verbatim; API breaks get fresh ones."""
    if b.source == "source" and b.scte35_out:
        out = scte35.decode(b.scte35_out)
        cue_in = scte35.decode(b.scte35_in) if b.scte35_in and in_media is not None else None
        if cue_in is None and in_media is not None:
            cue_in = _api_in(b, in_media)
        return out, cue_in
    if b.kind == "time_signal":
        out = scte35.time_signal(out_media, "provider_po_start", b.duration, b.splice_event_id)
    elif b.kind == "splice_insert":
        out = scte35.splice_insert(b.splice_event_id, out_media, b.duration, True, True)
    else:
        raise ValidationError(f"ad break {b.id!r} has unknown kind {b.kind!r}")
    return out, (None if in_media is None else _api_in(b, in_media))


def _api_in(b: AdBreak, in_media: float) -> Cue:
    if b.kind == "time_signal":
        return scte35.time_signal(in_media, "provider_po_end", None, b.splice_event_id)
    return scte35.splice_insert(b.splice_event_id, in_media, None, False, False)


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
            )
        )
    return placed


@dataclass(frozen=True)
class _Point:
    number: int
    pdt: datetime
    media: float
    period: str = ""


def _in_point(segs: tuple[Segment, ...], pdts: list[datetime], b: AdBreak, out: _Point,
              p: Placement | None) -> _Point | None:
    if p is not None and p.in_seq is not None and p.in_pdt is not None and p.in_media is not None:
        return _Point(p.in_seq, p.in_pdt, p.in_media)
    if b.returned_at is not None:
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
    if not (last.program_date_time + _SNAP_SLACK < b.start <= end + _SNAP_SLACK):
        return None
    cue_out, _ = _cues(b, last.end, None)
    return PlacedBreak(b, last.number + 1, end, last.end, None, None, None, cue_out, None,
                       out_period=last.period, announced=True)
