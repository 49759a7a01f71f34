"""A channel's timeline: the single input every manifest is rendered from.

Manifests are a pure function of this object (render, never patch text). The pipeline
builds it from DynamoDB; tests build it by hand.

Time model (DESIGN "Time, grids and runs"):
- A channel is a sequence of *runs* (one per start). `Segment.run` names the run; it is part of
  the segment's URL (`{rendition}/{run}/{seq:08d}.m4s`), so nothing published is ever rewritten
  by a later run. `Segment.seq` is the encoder's chunk number within its run (the file name).
- `Segment.msn` is the HLS media sequence number: contiguous across runs, never reused.
- `Segment.start` is media time in seconds on the run's clock (the clock the transcoder writes
  into tfdt, starting at 0 for the run's first frame); `v_start`/`v_dur` are the same in exact
  90 kHz ticks, `a_start`/`a_dur` the audio segment's tfdt and length in samples (audio segments
  hold whole AAC frames, so they differ from the video's by up to a frame).
- `Segment.program_date_time` is the wall-clock time of the segment's first frame. Within a
  stretch (a Period) it is the stretch's anchor plus media time; a new stretch starts where the
  previous one ended or later, so PDT never goes back.
- `Period` is one continuous stretch of media: a run, or the part of a run after an encoder clock
  step. HLS marks its first segment with EXT-X-DISCONTINUITY; DASH gives it its own Period, whose
  id, start and presentationTimeOffset never change once published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .ladder import VIDEO_TIMESCALE, Ladder

IFrames = tuple[tuple[int, int, int], ...]  # (byte offset, bytes, duration in ticks) per IDR


@dataclass(frozen=True)
class Segment:
    seq: int
    start: float  # media seconds (video) on the run's clock
    duration: float  # seconds (video)
    program_date_time: datetime  # timezone-aware UTC
    discontinuity: bool = False  # EXT-X-DISCONTINUITY before this segment (first of a Period)
    gap: bool = False  # EXT-X-GAP in HLS (the URL still holds slate, which DASH lists as media)
    # Renditions whose output for this segment exists. A segment is listed in a rendition's
    # playlist only once it exists there (or as a GAP once the deadline has passed).
    renditions: frozenset[str] = frozenset()
    run: str = ""  # URL folder of the run ("" = no run folder)
    msn: int | None = None  # HLS media sequence number (None: seq)
    period: str = ""  # id of the DASH Period it belongs to
    v_start: int | None = None  # exact video tfdt, 90 kHz (None: round(start * 90000))
    v_dur: int | None = None
    a_start: int | None = None  # exact audio tfdt in samples (None: the video's, in samples)
    a_dur: int | None = None
    slate: bool = False  # the slate stands in for a missing, late or corrupt chunk
    iframes: Mapping[str, IFrames] = field(default_factory=dict, compare=False, hash=False)
    # Audio PDT differs from the video's by the audio's offset inside the segment.
    audio_pdt: datetime | None = None

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def number(self) -> int:
        return self.seq if self.msn is None else self.msn

    def video_ticks(self) -> tuple[int, int]:
        start = self.v_start if self.v_start is not None else round(self.start * VIDEO_TIMESCALE)
        if self.v_dur is not None:
            return start, self.v_dur
        return start, round(self.end * VIDEO_TIMESCALE) - start

    def audio_samples(self, rate: int) -> tuple[int, int]:
        start = self.a_start if self.a_start is not None else round(self.start * rate)
        if self.a_dur is not None:
            return start, self.a_dur
        return start, round(self.end * rate) - start

    def audio_duration(self, rate: int) -> float:
        return self.audio_samples(rate)[1] / rate

    def audio_date(self) -> datetime:
        return self.audio_pdt if self.audio_pdt is not None else self.program_date_time


@dataclass(frozen=True)
class Period:
    """A continuous stretch: DASH Period, HLS discontinuity domain. Immutable once published."""

    id: str
    start: float  # seconds from availabilityStartTime (Period@start)
    run: str = ""
    v0: int = 0  # presentationTimeOffset, video (90 kHz ticks): the first segment's tfdt
    a0: int = 0  # presentationTimeOffset, audio (samples): the same instant on the audio clock


@dataclass(frozen=True)
class Placement:
    """Where a break was put when its out-point was first published (kept after that segment left)."""

    out_seq: int
    out_run: str
    out_pdt: datetime
    out_media: float
    out_period: str = ""
    in_seq: int | None = None
    in_run: str = ""
    in_pdt: datetime | None = None
    in_media: float | None = None


@dataclass(frozen=True)
class AdBreak:
    id: str  # stable id, unique within the channel; DATERANGE ID derives from it
    splice_event_id: int  # SCTE-35 splice_event_id (32 bit)
    start: datetime  # requested program time of the splice-out (UTC)
    duration: float  # planned break duration, seconds
    kind: str = "splice_insert"  # or "time_signal"
    cancelled: bool = False  # cancelled before it started: appears nowhere
    returned_at: datetime | None = None  # early return (in-point) if the operator ended it
    source: str = "api"  # "api" or "source" (passed through from the encoder)
    scte35_out: str | None = None  # base64 cue, when passing through a source cue verbatim
    scte35_in: str | None = None
    placement: Placement | None = None  # as first published (the packager keeps it)
    # Source breaks are placed on their run's media clock (the splice PTS), not by program date time.
    run: str = ""  # the run whose media clock `media_time` / `return_media` are on
    media_time: float | None = None  # splice-out, media seconds of `run`
    return_media: float | None = None  # the source's cue-in (an early return), media seconds of `run`


@dataclass(frozen=True)
class AdMarkers:
    """How breaks are marked besides the HLS dialect (`Timeline.marker_style`)."""

    dash_scheme: str = "binary"  # "binary": urn:scte:scte35:2014:xml+bin; "xml": urn:scte:scte35:2013:xml
    avail_periods: bool = False  # DASH: a new Period at each break's out- and in-point (multi-period)
    asset_uri: str = ""  # interstitials: X-ASSET-URI (an HLS asset played in the break)
    asset_list: str = ""  # interstitials: X-ASSET-LIST (a JSON asset list), instead of asset_uri
    restrict: str = "SKIP,JUMP"  # interstitials: X-RESTRICT


@dataclass(frozen=True)
class Timeline:
    channel_id: str
    ladder: Ladder
    segments: tuple[Segment, ...]  # ascending seq; may include segments outside the window
    ad_breaks: tuple[AdBreak, ...] = ()
    availability_start: datetime | None = None  # DASH availabilityStartTime: PDT of media time 0
    live_window: float = 30.0  # seconds of media in a live media playlist
    dvr_window: float = 7200.0  # seconds kept for the DVR playlist and timeShiftBufferDepth
    ended: bool = False  # live-to-VOD: ENDLIST / static MPD
    # HLS ad-marker dialects, comma-separated: daterange, elemental, scte35_enhanced, interstitials; the
    # older names "cue" (= scte35_enhanced) and "both" (= scte35_enhanced,daterange) still work.
    marker_style: str = "both"
    ad_markers: AdMarkers = field(default_factory=AdMarkers)
    # Discontinuities that have already left the stored segments (for DISCONTINUITY-SEQUENCE).
    discontinuities_before: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    # Largest EXT-X-TARGETDURATION already published for this run (0 = none yet). The
    # packager stores it and passes it back so trimming the longest segment out of the stored
    # history cannot make TARGETDURATION shrink mid-event (RFC 8216 6.2.1).
    published_target_duration: int = 0
    # The channel's fixed EXT-X-TARGETDURATION (0: derive it). RFC 8216 6.2.1: never changes.
    fixed_target_duration: int = 0
    periods: tuple[Period, ...] = ()  # the Periods the segments belong to, in order
    codecs: Mapping[str, str] = field(default_factory=dict)  # rendition -> RFC 6381, from the bitstream
    # Where the break markers of a future break are first published: with the last segment before
    # its splice point (RFC 8216bis 4.4.5.1.1).
    announce_breaks: bool = True


# --- window helpers -------------------------------------------------------------------------


def round_half_up(seconds: float) -> int:
    """RFC 8216 4.3.3.1 compares EXTINF *rounded to the nearest integer* with TARGETDURATION."""
    return int(seconds + 0.5)


def target_duration(tl: Timeline) -> int:
    """EXT-X-TARGETDURATION for the channel.

    RFC 8216 forbids changing it during a live event, so it must not depend on which segments
    happen to be in the window. We take the maximum of the configured segment duration and
    every segment the timeline still stores (the whole DVR history, not just the live window),
    each rounded half-up as the RFC's rule does. A window sliding over stored segments
    therefore never changes it; only a chunk longer than any seen before could, and ingest
    rejects chunks that far off the configured duration. `tl.published_target_duration`
    (what was already published) is a floor, so trimming old segments cannot lower it.
    Never less than 1.
    """
    if tl.fixed_target_duration > 0:
        return tl.fixed_target_duration
    rate = tl.ladder.audio.sample_rate
    longest = max((max(s.duration, s.audio_duration(rate)) for s in tl.segments), default=0.0)
    return max(
        1, tl.published_target_duration, round_half_up(tl.ladder.segment_duration), round_half_up(longest)
    )


def published(tl: Timeline, renditions: tuple[str, ...] | None = None) -> tuple[Segment, ...]:
    """Segments a playlist for `renditions` may list: the longest contiguous run from the start.

    A segment qualifies once it exists in every named rendition, or is a GAP. We stop at the
    first one that does not (or at a hole in the sequence numbers) rather than skipping it:
    media sequence numbers in a playlist must be contiguous, and DASH `$Number$` addressing
    counts entries, so listing a later segment across a hole would mislabel it.
    `renditions=None` means "every rendition of the ladder".
    """
    names = frozenset(renditions if renditions is not None else tl.ladder.names)
    segs = tl.segments
    out = 0
    prev: int | None = None
    for s in segs:
        if prev is not None and s.number != prev + 1:
            break
        if not (s.gap or names <= s.renditions):
            break
        prev = s.number
        out += 1
    return segs[:out]


def published_counts(tl: Timeline) -> dict[str, int]:
    """For every rendition of the ladder, how many of `tl.segments` `published` would return.

    One pass serves all renditions: first the run that every rendition has finished (the
    common case is "all but the newest one or two"), then each rendition continues alone.
    """
    names = tl.ladder.names
    everyone = frozenset(names)
    segs = tl.segments
    n = len(segs)
    first = segs[0].number if segs else 0
    i = 0
    while i < n:
        s = segs[i]
        if s.number != first + i or not (s.gap or everyone <= s.renditions):
            break
        i += 1
    counts: dict[str, int] = {}
    for name in names:
        j = i
        while j < n:
            s = segs[j]
            if s.number != first + j or not (s.gap or name in s.renditions):
                break
            j += 1
        counts[name] = j
    return counts


def window_of(segments: tuple[Segment, ...], seconds: float, target: int) -> tuple[Segment, ...]:
    """The newest suffix of `segments` covering `seconds`, applying RFC 8216 6.2.2.

    A segment is only dropped if what remains still lasts at least max(seconds, 3 x target),
    so the result is the shortest suffix whose duration reaches that floor (or everything,
    while the channel is younger than the window).
    """
    need = max(seconds, 3.0 * target)
    total = 0.0
    i = len(segments)
    while i > 0 and total < need - 1e-9:
        i -= 1
        total += segments[i].duration
    return segments[i:]


def window(tl: Timeline, seconds: float) -> tuple[Segment, ...]:
    """Window over the segments published in every rendition (see `published`)."""
    return window_of(published(tl), seconds, target_duration(tl))


def discontinuity_sequence(tl: Timeline, first_seq: int) -> int:
    """EXT-X-DISCONTINUITY-SEQUENCE: discontinuities attached to segments that left the window."""
    n = tl.discontinuities_before
    for s in tl.segments:
        if s.number >= first_seq:
            break
        if s.discontinuity:
            n += 1
    return n


def media_start(tl: Timeline) -> datetime | None:
    """Wall-clock time of media time 0 (DASH availabilityStartTime)."""
    if tl.availability_start is not None:
        return tl.availability_start
    if not tl.segments:
        return None
    first = tl.segments[0]
    return first.program_date_time - timedelta(seconds=first.start)
