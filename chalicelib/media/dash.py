"""MPEG-DASH MPD rendering (ISO/IEC 23009-1, DASH-IF live timing model).

One Period for the whole run, one AdaptationSet per media type, SegmentTemplate with a
SegmentTimeline. The transcoder writes `tfdt = round(segment.start * timescale)`; every `S@t`
here is computed with the same expression, in integers, so the MPD and the media agree to
the tick and never drift however long the channel runs.

While live the MPD is dynamic; once `tl.ended` it becomes static (a VOD of what the DVR
window kept), with presentationTimeOffset so playback starts at 0.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from xml.sax.saxutils import quoteattr

from ..errors import ValidationError
from .adbreaks import PlacedBreak
from .hls import CONTAINER_OVERHEAD, format_pdt, prepared
from .ladder import VIDEO_TIMESCALE
from .timeline import Segment, Timeline, media_start

SCTE35_SCHEME = "urn:scte:scte35:2014:xml+bin"
SCTE35_NS = "http://www.scte.org/schemas/35/2016"
UTC_HTTP_ISO = "urn:mpeg:dash:utc:http-iso:2014"
UTC_DIRECT = "urn:mpeg:dash:utc:direct:2014"
PERIOD_ID = "p0"
MEDIA_TEMPLATE = "$RepresentationID$/$Number%08d$.m4s"
INIT_TEMPLATE = "$RepresentationID$/init.mp4"
EVENT_TIMESCALE = VIDEO_TIMESCALE  # SCTE-35 lives on the 90 kHz clock


def duration(seconds: float) -> str:
    """xs:duration in seconds, millisecond precision, no trailing zeros (PT2S, PT2.5S)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def _frame_rate(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def segment_timeline(segs: tuple[Segment, ...], timescale: int) -> tuple[str, int]:
    """`<S>` elements for `segs`, compacted with @r, and the first segment's @t.

    @t is written on the first S and wherever media time is not contiguous (a hole in the
    output timeline), so a player never has to infer time across a jump.
    """
    if not segs:
        return "", 0
    runs: list[list[int]] = []  # [t, d, r]
    expected = -1
    last: list[int] = [0, -1, 0]
    prev_end, prev_end_t = -1.0, 0
    for s in segs:
        start = s.start
        # Back-to-back segments (the norm) reuse the previous end's tick count: same value
        # as round(start * timescale), one round() fewer in the hot loop.
        t = prev_end_t if start == prev_end else round(start * timescale)
        prev_end = start + s.duration
        prev_end_t = round(prev_end * timescale)
        d = prev_end_t - t
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


def render_mpd(tl: Timeline, now: datetime, *, utc_timing_url: str = "") -> str:
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
    static = tl.ended
    ast = media_start(tl) or now
    k = 1.0 + CONTAINER_OVERHEAD.get(ladder.container, 0.10)
    ext = "ts" if ladder.container == "ts" else "m4s"
    mime_v, mime_a = ("video/mp2t", "audio/mp2t") if ext == "ts" else ("video/mp4", "audio/mp4")
    media = MEDIA_TEMPLATE.replace(".m4s", f".{ext}")

    v_timeline, v_first = segment_timeline(video, VIDEO_TIMESCALE)
    a_rate = ladder.audio.sample_rate
    a_timeline, a_first = segment_timeline(audio, a_rate)
    start_v = video[0].seq if video else (tl.segments[0].seq if tl.segments else 0)
    start_a = audio[0].seq if audio else start_v

    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
        f'xmlns:scte35="{SCTE35_NS}" '
        'profiles="urn:mpeg:dash:profile:isoff-live:2011" '
        f'minBufferTime="{duration(ladder.segment_duration)}" '
        f'maxSegmentDuration="{duration(target)}" ',
    ]
    if static:
        span = (video[-1].end - video[0].start) if video else 0.0
        head[-1] += f'type="static" mediaPresentationDuration="{duration(span)}">'
        period = f'<Period id="{PERIOD_ID}" start="PT0S" duration="{duration(span)}">'
        pto_v, pto_a, pto_e = v_first, a_first, round(video[0].start * EVENT_TIMESCALE) if video else 0
    else:
        head[-1] += (
            f'type="dynamic" availabilityStartTime="{format_pdt(ast)}" '
            f'publishTime="{format_pdt(now)}" '
            f'minimumUpdatePeriod="{duration(ladder.segment_duration)}" '
            f'timeShiftBufferDepth="{duration(tl.dvr_window)}" '
            f'suggestedPresentationDelay="{duration(3 * ladder.segment_duration)}">'
        )
        period = f'<Period id="{PERIOD_ID}" start="PT0S">'
        pto_v = pto_a = pto_e = 0
    parts = [*head, period]
    parts.append(_event_stream(p.breaks, video, pto_e))

    fps = ladder.frame_rate
    max_w = max((v.width for v in ladder.video), default=0)
    max_h = max((v.height for v in ladder.video), default=0)
    parts.append(
        f'<AdaptationSet id="1" contentType="video" mimeType="{mime_v}" segmentAlignment="true" '
        f'startWithSAP="1" maxWidth="{max_w}" maxHeight="{max_h}" frameRate="{_frame_rate(fps)}">'
        f'<SegmentTemplate timescale="{VIDEO_TIMESCALE}" media="{media}" '
        f'initialization="{INIT_TEMPLATE}" startNumber="{start_v}" presentationTimeOffset="{pto_v}">'
        f"<SegmentTimeline>{v_timeline}</SegmentTimeline></SegmentTemplate>"
    )
    for v in ladder.video:
        parts.append(
            f"<Representation id={quoteattr(v.name)} bandwidth=\"{int(v.max_bitrate * k)}\" "
            f'codecs="{v.codecs(fps)}" width="{v.width}" height="{v.height}" '
            f'frameRate="{_frame_rate(fps)}" sar="1:1"/>'
        )
    parts.append("</AdaptationSet>")
    au = ladder.audio
    parts.append(
        f'<AdaptationSet id="2" contentType="audio" mimeType="{mime_a}" segmentAlignment="true" '
        f"lang={quoteattr(au.language)}>"
        '<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" '
        f'value="{au.channels}"/>'
        f'<SegmentTemplate timescale="{a_rate}" media="{media}" '
        f'initialization="{INIT_TEMPLATE}" startNumber="{start_a}" presentationTimeOffset="{pto_a}">'
        f"<SegmentTimeline>{a_timeline}</SegmentTimeline></SegmentTemplate>"
        f"<Representation id={quoteattr(au.name)} bandwidth=\"{int(au.bitrate * k)}\" "
        f'codecs="{au.codecs}" audioSamplingRate="{a_rate}"/>'
        "</AdaptationSet>"
    )
    parts.append("</Period>")
    if not static:
        if utc_timing_url:
            parts.append(f"<UTCTiming schemeIdUri=\"{UTC_HTTP_ISO}\" value={quoteattr(utc_timing_url)}/>")
        else:
            parts.append(f'<UTCTiming schemeIdUri="{UTC_DIRECT}" value="{format_pdt(now)}"/>')
    parts.append("</MPD>")
    return "\n".join(parts) + "\n"


def _event_stream(breaks: list[PlacedBreak], shown: tuple[Segment, ...], pto: int) -> str:
    """SCTE-35 EventStream: one Event per break overlapping the listed segments.

    Event@id is the splice_event_id, so it is stable across MPD updates (players de-duplicate
    on it); Event@duration is the actual break length once the in-point exists.
    """
    if not breaks or not shown:
        return f'<EventStream schemeIdUri="{SCTE35_SCHEME}" timescale="{EVENT_TIMESCALE}"/>'
    lo, hi = shown[0].seq, shown[-1].seq
    events = []
    for b in breaks:
        if b.out_seq > hi or (b.in_seq is not None and b.in_seq <= lo):
            continue
        length = b.actual_duration if b.actual_duration is not None else b.planned_duration
        # Event@presentationTime is on the media timeline; EventStream@presentationTimeOffset
        # (the static MPD's window start) maps it into the Period, like SegmentTemplate's.
        at = round(b.out_media * EVENT_TIMESCALE)
        ticks = round(length * EVENT_TIMESCALE)
        if at < pto:  # a static MPD starting mid-break: keep the remainder of the break
            at, ticks = pto, max(0, ticks - (pto - at))
        events.append(
            f'<Event presentationTime="{at}" duration="{ticks}" id="{b.ad_break.splice_event_id}">'
            f"<scte35:Signal><scte35:Binary>{b.cue_out.base64}</scte35:Binary></scte35:Signal></Event>"
        )
    return (
        f'<EventStream schemeIdUri="{SCTE35_SCHEME}" timescale="{EVENT_TIMESCALE}" '
        f'presentationTimeOffset="{pto}">' + "".join(events) + "</EventStream>"
    )
