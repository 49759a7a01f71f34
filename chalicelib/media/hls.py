"""HLS (RFC 8216) rendering: master playlist and per-rendition media playlists.

Pure: a `Timeline` in, playlist text out. Layout at the channel root on the origin:

    master.m3u8            variants -> {rendition}/live.m3u8
    dvr.m3u8               variants -> {rendition}/dvr.m3u8
    {rendition}/live.m3u8  sliding live window (tl.live_window seconds)
    {rendition}/dvr.m3u8   DVR window (tl.dvr_window seconds)
    {rendition}/init.mp4, {rendition}/{seq:08d}.m4s   (or .ts for ladder.container == "ts")

Because segment URIs are relative to the rendition folder, the per-segment text is identical
in every rendition's playlist and in both windows. `render_all` formats it once and slices it,
which is what keeps a 2-hour DVR channel with five renditions inside a few milliseconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import ValidationError
from .adbreaks import PlacedBreak, place_breaks
from .ladder import Ladder
from .timeline import (
    Segment,
    Timeline,
    discontinuity_sequence,
    published_counts,
    target_duration,
    window_of,
)

MASTER = "master.m3u8"
DVR_MASTER = "dvr.m3u8"
INIT = "init.mp4"
AUDIO_GROUP = "aud"
WINDOWS = ("live", "dvr")
MARKER_STYLES = ("cue", "daterange", "both")

# Bytes the container adds on top of the elementary-stream bitrate: moof/mdat boxes for
# CMAF (~2-3 % at these segment sizes), 188-byte packets + PES headers + PAT/PMT for TS.
CONTAINER_OVERHEAD = {"cmaf": 0.03, "ts": 0.10}


def master_name(window: str = "live") -> str:
    """File name of the master playlist whose variants point at `{rendition}/{window}.m3u8`."""
    _check_window(window)
    return MASTER if window == "live" else DVR_MASTER


def media_path(rendition: str, window: str = "live") -> str:
    """Media playlist path relative to the channel root, e.g. `360p/live.m3u8`."""
    _check_window(window)
    return f"{rendition}/{window}.m3u8"


def segment_name(seq: int, container: str = "cmaf") -> str:
    """Segment file name relative to its rendition folder (what the transcoder writes)."""
    return f"{seq:08d}.ts" if container == "ts" else f"{seq:08d}.m4s"


def variant_bandwidth(ladder: Ladder, rendition: str) -> tuple[int, int]:
    """(BANDWIDTH, AVERAGE-BANDWIDTH) of a variant: video + the audio group, with container overhead.

    Peak comes from the VBV max rate the encoder is held to, average from its target
    bitrate, so the master never advertises less than the encoder may produce.
    """
    v = ladder.rendition(rendition)
    k = 1.0 + CONTAINER_OVERHEAD.get(ladder.container, 0.10)
    return (
        math.ceil((v.max_bitrate + ladder.audio.bitrate) * k),
        math.ceil((v.bitrate + ladder.audio.bitrate) * k),
    )


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValidationError(f"unknown playlist window {window!r}; use 'live' or 'dvr'")


def format_pdt(t: datetime) -> str:
    """ISO-8601 with milliseconds and `Z`: what EXT-X-PROGRAM-DATE-TIME and DATERANGE carry."""
    if t.tzinfo is None:
        raise ValidationError(f"program date time {t!r} must be timezone-aware")
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return t.isoformat(timespec="milliseconds")[:-6] + "Z"


# The packager re-renders a channel every segment, and all but one of the segments are the
# same as last time: memoising their PDT text (the costliest per-segment step) makes a
# steady-state render of a 2-hour DVR window about twice as fast. Bounded, then reset.
_PDT_MEMO: dict[datetime, str] = {}
_PDT_MEMO_MAX = 50_000


def _pdt_texts(segs: tuple[Segment, ...]) -> list[str]:
    memo = _PDT_MEMO
    if len(memo) > _PDT_MEMO_MAX:
        memo.clear()
    out = []
    for s in segs:
        t = s.program_date_time
        text = memo.get(t)
        if text is None:
            text = memo[t] = format_pdt(t)
        out.append(text)
    return out


def render_master(tl: Timeline, window: str = "live") -> str:
    """Master playlist: one variant per video rendition, all sharing the audio group."""
    _check_window(window)
    ladder = tl.ladder
    fps = ladder.frame_rate
    audio = ladder.audio
    version = 6 if ladder.container == "cmaf" else 4
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{audio.name}",'
        f'LANGUAGE="{audio.language}",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio.channels}",'
        f'URI="{media_path(audio.name, window)}"',
    ]
    for v in ladder.video:
        peak, avg = variant_bandwidth(ladder, v.name)
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},"
            f'CODECS="{v.codecs(fps)},{audio.codecs}",RESOLUTION={v.width}x{v.height},'
            f'FRAME-RATE={float(fps):.3f},AUDIO="{AUDIO_GROUP}"'
        )
        lines.append(media_path(v.name, window))
    return "\n".join(lines) + "\n"


@dataclass
class Prepared:
    """Everything shared by the playlists of one timeline, computed once."""

    target: int
    segments: tuple[Segment, ...]  # the contiguous run published in at least one rendition
    parts: list[str]  # per-segment text, parallel to `segments`
    prefix: dict[str, int]  # rendition -> how many of `segments` it may list
    breaks: list[PlacedBreak]
    daterange_out: dict[str, str]  # break id -> its OUT DATERANGE line (re-used at window top)
    discontinuities_before: int  # tl.discontinuities_before
    disc_at: list[int]  # indices in `segments` of segments with a discontinuity (ascending)
    gap_at: list[int]  # indices in `segments` of GAP segments (ascending)
    windows: dict[tuple[int, float], int]  # (available count, seconds) -> window start index
    bodies: dict[tuple[int, int], str] = field(default_factory=dict)  # (start, end) -> joined parts

    def window_start(self, count: int, seconds: float) -> int:
        """Index in `segments` where the window over the first `count` segments starts."""
        key = (count, seconds)
        start = self.windows.get(key)
        if start is None:
            start = self.windows[key] = count - len(window_of(self.segments[:count], seconds, self.target))
        return start


def _prepare(tl: Timeline) -> Prepared:
    if tl.marker_style not in MARKER_STYLES:
        raise ValidationError(f"unknown marker style {tl.marker_style!r}; use one of {MARKER_STYLES}")
    prefix = published_counts(tl)
    segs = tl.segments[: max(prefix.values(), default=0)]
    breaks = place_breaks(tl)
    cue_style = tl.marker_style in ("cue", "both")
    dr_style = tl.marker_style in ("daterange", "both")
    first = segs[0].seq if segs else 0
    n = len(segs)
    tags: dict[int, list[str]] = {}  # index into segs -> marker lines before that segment
    daterange_out: dict[str, str] = {}
    pdt_text = _pdt_texts(segs)
    for b in breaks:
        oi = b.out_seq - first
        ii = (b.in_seq - first) if b.in_seq is not None else n
        planned = b.planned_duration
        start_date = format_pdt(b.out_pdt)
        if dr_style:
            line = (
                f'#EXT-X-DATERANGE:ID="{b.id}",START-DATE="{start_date}",'
                f"PLANNED-DURATION={planned:.3f},SCTE35-OUT={b.cue_out.hex}\n"
            )
            daterange_out[b.id] = line
            if oi < n:
                tags.setdefault(oi, []).append(line)
        if cue_style and oi < n:
            tags.setdefault(oi, []).append(
                f"#EXT-OATCLS-SCTE35:{b.cue_out.base64}\n#EXT-X-CUE-OUT:DURATION={planned:.3f}\n"
            )
            out_start = segs[oi].start
            for k in range(oi + 1, min(ii, n)):
                tags.setdefault(k, []).append(
                    f"#EXT-X-CUE-OUT-CONT:ElapsedTime={segs[k].start - out_start:.3f},"
                    f"Duration={planned:.3f}\n"
                )
        if ii < n and b.in_pdt is not None:
            if cue_style:
                tags.setdefault(ii, []).append("#EXT-X-CUE-IN\n")
            if dr_style and b.cue_in is not None:
                dur = (b.in_pdt - b.out_pdt).total_seconds()
                tags.setdefault(ii, []).append(
                    f'#EXT-X-DATERANGE:ID="{b.id}",START-DATE="{start_date}",'
                    f'END-DATE="{format_pdt(b.in_pdt)}",DURATION={dur:.3f},SCTE35-IN={b.cue_in.hex}\n'
                )
    ext = ".ts" if tl.ladder.container == "ts" else ".m4s"
    parts: list[str] = []
    append = parts.append
    disc_at: list[int] = []  # indices of segments carrying EXT-X-DISCONTINUITY
    gap_at: list[int] = []  # indices of GAP segments
    extinf: dict[float, str] = {}  # a channel has a handful of distinct durations
    # This loop is the renderer's hot path (once per segment of the DVR window): the common
    # segment takes the short branch, with its PDT and EXTINF text looked up, not formatted.
    for i, (s, pdt) in enumerate(zip(segs, pdt_text, strict=True)):
        d = s.duration
        inf = extinf.get(d)
        if inf is None:
            inf = extinf[d] = f"#EXTINF:{d:.3f},\n"
        marks = tags.get(i)
        if s.discontinuity or s.gap or marks:
            disc = ""
            if s.discontinuity:
                disc_at.append(i)
                disc = "#EXT-X-DISCONTINUITY\n"
            tail = "".join(marks) if marks else ""
            if s.gap:
                gap_at.append(i)
                tail += "#EXT-X-GAP\n"
            append(f"{disc}#EXT-X-PROGRAM-DATE-TIME:{pdt}\n{tail}{inf}{s.seq:08d}{ext}\n")
        else:
            append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt}\n{inf}{s.seq:08d}{ext}\n")
    return Prepared(
        target_duration(tl), segs, parts, prefix, breaks, daterange_out,
        tl.discontinuities_before, disc_at, gap_at, {},
    )


def _media(tl: Timeline, p: Prepared, rendition: str, window: str) -> str:
    count = p.prefix[rendition]
    # Ending only appends EXT-X-ENDLIST (RFC 8216 6.2.1): each playlist keeps its own window, so a
    # player reloading live.m3u8 never sees MEDIA-SEQUENCE go back. dvr.m3u8 is the live-to-VOD asset.
    seconds = tl.dvr_window if window == "dvr" else tl.live_window
    start = p.window_start(count, seconds)
    if start < count:
        first_seq = p.segments[start].seq
        disc_seq = p.discontinuities_before + bisect_left(p.disc_at, start)
    else:  # nothing published yet in this rendition
        first_seq = tl.segments[0].seq if tl.segments else 0
        disc_seq = discontinuity_sequence(tl, first_seq)
    has_gap = bisect_left(p.gap_at, count) > bisect_left(p.gap_at, start)
    if has_gap:
        version = 8  # EXT-X-GAP
    elif tl.ladder.container == "cmaf":
        version = 6  # EXT-X-MAP in a playlist without I-FRAMES-ONLY
    else:
        version = 3  # floating-point EXTINF
    head = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{p.target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first_seq}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}",
    ]
    # No EXT-X-PLAYLIST-TYPE, not even once ended: inserting a tag into a playlist that was live is a
    # change 6.2.1 does not allow; ENDLIST alone tells players the event is over.
    head.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if tl.ladder.container == "cmaf":
        head.append(f'#EXT-X-MAP:URI="{INIT}"')
    text = "\n".join(head) + "\n"
    if start < count and p.daterange_out:
        # A break that began before the window but is still running keeps its DATERANGE, so a
        # player joining mid-break knows it is in one (it leaves with its last segment).
        carried = [
            p.daterange_out[b.id]
            for b in p.breaks
            if b.id in p.daterange_out
            and b.out_seq < first_seq
            and (b.in_seq is None or b.in_seq >= first_seq)
        ]
        text += "".join(carried)
    key = (start, count)
    body = p.bodies.get(key)
    if body is None:  # renditions with the same availability share one joined body
        body = p.bodies[key] = "".join(p.parts[start:count])
    text += body
    if tl.ended:
        text += "#EXT-X-ENDLIST\n"
    return text


_cache: tuple[Timeline, Prepared] | None = None


def prepared(tl: Timeline) -> Prepared:
    """Re-use the shared work while the caller renders several playlists of the same timeline.

    Keyed on object identity (Timeline holds a dict, so it is not hashable); we keep a strong
    reference, so the id cannot be recycled while cached.
    """
    global _cache
    if _cache is not None and _cache[0] is tl:
        return _cache[1]
    p = _prepare(tl)
    _cache = (tl, p)
    return p


def render_media(tl: Timeline, rendition: str, window: str = "live") -> str:
    """Media playlist of one rendition (video name or `tl.ladder.audio.name`)."""
    _check_window(window)
    if rendition not in tl.ladder.names:
        raise ValidationError(f"unknown rendition {rendition!r}; the ladder has {list(tl.ladder.names)}")
    return _media(tl, prepared(tl), rendition, window)


def render_all(tl: Timeline) -> dict[str, str]:
    """Every HLS playlist of the channel, keyed by path relative to the channel root."""
    p = prepared(tl)
    out = {MASTER: render_master(tl, "live"), DVR_MASTER: render_master(tl, "dvr")}
    for name in tl.ladder.names:
        for w in WINDOWS:
            out[media_path(name, w)] = _media(tl, p, name, w)
    return out
