"""MPEG-DASH MPD rendering (ISO/IEC 23009-1, DASH-IF live timing model).

One Period per continuous stretch of media (`Timeline.periods`: each run, and each encoder clock
step inside a run), one AdaptationSet per media type, SegmentTemplate with a SegmentTimeline.
Period@id, Period@start and presentationTimeOffset come from the Period record the packager
stored when the stretch was first published, so they never change across MPD updates; inside a
Period the timeline is contiguous (no hole, no overlap: the packager starts a new Period where
the media is not). `S@t`/`S@d` are the segments' exact tfdt and length (video: 90 kHz ticks of
the frame grid; audio: samples of whole AAC frames), so the MPD and the media agree to the tick.

While live the MPD is dynamic. `tl.ended` ends it the DASH-IF way (MPD@mediaPresentationDuration,
the last Period gets a duration, no minimumUpdatePeriod; every Period@start and PTO kept);
`vod=True` renders the static MPD of a finished run (its own URL), Periods rebased to start at 0.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from fractions import Fraction
from xml.sax.saxutils import quoteattr

from ..errors import ValidationError
from . import scte35
from .adbreaks import DASH_SCHEMES, PlacedBreak
from .hls import CONTAINER_OVERHEAD, codecs_of, format_pdt, prepared
from .ladder import VIDEO_TIMESCALE
from .scte35 import Cue
from .timeline import Period, Segment, Timeline, media_start

SCTE35_SCHEME = "urn:scte:scte35:2014:xml+bin"
SCTE35_NS = "http://www.scte.org/schemas/35/2016"
UTC_HTTP_ISO = "urn:mpeg:dash:utc:http-iso:2014"
UTC_DIRECT = "urn:mpeg:dash:utc:direct:2014"
PERIOD_ID = "p0"
MEDIA_TEMPLATE = "$RepresentationID$/$Number%08d$.m4s"
INIT_TEMPLATE = "$RepresentationID$/init.mp4"
EVENT_TIMESCALE = VIDEO_TIMESCALE  # SCTE-35 lives on the 90 kHz clock


def duration(seconds: float, places: int = 3) -> str:
    """xs:duration in seconds, millisecond precision (`places`), no trailing zeros (PT2S, PT2.5S)."""
    text = f"{seconds:.{places}f}".rstrip("0").rstrip(".")
    return f"PT{text or '0'}S"


def _frame_rate(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def segment_timeline(items: list[tuple[int, int]]) -> tuple[str, int]:
    """`<S>` elements for (t, d) pairs, compacted with @r, and the first @t.

    @t is written on the first S and wherever media time is not contiguous, so a player never
    has to infer time across a jump.
    """
    if not items:
        return "", 0
    runs: list[list[int]] = []  # [t, d, r]
    expected = -1
    last: list[int] = [0, -1, 0]
    for t, d in items:
        if t == expected and d == last[1]:
            last[2] += 1
        else:
            last = [t, d, 0]
            runs.append(last)
        expected = t + d
    out = []
    prev_end = -1
    for t, d, r in runs:
        out.append(_s(t, d, r, explicit_t=t != prev_end))
        prev_end = t + d * (r + 1)
    return "".join(out), runs[0][0]


def _s(t: int, d: int, r: int, explicit_t: bool) -> str:
    ts = f' t="{t}"' if explicit_t else ""
    rs = f' r="{r}"' if r else ""
    return f'<S{ts} d="{d}"{rs}/>'


_IMPLICIT = Period(id=PERIOD_ID, start=0.0)


def render_mpd(tl: Timeline, now: datetime, *, utc_timing_url: str = "", vod: bool = False) -> str:
    """The channel's MPD as of `now` (publishTime; also the direct UTCTiming value)."""
    if now.tzinfo is None:
        raise ValidationError("render_mpd needs a timezone-aware `now`")
    ladder = tl.ladder
    # Shares the work (availability, target duration, break placement, windows) with the HLS
    # renderer when the packager renders both from the same timeline object.
    p = prepared(tl)
    target = p.target
    n_video = min((p.prefix[v.name] for v in ladder.video), default=0)
    n_audio = p.prefix[ladder.audio.name]
    video = p.segments[p.window_start(n_video, tl.dvr_window) : n_video]
    audio = p.segments[p.window_start(n_audio, tl.dvr_window) : n_audio]
    periods = tl.periods or (_IMPLICIT,)
    implicit = not tl.periods
    ast = media_start(tl) or now
    rate = ladder.audio.sample_rate
    static = vod and tl.ended
    shown = [pd for pd in periods if implicit or any(s.period == pd.id for s in video) or
             any(s.period == pd.id for s in audio)]
    if not shown:
        shown = [periods[-1]]
    base = shown[0].start if static else 0.0
    ends = _period_ends(tl, shown, video, static)

    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
        f'xmlns:scte35="{SCTE35_NS}" '
        'profiles="urn:mpeg:dash:profile:isoff-live:2011" '
        f'minBufferTime="{duration(ladder.segment_duration)}" '
        f'maxSegmentDuration="{duration(target)}" ',
    ]
    total = (ends[-1] - base) if ends and ends[-1] is not None else 0.0
    if static:
        head[-1] += f'type="static" mediaPresentationDuration="{duration(total, 6)}">'
    else:
        head[-1] += f'type="dynamic" availabilityStartTime="{format_pdt(ast)}" publishTime="{format_pdt(now)}" '
        if tl.ended:
            head[-1] += f'mediaPresentationDuration="{duration(total, 6)}" '
        else:
            head[-1] += f'minimumUpdatePeriod="{duration(ladder.segment_duration)}" '
        head[-1] += (f'timeShiftBufferDepth="{duration(tl.dvr_window)}" '
                     f'suggestedPresentationDelay="{duration(3 * ladder.segment_duration)}">')
    parts = head
    for k, pd in enumerate(shown):
        vsegs = [s for s in video if implicit or s.period == pd.id]
        asegs = [s for s in audio if implicit or s.period == pd.id]
        parts.append(_period(tl, p.breaks, pd, vsegs, asegs, base, ends[k], static, implicit,
                             last=k == len(shown) - 1))
    if not static:
        if utc_timing_url:
            parts.append(f"<UTCTiming schemeIdUri=\"{UTC_HTTP_ISO}\" value={quoteattr(utc_timing_url)}/>")
        else:
            parts.append(f'<UTCTiming schemeIdUri="{UTC_DIRECT}" value="{format_pdt(now)}"/>')
    parts.append("</MPD>")
    del rate
    return "\n".join(parts) + "\n"


def _period_ends(tl: Timeline, shown: list[Period], video: tuple[Segment, ...], static: bool
                 ) -> list[float | None]:
    """Where each shown Period ends on the presentation timeline: the next one's start, or (the last
    one) where its media ends once the event is over; None while it is still growing."""
    ends: list[float | None] = []
    for k, pd in enumerate(shown):
        if k + 1 < len(shown):
            ends.append(shown[k + 1].start)
            continue
        if not tl.ended:
            ends.append(None)
            continue
        segs = [s for s in video if not tl.periods or s.period == pd.id] or list(video)
        if segs:
            v_end = segs[-1].video_ticks()
            # A hand-built timeline has no Period record: its static MPD starts with its first segment.
            origin = segs[0].video_ticks()[0] if static and not tl.periods else pd.v0
            ends.append(pd.start + (v_end[0] + v_end[1] - origin) / VIDEO_TIMESCALE)
        else:
            ends.append(pd.start)
    return ends


def _period(tl: Timeline, breaks: list[PlacedBreak], pd: Period, video: list[Segment], audio: list[Segment],
            base: float, end: float | None, static: bool, implicit: bool, last: bool) -> str:
    ladder = tl.ladder
    rate = ladder.audio.sample_rate
    k = 1.0 + CONTAINER_OVERHEAD.get(ladder.container, 0.10)
    ext = "ts" if ladder.container == "ts" else "m4s"
    mime_v, mime_a = ("video/mp2t", "audio/mp2t") if ext == "ts" else ("video/mp4", "audio/mp4")
    folder = f"{pd.run}/" if pd.run else ""
    media = f"$RepresentationID$/{folder}$Number%08d$.{ext}"
    init = f"$RepresentationID$/{folder}init.mp4"
    v_items = [s.video_ticks() for s in video]
    a_items = [s.audio_samples(rate) for s in audio]
    v_timeline, v_first = segment_timeline(v_items)
    a_timeline, a_first = segment_timeline(a_items)
    if implicit:
        # No Period records (a timeline built by hand): one Period from 0; a static MPD starts where
        # its media does.
        pto_v = v_first if static else 0
        pto_a = a_first if static else 0
        start = 0.0
    else:
        pto_v, pto_a, start = pd.v0, pd.a0, pd.start - base
    start_v = video[0].seq if video else (audio[0].seq if audio else 0)
    start_a = audio[0].seq if audio else start_v
    attrs = f'id={quoteattr(pd.id)} start="{duration(start, 6)}"'
    if end is not None and (static or tl.ended) and last:
        attrs += f' duration="{duration(end - pd.start, 6)}"'
    parts = [f"<Period {attrs}>"]
    parts.append(_event_stream(tl, breaks, pd, video, pto_v, end, implicit))
    fps = ladder.frame_rate
    max_w = max((v.width for v in ladder.video), default=0)
    max_h = max((v.height for v in ladder.video), default=0)
    parts.append(
        f'<AdaptationSet id="1" contentType="video" mimeType="{mime_v}" segmentAlignment="true" '
        f'startWithSAP="1" maxWidth="{max_w}" maxHeight="{max_h}" frameRate="{_frame_rate(fps)}">'
        f'<SegmentTemplate timescale="{VIDEO_TIMESCALE}" media="{media}" '
        f'initialization="{init}" startNumber="{start_v}" presentationTimeOffset="{pto_v}">'
        f"<SegmentTimeline>{v_timeline}</SegmentTimeline></SegmentTemplate>"
    )
    for v in ladder.video:
        parts.append(
            f"<Representation id={quoteattr(v.name)} bandwidth=\"{int(v.max_bitrate * k)}\" "
            f'codecs="{codecs_of(tl, v.name)}" width="{v.width}" height="{v.height}" '
            f'frameRate="{_frame_rate(fps)}" sar="1:1"/>'
        )
    parts.append("</AdaptationSet>")
    au = ladder.audio
    parts.append(
        f'<AdaptationSet id="2" contentType="audio" mimeType="{mime_a}" segmentAlignment="true" '
        f"lang={quoteattr(au.language)}>"
        '<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" '
        f'value="{au.channels}"/>'
        f'<SegmentTemplate timescale="{rate}" media="{media}" '
        f'initialization="{init}" startNumber="{start_a}" presentationTimeOffset="{pto_a}">'
        f"<SegmentTimeline>{a_timeline}</SegmentTimeline></SegmentTemplate>"
        f"<Representation id={quoteattr(au.name)} bandwidth=\"{int(au.peak_bitrate * k)}\" "
        f'codecs="{codecs_of(tl, au.name)}" audioSamplingRate="{rate}"/>'
        "</AdaptationSet>"
    )
    parts.append("</Period>")
    return "\n".join(parts)


def in_event_id(b: PlacedBreak) -> int:
    """Event@id of a break's in-cue: stable across MPD updates, apart from the out's (the splice_event_id)."""
    return zlib.crc32(f"{b.id}/in".encode()) & 0xFFFFFFFF


def _payload(cue: Cue, xml: bool) -> str:
    if xml:
        return scte35.to_xml(cue)
    return f"<scte35:Signal><scte35:Binary>{cue.base64}</scte35:Binary></scte35:Signal>"


def _event_stream(tl: Timeline, breaks: list[PlacedBreak], pd: Period, shown: list[Segment], pto: int,
                  end: float | None, implicit: bool) -> str:
    """SCTE-35 EventStream of a Period: one Event per break whose out-point is in it and that overlaps
    the listed segments (or is announced: it starts with the next segment), and one for the in-cue of a
    break that returned early (the operator's return, the source's cue-in) in the Period of its in-point.

    The scheme is the channel's: urn:scte:scte35:2014:xml+bin (the section in base64) or
    urn:scte:scte35:2013:xml (the section as SCTE 35 XML). Event@id is the splice_event_id for the out
    (stable across MPD updates: players de-duplicate on it), `in_event_id` for the in; the out's
    Event@duration is the actual break length once the in-point exists, and never runs past the
    Period's end. With a Period per avail, an announced break waits for its own Period.
    """
    am = tl.ad_markers
    xml = am.dash_scheme == "xml"
    scheme = DASH_SCHEMES.get(am.dash_scheme, SCTE35_SCHEME)
    if not breaks or not shown:
        return f'<EventStream schemeIdUri="{scheme}" timescale="{EVENT_TIMESCALE}"/>'
    lo, hi = shown[0].number, shown[-1].number
    limit = None if end is None else round((end - pd.start) * EVENT_TIMESCALE) + pto
    events = []
    for b in breaks:
        if b.announced and am.avail_periods:
            continue
        if b.cue_in is not None and b.in_seq is not None and b.in_media is not None and lo <= b.in_seq <= hi and \
                (implicit or not b.in_period or b.in_period == pd.id) and \
                (b.returned_early or b.ad_break.scte35_in):
            at_in = round(b.in_media * EVENT_TIMESCALE)
            if at_in >= pto and (limit is None or at_in <= limit):
                events.append((at_in, f'<Event presentationTime="{at_in}" duration="0" id="{in_event_id(b)}">'
                                      f"{_payload(b.cue_in, xml)}</Event>"))
        if not implicit and b.out_period and b.out_period != pd.id:
            continue
        if (b.out_seq > hi and not b.announced) or (b.in_seq is not None and b.in_seq <= lo):
            continue
        length = b.actual_duration if b.actual_duration is not None else b.planned_duration
        # Event@presentationTime is on the media timeline; EventStream@presentationTimeOffset
        # (the Period's first tfdt) maps it into the Period, like SegmentTemplate's.
        at = round(b.out_media * EVENT_TIMESCALE)
        ticks = round(length * EVENT_TIMESCALE)
        if at < pto:  # a Period (or static MPD) starting mid-break: keep the remainder of the break
            at, ticks = pto, max(0, ticks - (pto - at))
        if limit is not None:
            ticks = max(0, min(ticks, limit - at))
        dur = f' duration="{ticks}"' if length > 0 else ""
        events.append((at, f'<Event presentationTime="{at}"{dur} id="{b.ad_break.splice_event_id}">'
                           f"{_payload(b.cue_out, xml)}</Event>"))
    events.sort(key=lambda e: e[0])
    return (
        f'<EventStream schemeIdUri="{scheme}" timescale="{EVENT_TIMESCALE}" '
        f'presentationTimeOffset="{pto}">' + "".join(e for _, e in events) + "</EventStream>"
    )
