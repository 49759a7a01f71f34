"""Reading the encoder's own HLS playlist: segments plus the ad cues it carries.

Encoders signal breaks in several dialects, all of which we accept (parsed by `m3u8`):

- Elemental / AWS style:  #EXT-X-CUE-OUT:DURATION=30 ... #EXT-X-CUE-OUT-CONT ... #EXT-X-CUE-IN
- Adobe / Anvato style:   #EXT-OATCLS-SCTE35:<base64> before #EXT-X-CUE-OUT:30
- RFC 8216 DATERANGE:     #EXT-X-DATERANGE:ID=..,SCTE35-OUT=0x..  /  ..,SCTE35-IN=0x..
- Apple's older tag:      #EXT-X-SCTE35:CUE="<base64>" (read with a custom tag hook)

The result is a list of `AdBreak(source="source")` records carrying the encoder's binary cue
verbatim, so the packager passes it through instead of inventing a new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import m3u8
from m3u8 import parser as m3u8_parser

from ..errors import ValidationError
from . import scte35
from .timeline import AdBreak


@dataclass(frozen=True)
class SourceSegment:
    seq: int
    uri: str
    duration: float
    program_date_time: datetime | None
    discontinuity: bool = False
    cue_tags: tuple[str, ...] = ()  # names of the cue tags attached to this segment


@dataclass(frozen=True)
class BreakPoints:
    """Where a break of the playlist sits in its segments (for placing it on our media clock)."""

    out_seq: int  # media sequence number of the segment the out tag is attached to
    out_offset: float  # seconds from that segment's start to the splice (DATERANGE START-DATE; < 0 mid-break)
    in_seq: int | None  # the segment the in tag is attached to (None: still out at the playlist's end)


@dataclass(frozen=True)
class SourcePlaylist:
    media_sequence: int
    target_duration: int | None
    segments: tuple[SourceSegment, ...]
    breaks: tuple[AdBreak, ...]
    ended: bool
    points: tuple[BreakPoints, ...] = ()  # parallel to `breaks`


_SCTE35_TAG = "#EXT-X-SCTE35:"
_CUE_ATTR = re.compile(r'CUE="?([^",]+)"?', re.IGNORECASE)


def _custom_tags(line: str, lineno: int, data: dict[str, Any], state: dict[str, Any]) -> bool:
    """m3u8 hook: remember #EXT-X-SCTE35 (unknown to m3u8) on the segment it precedes."""
    if line.startswith(_SCTE35_TAG):
        m = _CUE_ATTR.search(line[len(_SCTE35_TAG) :])
        if m:
            m3u8_parser.save_segment_custom_value(state, "ext_x_scte35", m.group(1))
        return True
    return False


@dataclass
class _Open:
    start: datetime
    seq: int
    duration: float | None
    cue: scte35.Cue | None
    dr_id: str | None = None
    offset: float = 0.0


def _cue(data: str | None) -> scte35.Cue | None:
    if not data:
        return None
    try:
        return scte35.decode(data)
    except ValidationError:
        return None  # an undecodable cue still marks a break; we just cannot pass it through


def _duration(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _parse_date(value: str) -> datetime | None:
    try:
        d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def parse_source_playlist(text: str, base_pdt: datetime | None = None) -> SourcePlaylist:
    """Parse an encoder media playlist; `base_pdt` dates the first segment if it has no PDT."""
    if not isinstance(text, str) or not text.lstrip().startswith("#EXTM3U"):
        raise ValidationError("source playlist must be HLS text starting with #EXTM3U")
    try:
        pl = m3u8.loads(text, custom_tags_parser=_custom_tags)
    except Exception as exc:  # m3u8 raises ParseError/ValueError on malformed attribute lists
        raise ValidationError(f"malformed source playlist: {exc}") from None
    if pl.is_variant:
        raise ValidationError("expected a media playlist, got a master (variant) playlist")

    seq0 = pl.media_sequence or 0
    pdt = base_pdt
    segments: list[SourceSegment] = []
    breaks: list[AdBreak] = []
    points: list[BreakPoints] = []
    open_: _Open | None = None
    counter = 0

    def close(at: datetime, seq: int, cue_in: scte35.Cue | None) -> None:
        nonlocal open_
        if open_ is None:
            return
        breaks.append(_make_break(open_, at, cue_in, counter))
        points.append(BreakPoints(open_.seq, open_.offset, seq))
        open_ = None

    for i, seg in enumerate(pl.segments):
        seq = seq0 + i
        if seg.current_program_date_time is not None:
            pdt = seg.current_program_date_time
            if pdt.tzinfo is None:
                pdt = pdt.replace(tzinfo=UTC)
        elif seg.program_date_time is not None:
            pdt = seg.program_date_time
        tags: list[str] = []
        # In-points first: a CUE-IN / SCTE35-IN applies before this segment.
        cue_in_seen = bool(seg.cue_in)
        for dr in seg.dateranges or []:
            if dr.scte35_in:
                tags.append("EXT-X-DATERANGE:SCTE35-IN")
                if open_ is not None and pdt is not None:
                    close(pdt, seq, _cue(dr.scte35_in))
        if cue_in_seen:
            tags.append("EXT-X-CUE-IN")
            if open_ is not None and pdt is not None:
                back = _cue(seg.oatcls_scte35)  # SCTE-35 enhanced: the in-cue on EXT-OATCLS-SCTE35
                close(pdt, seq, back if back is not None and not back.is_out else None)
        # Out-points.
        for dr in seg.dateranges or []:
            if dr.scte35_out:
                tags.append("EXT-X-DATERANGE:SCTE35-OUT")
                start = _parse_date(dr.start_date) if dr.start_date else pdt
                if open_ is None and start is not None:
                    cue = _cue(dr.scte35_out)
                    dur = _duration(dr.planned_duration) or _duration(dr.duration)
                    offset = (start - pdt).total_seconds() if pdt is not None else 0.0
                    open_ = _Open(start, seq, dur if dur is not None else (cue.duration if cue else None),
                                  cue, dr.id, offset)
                    counter += 1
        custom = (seg.custom_parser_values or {}).get("ext_x_scte35")
        if seg.cue_out_start or custom:
            data = seg.oatcls_scte35 or seg.scte35 or custom
            cue = _cue(data)
            if seg.cue_out_start:
                tags.append("EXT-X-CUE-OUT")
            if seg.oatcls_scte35:
                tags.append("EXT-OATCLS-SCTE35")
            if custom:
                tags.append("EXT-X-SCTE35")
            if cue is not None and not cue.is_out and open_ is not None and pdt is not None:
                close(pdt, seq, cue)  # an #EXT-X-SCTE35 carrying the return cue
            elif open_ is None and pdt is not None and (seg.cue_out_start or (cue and cue.is_out)):
                dur = _duration(seg.scte35_duration)
                open_ = _Open(pdt, seq, dur if dur is not None else (cue.duration if cue else None), cue)
                counter += 1
        elif seg.cue_out:
            tags.append("EXT-X-CUE-OUT-CONT")
            if open_ is None and pdt is not None:
                # Joined mid-break: the out-point was before this playlist's window.
                elapsed = _duration(seg.scte35_elapsedtime) or 0.0
                dur = _duration(seg.scte35_duration)
                open_ = _Open(pdt - timedelta(seconds=elapsed), seq, dur, _cue(seg.scte35), offset=-elapsed)
                counter += 1
        duration = float(seg.duration or 0.0)
        segments.append(
            SourceSegment(
                seq=seq,
                uri=seg.uri or "",
                duration=duration,
                program_date_time=pdt,
                discontinuity=bool(seg.discontinuity),
                cue_tags=tuple(tags),
            )
        )
        if pdt is not None:
            pdt = pdt + timedelta(seconds=duration)

    if open_ is not None:  # still out of network at the end of the playlist
        breaks.append(_make_break(open_, None, None, counter))
        points.append(BreakPoints(open_.seq, open_.offset, None))
    return SourcePlaylist(
        media_sequence=seq0,
        target_duration=pl.target_duration,
        segments=tuple(segments),
        breaks=tuple(breaks),
        ended=bool(pl.is_endlist),
        points=tuple(points),
    )


def _make_break(o: _Open, in_at: datetime | None, cue_in: scte35.Cue | None, n: int) -> AdBreak:
    """An AdBreak whose id is stable across re-reads of the same playlist (keyed on its start)."""
    event_id = o.cue.event_id if o.cue is not None and o.cue.event_id is not None else None
    stamp = o.start.astimezone(UTC).strftime("%Y%m%dt%H%M%S%f")
    brk_id = f"src-{stamp}" if event_id is None else f"src-{event_id}-{stamp}"
    planned = o.duration
    if planned is None:
        planned = (in_at - o.start).total_seconds() if in_at is not None else 0.0
    return AdBreak(
        id=brk_id,
        splice_event_id=event_id if event_id is not None else (n & 0xFFFFFFFF),
        start=o.start,
        duration=planned,
        kind=o.cue.command if o.cue is not None and o.cue.command == "time_signal" else "splice_insert",
        returned_at=in_at,
        source="source",
        scte35_out=o.cue.base64 if o.cue is not None else None,
        scte35_in=cue_in.base64 if cue_in is not None else None,
    )
