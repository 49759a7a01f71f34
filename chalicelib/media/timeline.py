"""A channel's timeline: the single input every manifest is rendered from.

Manifests are a pure function of this object (render, never patch text). The pipeline
builds it from DynamoDB; tests build it by hand.

Time model:
- `Segment.start` is media time in seconds on the channel's output timeline (the same clock
  the transcoder writes into tfdt, starting at 0 for the channel's first segment).
- `Segment.program_date_time` is the wall-clock time of the segment's first frame.
- `Segment.seq` is the HLS media sequence number: the encoder's chunk number, contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .ladder import Ladder


@dataclass(frozen=True)
class Segment:
    seq: int
    start: float  # media seconds
    duration: float  # seconds
    program_date_time: datetime  # timezone-aware UTC
    discontinuity: bool = False  # EXT-X-DISCONTINUITY before this segment
    gap: bool = False  # missing chunk published as EXT-X-GAP
    # Renditions whose output for this segment exists. A segment is listed in a rendition's
    # playlist only once it exists there (or as a GAP once the deadline has passed).
    renditions: frozenset[str] = frozenset()

    @property
    def end(self) -> float:
        return self.start + self.duration


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
    marker_style: str = "both"  # "cue" (EXT-X-CUE-*), "daterange" or "both"
    # Discontinuities that have already left the stored segments (for DISCONTINUITY-SEQUENCE).
    discontinuities_before: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    # Largest EXT-X-TARGETDURATION already published for this run (0 = none yet). The
    # packager stores it and passes it back so trimming the longest segment out of the stored
    # history cannot make TARGETDURATION shrink mid-event (RFC 8216 6.2.1).
    published_target_duration: int = 0


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
    longest = max((s.duration for s in tl.segments), default=0.0)
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
        if prev is not None and s.seq != prev + 1:
            break
        if not (s.gap or names <= s.renditions):
            break
        prev = s.seq
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
    first = segs[0].seq if segs else 0
    i = 0
    while i < n:
        s = segs[i]
        if s.seq != first + i or not (s.gap or everyone <= s.renditions):
            break
        i += 1
    counts: dict[str, int] = {}
    for name in names:
        j = i
        while j < n:
            s = segs[j]
            if s.seq != first + j or not (s.gap or name in s.renditions):
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
        if s.seq >= first_seq:
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
