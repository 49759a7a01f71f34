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
from datetime import datetime

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
