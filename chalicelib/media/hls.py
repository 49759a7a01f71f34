"""HLS (RFC 8216bis) rendering: master playlists, media playlists and I-frame playlists.

Pure: a `Timeline` in, playlist text out. Layout at the channel root on the origin:

    master.m3u8               variants -> {rendition}/live.m3u8, I-frame variants -> iframes.m3u8
    dvr.m3u8                  the same over the DVR window
    {rendition}/live.m3u8     sliding live window (tl.live_window seconds)
    {rendition}/dvr.m3u8      DVR window (tl.dvr_window seconds)
    {video}/iframes.m3u8, {video}/iframes-dvr.m3u8   EXT-X-I-FRAMES-ONLY, one IDR per segment
    {rendition}/{run}/init.mp4, {rendition}/{run}/{seq:08d}.m4s   (or .ts for container "ts")

Segment URIs are relative to the rendition folder and carry the run, so a restart never
rewrites a URL; the playlists continue across runs with EXT-X-DISCONTINUITY and a new EXT-X-MAP.
The per-segment text is identical in every video rendition's playlist and in both windows (the
audio playlist has its own EXTINF and PDT: its segments hold whole AAC frames); `render_all`
formats it once and slices it, which keeps a 2-hour DVR channel inside a few milliseconds.

Rules kept here (RFC 8216bis 6.2.1/6.2.2): TARGETDURATION and EXT-X-VERSION never change for a
channel; a playlist only grows at the end and shrinks at the start; a DATERANGE stays while any
date in its range maps to a listed segment; the out DATERANGE of a break is published with the
last segment before its splice point and keeps its position when the splice segment arrives.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..errors import ValidationError
from .adbreaks import INTERSTITIAL_CLASS, PlacedBreak, hls_dialects, place_breaks
from .ladder import Ladder
from .parts import SKIP_VALUES, Edge
from .timeline import (
    Segment,
    Timeline,
    discontinuity_sequence,
    published_counts,
    target_duration,
    window_of,
)

MASTER = "master.m3u8"
LL_WINDOW = "ll"  # low-latency playlists: `ll.m3u8`, `{rendition}/ll.m3u8` (rendered per request)
DVR_MASTER = "dvr.m3u8"
INIT = "init.mp4"
AUDIO_GROUP = "aud"
WINDOWS = ("live", "dvr")
# One protocol version per playlist type for the channel's whole life (6: EXT-X-MAP in a media
# playlist; EXT-X-GAP, BYTERANGE and I-FRAMES-ONLY need nothing newer).
VERSION = 6
TS_VERSION = 3  # floating-point EXTINF

# Bytes the container adds on top of the elementary-stream bitrate: moof/mdat boxes for
# CMAF (~2-3 % at these segment sizes), 188-byte packets + PES headers + PAT/PMT for TS.
CONTAINER_OVERHEAD = {"cmaf": 0.03, "ts": 0.10}


def master_name(window: str = "live") -> str:
    """File name of the master playlist whose variants point at `{rendition}/{window}.m3u8`."""
    _check_window(window)
    return MASTER if window == "live" else DVR_MASTER if window == "dvr" else f"{window}.m3u8"


def media_path(rendition: str, window: str = "live") -> str:
    """Media playlist path relative to the channel root, e.g. `360p/live.m3u8`."""
    _check_window(window)
    return f"{rendition}/{window}.m3u8"


def segment_name(seq: int, container: str = "cmaf") -> str:
    """Segment file name (what the transcoder writes)."""
    return f"{seq:08d}.ts" if container == "ts" else f"{seq:08d}.m4s"


def segment_uri(seg: Segment, container: str = "cmaf") -> str:
    """URI of a segment relative to its rendition folder: `{run}/{seq:08d}.m4s`."""
    name = segment_name(seg.seq, container)
    return f"{seg.run}/{name}" if seg.run else name


def init_uri(run: str) -> str:
    return f"{run}/{INIT}" if run else INIT


def iframes_path(rendition: str, window: str = "live") -> str:
    _check_window(window)
    return f"{rendition}/iframes.m3u8" if window == "live" else f"{rendition}/iframes-{window}.m3u8"


def variant_bandwidth(ladder: Ladder, rendition: str) -> tuple[int, int]:
    """(BANDWIDTH, AVERAGE-BANDWIDTH) of a variant: video + the audio group, with container overhead.

    Peak comes from the VBV max rate the encoder is held to, average from its target
    bitrate, so the master never advertises less than the encoder may produce.
    """
    v = ladder.rendition(rendition)
    k = 1.0 + CONTAINER_OVERHEAD.get(ladder.container, 0.10)
    return (
        math.ceil((v.max_bitrate + ladder.audio.peak_bitrate) * k),
        math.ceil((v.bitrate + ladder.audio.bitrate) * k),
    )


def codecs_of(tl: Timeline, rendition: str) -> str:
    """What the bitstream says (recorded by the transcoder), else what the ladder asks the encoder for."""
    known = tl.codecs.get(rendition)
    if known:
        return known
    if rendition == tl.ladder.audio.name:
        return tl.ladder.audio.codecs
    return tl.ladder.rendition(rendition).codecs(tl.ladder.frame_rate)


_VOD_RE = re.compile(r"^vod-r[0-9]{1,6}$")


def vod_window(run: str) -> str:
    """The window name of a finished run's VOD playlists (`vod-r3.m3u8`, `{rendition}/vod-r3.m3u8`)."""
    return f"vod-{run}"


def _check_window(window: str) -> None:
    if window not in WINDOWS and window != LL_WINDOW and not _VOD_RE.match(window):
        raise ValidationError(f"unknown playlist window {window!r}; use 'live', 'dvr', 'll' or 'vod-r<N>'")


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


def _pdt_texts(times: list[datetime]) -> list[str]:
    memo = _PDT_MEMO
    if len(memo) > _PDT_MEMO_MAX:
        memo.clear()
    out = []
    for t in times:
        text = memo.get(t)
        if text is None:
            text = memo[t] = format_pdt(t)
        out.append(text)
    return out


def render_master(tl: Timeline, window: str = "live") -> str:
    """Master playlist: one variant per video rendition, all sharing the audio group, and one
    I-frame variant per video rendition (Apple HLS Authoring Specification 6.1)."""
    _check_window(window)
    ladder = tl.ladder
    fps = ladder.frame_rate
    audio = ladder.audio
    version = VERSION if ladder.container == "cmaf" else TS_VERSION + 1  # EXT-X-MEDIA needs 4
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{audio.name}",'
        f'LANGUAGE="{audio.language}",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio.channels}",'
        f'URI="{media_path(audio.name, window)}"',
    ]
    acodec = codecs_of(tl, audio.name)
    for v in ladder.video:
        peak, avg = variant_bandwidth(ladder, v.name)
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},"
            f'CODECS="{codecs_of(tl, v.name)},{acodec}",RESOLUTION={v.width}x{v.height},'
            f'FRAME-RATE={float(fps):.3f},AUDIO="{AUDIO_GROUP}"'
        )
        lines.append(media_path(v.name, window))
    if ladder.container == "cmaf":
        k = 1.0 + CONTAINER_OVERHEAD["cmaf"]
        # The low-latency master shares the live I-frame playlists (trick play needs no parts).
        iwindow = "live" if window == LL_WINDOW else window
        for v in ladder.video:
            # An I-frame is at most the VBV buffer (2 x max rate bits), one per segment of about 2 s:
            # its peak rate is bounded by the rendition's max rate, a figure that never changes.
            lines.append(
                f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={math.ceil(v.max_bitrate * k)},"
                f'CODECS="{codecs_of(tl, v.name)}",RESOLUTION={v.width}x{v.height},'
                f'URI="{iframes_path(v.name, iwindow)}"'
            )
    return "\n".join(lines) + "\n"


@dataclass
class Prepared:
    """Everything shared by the playlists of one timeline, computed once."""

    target: int
    segments: tuple[Segment, ...]  # the contiguous run published in at least one rendition
    parts: list[str]  # per-segment text of video playlists, parallel to `segments`
    audio_parts: list[str]  # ... of the audio playlist (its own EXTINF and PDT)
    iframe_parts: dict[str, list[str]]  # video rendition -> per-segment I-frame playlist text
    prefix: dict[str, int]  # rendition -> how many of `segments` it may list
    breaks: list[PlacedBreak]
    daterange_out: dict[str, str]  # break id -> its OUT DATERANGE line (re-used at window top)
    discontinuities_before: int  # tl.discontinuities_before
    disc_at: list[int]  # indices in `segments` of segments with a discontinuity (ascending)
    map_at: frozenset[int]  # indices whose part carries an EXT-X-MAP (the run changes there)
    windows: dict[tuple[int, float], int]  # (available count, seconds) -> window start index
    tail: str = ""  # after the last segment: an announced break's OUT DATERANGE
    closing: str = ""  # at ENDLIST: what closes a break still open at the end
    bodies: dict[tuple[int, int, str], str] = field(default_factory=dict)  # joined parts

    def window_start(self, count: int, seconds: float) -> int:
        """Index in `segments` where the window over the first `count` segments starts."""
        key = (count, seconds)
        start = self.windows.get(key)
        if start is None:
            start = self.windows[key] = count - len(window_of(self.segments[:count], seconds, self.target))
        return start


def _num(x: float) -> str:
    """30 -> "30", 201.4671 -> "201.467": the Duration of CUE-OUT-CONT as MediaLive writes it."""
    return f"{x:.3f}".rstrip("0").rstrip(".") or "0"


def _attr(value: str) -> str:
    """A quoted-string attribute value (RFC 8216 4.2: no double quote, CR or LF inside)."""
    if any(c in value for c in '"\r\n'):
        raise ValidationError(f"{value[:60]!r} cannot be an HLS quoted-string attribute value")
    return f'"{value}"'


@dataclass
class _Marks:
    lead: dict[int, list[str]] = field(default_factory=dict)  # index -> DATERANGE lines opening its part
    tags: dict[int, list[str]] = field(default_factory=dict)  # index -> marker lines after its PDT
    carry: dict[str, list[str]] = field(default_factory=dict)  # break id -> DATERANGE lines for the window top
    tail: list[str] = field(default_factory=list)  # announced breaks: after the last segment
    closing: list[str] = field(default_factory=list)  # at ENDLIST: what closes a break still open


def _markers(tl: Timeline, segs: tuple[Segment, ...], breaks: list[PlacedBreak]) -> _Marks:
    """The marker lines of every break in the channel's dialects (`tl.marker_style`), by segment index.

    Every dialect marks the same PlacedBreak: the out on its first segment, CUE-OUT-CONT on the ones
    inside, the in (CUE-IN, the DATERANGE re-emitted with its ID plus END-DATE and DURATION) on the
    first segment after it -- which, after an early return, is the next boundary after the return."""
    dialects = hls_dialects(tl.marker_style)
    if "elemental" in dialects and "scte35_enhanced" in dialects:
        raise ValidationError("marker dialects elemental and scte35_enhanced both write EXT-X-CUE-OUT; choose one")
    am = tl.ad_markers
    first = segs[0].number if segs else 0
    n = len(segs)
    m = _Marks()
    for b in breaks:
        oi = b.out_seq - first
        planned = b.planned_duration
        start_date = format_pdt(b.out_pdt)
        opening: list[str] = []
        closing: list[str] = []
        ii = (b.in_seq - first) if b.in_seq is not None else n
        has_in = b.in_pdt is not None and 0 <= ii <= n
        dur = (b.in_pdt - b.out_pdt).total_seconds() if has_in and b.in_pdt is not None else 0.0
        end_date = format_pdt(b.in_pdt) if has_in and b.in_pdt is not None else ""
        if "daterange" in dialects:
            opening.append(f'#EXT-X-DATERANGE:ID="{b.id}",START-DATE="{start_date}",'
                           + (f"PLANNED-DURATION={planned:.3f}," if planned > 0 else "")
                           + f"SCTE35-OUT={b.cue_out.hex}\n")
            if has_in:
                closing.append(f'#EXT-X-DATERANGE:ID="{b.id}",START-DATE="{start_date}",END-DATE="{end_date}",'
                               f"DURATION={dur:.3f}" + (f",SCTE35-IN={b.cue_in.hex}" if b.cue_in is not None else "")
                               + "\n")
        if "interstitials" in dialects and (am.asset_uri or am.asset_list):
            asset = f"X-ASSET-LIST={_attr(am.asset_list)}" if am.asset_list else f"X-ASSET-URI={_attr(am.asset_uri)}"
            common = (f'#EXT-X-DATERANGE:ID="{b.id}-ad",CLASS="{INTERSTITIAL_CLASS}",START-DATE="{start_date}",'
                      + (f"PLANNED-DURATION={planned:.3f}," if planned > 0 else "") + asset
                      + (f",X-RESUME-OFFSET={planned:.3f}" if planned > 0 else "")
                      + (f",X-RESTRICT={_attr(am.restrict)}" if am.restrict else ""))
            opening.append(common + "\n")
            if has_in:
                closing.append(f'{common},END-DATE="{end_date}",DURATION={dur:.3f}\n')
        if opening:
            m.carry[b.id] = opening
            if b.announced:
                m.tail += opening  # where the out segment's part will begin: same text, same place
            elif 0 <= oi < n:
                m.lead.setdefault(oi, []).extend(opening)
        if b.announced:
            continue
        cue = "scte35_enhanced" if "scte35_enhanced" in dialects else "elemental" if "elemental" in dialects else ""
        if cue and 0 <= oi < n:
            head = f"#EXT-X-CUE-OUT:{planned:.3f}\n" if planned > 0 else "#EXT-X-CUE-OUT\n"
            if cue == "scte35_enhanced":
                caid = b.cue_out.upid or f"0x{b.ad_break.splice_event_id:016X}"
                head = f"#EXT-OATCLS-SCTE35:{b.cue_out.base64}\n#EXT-X-ASSET:CAID={caid}\n" + head
            m.tags.setdefault(oi, []).append(head)
        if cue:
            for k in range(max(oi + 1, 0), min(ii, n)):
                elapsed = segs[k].start - b.out_media
                if cue == "scte35_enhanced":
                    line = (f"#EXT-X-CUE-OUT-CONT:ElapsedTime={elapsed:.3f},"
                            + (f"Duration={_num(planned)}," if planned > 0 else "") + f"SCTE35={b.cue_out.base64}\n")
                else:
                    line = f"#EXT-X-CUE-OUT-CONT:{elapsed:.3f}" + (f"/{_num(planned)}" if planned > 0 else "") + "\n"
                m.tags.setdefault(k, []).append(line)
        back = ""
        if cue and has_in:
            back = (f"#EXT-OATCLS-SCTE35:{b.cue_in.base64}\n" if cue == "scte35_enhanced" and b.cue_in is not None
                    else "") + "#EXT-X-CUE-IN\n"
        if has_in and ii < n:
            if back:
                m.tags.setdefault(ii, []).append(back)
            if closing:
                m.lead.setdefault(ii, []).extend(closing)
        elif has_in and tl.ended:  # still out of network when the event ended: close it at the end
            m.closing += ([back] if back else []) + closing
    return m


def _prepare(tl: Timeline) -> Prepared:
    prefix = published_counts(tl)
    segs = tl.segments[: max(prefix.values(), default=0)]
    breaks = place_breaks(tl)
    found = _markers(tl, segs, breaks)
    lead, tags, tail, closing = found.lead, found.tags, found.tail, found.closing
    daterange_out = {k: "".join(v) for k, v in found.carry.items()}
    ts = tl.ladder.container == "ts"
    container = "ts" if ts else "cmaf"
    rate = tl.ladder.audio.sample_rate
    video_names = [v.name for v in tl.ladder.video] if not ts else []
    parts: list[str] = []
    audio_parts: list[str] = []
    iframe_parts: dict[str, list[str]] = {name: [] for name in video_names}
    disc_at: list[int] = []
    map_at: set[int] = set()
    pdt_text = _pdt_texts([s.program_date_time for s in segs])
    apdt_text = _pdt_texts([s.audio_date() for s in segs])
    extinf: dict[float, str] = {}  # a channel has a handful of distinct durations
    prev_run: str | None = None
    # This loop is the renderer's hot path (once per segment of the DVR window): the common
    # segment takes the short branch, with its PDT and EXTINF text looked up, not formatted.
    for i, s in enumerate(segs):
        d = s.duration
        inf = extinf.get(d)
        if inf is None:
            inf = extinf[d] = f"#EXTINF:{d:.3f},\n"
        ad = s.audio_duration(rate)
        ainf = extinf.get(-ad)
        if ainf is None:
            ainf = extinf[-ad] = f"#EXTINF:{ad:.3f},\n"
        uri = segment_uri(s, container)
        marks = tags.get(i)
        opening = lead.get(i)
        new_run = prev_run is not None and s.run != prev_run
        prev_run = s.run
        if s.discontinuity or s.gap or marks or opening or new_run:
            pre = "".join(opening) if opening else ""
            if s.discontinuity:
                disc_at.append(i)
                pre += "#EXT-X-DISCONTINUITY\n"
            if new_run and not ts:
                map_at.add(i)
                pre += f'#EXT-X-MAP:URI="{init_uri(s.run)}"\n'
            post = "".join(marks) if marks else ""
            if s.gap:
                post += "#EXT-X-GAP\n"
            parts.append(f"{pre}#EXT-X-PROGRAM-DATE-TIME:{pdt_text[i]}\n{post}{inf}{uri}\n")
            audio_parts.append(f"{pre}#EXT-X-PROGRAM-DATE-TIME:{apdt_text[i]}\n{post}{ainf}{uri}\n")
        else:
            parts.append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt_text[i]}\n{inf}{uri}\n")
            audio_parts.append(f"#EXT-X-PROGRAM-DATE-TIME:{apdt_text[i]}\n{ainf}{uri}\n")
        if video_names:
            pre = ("#EXT-X-DISCONTINUITY\n" if s.discontinuity else "") + (
                f'#EXT-X-MAP:URI="{init_uri(s.run)}"\n' if new_run else "")
            gap = "#EXT-X-GAP\n" if s.gap else ""
            for name in video_names:
                ranges = s.iframes.get(name) or ()
                if ranges:
                    offset, size, _dur = ranges[0]
                    iframe_parts[name].append(f"{pre}#EXT-X-PROGRAM-DATE-TIME:{pdt_text[i]}\n{gap}{inf}"
                                              f"#EXT-X-BYTERANGE:{size}@{offset}\n{uri}\n")
                else:  # no I-frame facts (a segment from before they were recorded): a gap there
                    iframe_parts[name].append(f"{pre}#EXT-X-PROGRAM-DATE-TIME:{pdt_text[i]}\n#EXT-X-GAP\n{inf}"
                                              f"#EXT-X-BYTERANGE:1@0\n{uri}\n")
    return Prepared(
        target_duration(tl), segs, parts, audio_parts, iframe_parts, prefix, breaks, daterange_out,
        tl.discontinuities_before, disc_at, frozenset(map_at), {}, "".join(tail), "".join(closing),
    )


def _seconds(tl: Timeline, window: str) -> float:
    return tl.live_window if window == "live" else tl.dvr_window if window == "dvr" else math.inf


def _head(tl: Timeline, p: Prepared, start: int, count: int, iframes: bool = False, vod: bool = False,
          version: int | None = None) -> tuple[str, int]:
    if start < count:
        first = p.segments[start]
        first_seq = first.number
        disc_seq = p.discontinuities_before + bisect_left(p.disc_at, start)
    else:  # nothing published yet in this rendition
        first = tl.segments[0] if tl.segments else None  # type: ignore[assignment]
        first_seq = first.number if first is not None else 0
        disc_seq = discontinuity_sequence(tl, first_seq)
    ts = tl.ladder.container == "ts"
    head = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version or (TS_VERSION if ts else VERSION)}",
        f"#EXT-X-TARGETDURATION:{p.target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first_seq}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}",
    ]
    # No EXT-X-PLAYLIST-TYPE on the live URLs, not even once ended: inserting a tag into a playlist that
    # was live is a change 6.2.1 does not allow; ENDLIST alone tells players the event is over. A run's
    # VOD playlists are new URLs, written once: they say what they are.
    if vod:
        head.append("#EXT-X-PLAYLIST-TYPE:VOD")
    if iframes:
        head.append("#EXT-X-I-FRAMES-ONLY")
    else:
        head.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if not ts and not (start < count and start in p.map_at):
        head.append(f'#EXT-X-MAP:URI="{init_uri(first.run if first is not None else "")}"')
    return "\n".join(head) + "\n", first_seq


def _media(tl: Timeline, p: Prepared, rendition: str, window: str) -> str:
    count = p.prefix[rendition]
    # Ending only appends EXT-X-ENDLIST (RFC 8216 6.2.1): each playlist keeps its own window, so a
    # player reloading live.m3u8 never sees MEDIA-SEQUENCE go back.
    start = p.window_start(count, _seconds(tl, window))
    text, first_seq = _head(tl, p, start, count, vod=window.startswith("vod-"))
    if start < count:
        text += _carried(p, first_seq)
    audio = rendition == tl.ladder.audio.name
    key = (start, count, "a" if audio else "v")
    body = p.bodies.get(key)
    if body is None:  # renditions with the same availability share one joined body
        body = p.bodies[key] = "".join((p.audio_parts if audio else p.parts)[start:count])
    text += body
    if count == len(p.segments) and count > 0:
        text += p.tail if not tl.ended else p.closing
    if tl.ended:
        text += "#EXT-X-ENDLIST\n"
    return text


def _carried(p: Prepared, first_seq: int) -> str:
    """A break that began before the window but is still running keeps its DATERANGE while any of its
    dates maps to a listed segment (RFC 8216bis 6.2.1), so a player joining mid-break knows it is in one."""
    if not p.daterange_out:
        return ""
    return "".join(
        p.daterange_out[b.id]
        for b in p.breaks
        if b.id in p.daterange_out
        and not b.announced
        and b.out_seq < first_seq
        and (b.in_seq is None or b.in_seq > first_seq)
    )


def render_iframes(tl: Timeline, rendition: str, window: str = "live") -> str:
    """EXT-X-I-FRAMES-ONLY playlist of a video rendition: the IDR opening each segment, by byte range."""
    _check_window(window)
    p = prepared(tl)
    if rendition not in p.iframe_parts:
        raise ValidationError(f"no I-frame playlist for {rendition!r}; video renditions: {list(p.iframe_parts)}")
    count = p.prefix[rendition]
    start = p.window_start(count, _seconds(tl, window))
    text, _ = _head(tl, p, start, count, iframes=True, vod=window.startswith("vod-"))
    text += "".join(p.iframe_parts[rendition][start:count])
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


def render_vod(tl: Timeline, run: str) -> dict[str, str]:
    """A finished run's VOD playlists (`tl` holds that run's segments and `ended`): master, media and
    I-frame playlists under the window name `vod-{run}`."""
    window = vod_window(run)
    p = prepared(tl)
    out = {master_name(window): render_master(tl, window)}
    for name in tl.ladder.names:
        out[media_path(name, window)] = _media(tl, p, name, window)
    for name in p.iframe_parts:
        out[iframes_path(name, window)] = render_iframes(tl, name, window)
    return out


def render_all(tl: Timeline) -> dict[str, str]:
    """Every HLS playlist of the channel, keyed by path relative to the channel root."""
    p = prepared(tl)
    out = {MASTER: render_master(tl, "live"), DVR_MASTER: render_master(tl, "dvr")}
    for name in tl.ladder.names:
        for w in WINDOWS:
            out[media_path(name, w)] = _media(tl, p, name, w)
    for name in p.iframe_parts:
        for w in WINDOWS:
            out[iframes_path(name, w)] = render_iframes(tl, name, w)
    return out


# --- Low-Latency HLS (RFC 8216bis 4.4.3.7-4.4.5.3, 6.2.5) -------------------------------------------
# The same Prepared per-segment text as the regular playlists: a segment that still has parts in the
# playlist gets its EXT-X-PART lines between its tags and its EXTINF; the segment being written (the
# timeline's last, `partial`) shows its tags and parts only. So PDT, discontinuities, EXT-X-MAP and ad
# markers are exactly those of `{rendition}/live.m3u8`, over the same live window.

LL_VERSION = 10  # EXT-X-SKIP with RECENTLY-REMOVED-DATERANGES (delta updates v2) is the newest tag used
SKIP_TARGETS = 6  # CAN-SKIP-UNTIL: the Skip Boundary must be at least six target durations
PART_TARGETS = 3  # parts are listed for the segments within three target durations of the end


@dataclass(frozen=True)
class PartEntry:
    """One listed part of a segment."""

    index: int
    duration: float  # video seconds (the grid frames it holds)
    audio_duration: float  # seconds of the AAC frames it holds
    gap: bool = False  # a slate part on a `missing_media: gap` channel


@dataclass(frozen=True)
class LowLatency:
    """What the LL playlists add to the timeline: the parts of its newest segments."""

    part_target: float  # EXT-X-PART-INF:PART-TARGET
    part_hold_back: float
    parts: Mapping[tuple[str, int], tuple[PartEntry, ...]]  # (run, seq) -> its listed parts, in order
    parts_per_segment: int
    partial: bool = False  # the timeline's last segment is still being written: only its parts are listed


def part_name(seq: int, index: int) -> str:
    return f"{seq:08d}.{index}.m4s"


def part_uri(run: str, seq: int, index: int) -> str:
    """URI of a part relative to its rendition folder: `{run}/{seq:08d}.{part}.m4s`."""
    name = part_name(seq, index)
    return f"{run}/{name}" if run else name


def skip_until(tl: Timeline) -> float:
    return float(SKIP_TARGETS * target_duration(tl))


def ll_edge(tl: Timeline, ll: LowLatency, rendition: str | None = None) -> Edge:
    """The last complete segment and the last listed part of a rendition's LL playlist."""
    p = prepared(tl)
    count = p.prefix[rendition or tl.ladder.audio.name]
    partial = ll.partial and count == len(p.segments) and count > 0
    complete = count - 1 if partial else count
    last_msn = p.segments[complete - 1].number if complete > 0 else None
    part_msn = part_index = None
    for i in range(count - 1, max(-1, count - 3), -1):
        s = p.segments[i]
        entries = ll.parts.get((s.run, s.seq))
        if entries:
            part_msn, part_index = s.number, entries[-1].index
            break
        if i < complete:
            break
    return Edge(last_msn, part_msn, part_index, ll.parts_per_segment)


def render_ll_master(tl: Timeline) -> str:
    return render_master(tl, LL_WINDOW)


def render_ll(tl: Timeline, rendition: str, ll: LowLatency, skip: str = "") -> str:
    """The LL-HLS media playlist of one rendition; `skip` "YES" or "v2" renders a Playlist Delta Update."""
    if rendition not in tl.ladder.names:
        raise ValidationError(f"unknown rendition {rendition!r}; the ladder has {list(tl.ladder.names)}")
    if skip not in ("", *SKIP_VALUES):
        raise ValidationError(f"_HLS_skip={skip!r}: use YES or v2")
    p = prepared(tl)
    count = p.prefix[rendition]
    partial = ll.partial and count == len(p.segments) and count > 0
    complete = count - 1 if partial else count
    start = p.window_start(complete, tl.live_window)
    text, first_seq = _head(tl, p, start, count, version=LL_VERSION)
    until = skip_until(tl)
    text += (f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={ll.part_hold_back:.3f},"
             f"CAN-SKIP-UNTIL={until:.1f},CAN-SKIP-DATERANGES=YES\n"
             f"#EXT-X-PART-INF:PART-TARGET={ll.part_target:.3f}\n")
    audio = rendition == tl.ladder.audio.name
    texts = p.audio_parts if audio else p.parts
    segs = p.segments
    end = segs[count - 1].end if count else 0.0
    if partial:
        last = segs[count - 1]
        end = last.start + sum(e.duration for e in ll.parts.get((last.run, last.seq), ()))
    parts_from = end - PART_TARGETS * p.target  # parts of segments ending after this are listed
    skipped = 0
    if skip and complete > start:
        skipped = complete - start - _skip_kept(tl, segs[start:complete], audio, until)
    if skipped:
        text += _skip_tags(tl, p, texts, start, skipped, skip, until)
    elif start < count:
        text += _carried(p, first_seq)
    for i in range(start + skipped, count):
        s = segs[i]
        body = texts[i]
        entries = ll.parts.get((s.run, s.seq)) if s.end > parts_from or (partial and i == count - 1) else None
        if skipped and i == start + skipped and i not in p.map_at and (
                segs[start].run != s.run or any(j in p.map_at for j in range(start + 1, i))):
            body = f'#EXT-X-MAP:URI="{init_uri(s.run)}"\n' + body  # the skipped segments held the MAP change
        if not entries and not (partial and i == count - 1):
            text += body
            continue
        cut = body.rfind("#EXTINF:")
        lines = "".join(
            f'#EXT-X-PART:DURATION={(e.audio_duration if audio else e.duration):.5f},'
            f'URI="{part_uri(s.run, s.seq, e.index)}",INDEPENDENT=YES' + (",GAP=YES" if e.gap else "") + "\n"
            for e in entries or ())
        text += body[:cut] + lines + ("" if partial and i == count - 1 else body[cut:])
    if count == len(segs) and count > 0:
        text += p.tail if not tl.ended else p.closing
    if tl.ended:
        return text + "#EXT-X-ENDLIST\n"
    hint = _next_part(tl, ll, p, count, partial)
    if hint is not None:
        text += f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(*hint)}"\n'
    for name in tl.ladder.names:
        if name == rendition:
            continue
        edge = ll_edge(tl, ll, name)
        msn = edge.part_msn if edge.part_msn is not None else edge.last_msn
        if msn is None:
            continue
        report = f'#EXT-X-RENDITION-REPORT:URI="../{media_path(name, LL_WINDOW)}",LAST-MSN={msn}'
        if edge.part_msn is not None and edge.part_msn == msn:
            report += f",LAST-PART={edge.part_index}"
        text += report + "\n"
    return text


def _skip_kept(tl: Timeline, segs: tuple[Segment, ...], audio: bool, until: float) -> int:
    """How many of the newest complete segments a delta update keeps: the fewest whose EXTINFs, as this
    rendition lists them (audio: its own AAC-frame durations, off the video's by up to a frame), add up to
    the Skip Boundary; only segments wholly before it are skipped."""
    rate = tl.ladder.audio.sample_rate
    total, n = 0.0, 0
    for s in reversed(segs):
        if total >= until - 1e-9:
            break
        total += round(s.audio_duration(rate) if audio else s.duration, 3)
        n += 1
    return n


def _next_part(tl: Timeline, ll: LowLatency, p: Prepared, count: int, partial: bool) -> tuple[str, int, int] | None:
    """The part the encoder sends next (EXT-X-PRELOAD-HINT): after the last listed one."""
    if not count:
        return None
    s = p.segments[count - 1]
    entries = ll.parts.get((s.run, s.seq), ())
    if partial and entries and entries[-1].index + 1 < ll.parts_per_segment:
        return s.run, s.seq, entries[-1].index + 1
    return s.run, s.seq + 1, 0


def _skip_tags(tl: Timeline, p: Prepared, texts: list[str], start: int, skipped: int, skip: str,
               until: float) -> str:
    """EXT-X-SKIP for the oldest segments, keeping the remaining playlist at least `until` seconds long
    (the Skip Boundary). `YES` keeps every DATERANGE of the skipped part (they are not segment tags);
    `v2` skips them too (the client has them from the full playlist) and names the DATERANGEs that left
    the playlist within the Skip Boundary, so a client merging the delta drops them (RFC 8216bis 4.4.5.2,
    REQUIRED when DATERANGEs are skipped, so present even when empty)."""
    first = p.segments[start]
    if skip == "YES":
        kept = _carried(p, first.number) + "".join(
            line + "\n" for t in texts[start:start + skipped] for line in t.splitlines()
            if line.startswith("#EXT-X-DATERANGE:"))
        return f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n{kept}"
    horizon = first.program_date_time - timedelta(seconds=until)
    removed = sorted(
        b.id for b in p.breaks
        if b.id in p.daterange_out and not b.announced and b.in_seq is not None and b.in_seq <= first.number
        and b.in_pdt is not None and b.in_pdt >= horizon)
    return f'#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped},RECENTLY-REMOVED-DATERANGES="{chr(9).join(removed)}"\n'
