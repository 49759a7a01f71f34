"""Build the channel Timeline from stored chunk state: which segments are published, which wait,
which become EXT-X-GAP. Pure: no boto3, no clock reads (`now` is an argument).

Rules (issue #5):
- The published list is contiguous from the first kept seq: every seq appears, as a real
  segment or as a GAP, never as a hole (a hole shifts every later media sequence number and
  breaks players).
- A chunk that finished before its predecessor waits: the tail stops at the first seq that is
  neither ready nor overdue.
- A seq becomes a GAP when its chunk was rejected (invalid media), or when it is overdue:
  never received while a later chunk arrived more than `gap_deadline` ago, or received but not
  transcoded PROCESSING_FACTOR x `gap_deadline` after it arrived.
- Once published, a GAP stays a GAP (PUB.gaps): RFC 8216 6.2.1 lets a live playlist only grow at
  the end and shrink at the start, so a late chunk cannot rewrite history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..media.ladder import Ladder
from ..media.timeline import AdBreak, Segment, Timeline

RECEIVED, INVALID = "received", "invalid"
# Beyond this many seqs past the first kept one, a chunk is ignored (ingest already rejects it):
# protects the loop below from a hostile seq like 999999999999.
MAX_SPAN = 100_000
# A chunk that arrived but is still being transcoded is late, not missing: after a burst (an
# encoder catching up) it sits in the transcode queue, and after a crash it waits for the SQS
# retry. It becomes a GAP only after this many gap deadlines, so content that exists is not
# thrown away for a queueing delay, yet a dead transcode cannot hold the live edge forever.
PROCESSING_FACTOR = 3


@dataclass(frozen=True)
class ChunkState:
    """One SEG# item, as the packager needs it."""

    seq: int
    status: str  # RECEIVED | INVALID
    received_at: datetime
    media_start: float | None = None
    duration: float | None = None
    done: frozenset[str] = frozenset()  # renditions whose output exists in the origin


@dataclass(frozen=True)
class PublishState:
    """The PUB item fields the assembly needs (what earlier versions already promised players)."""

    first_seq: int | None = None  # first seq still kept (DVR window start)
    published_seq: int = -1  # last seq listed in the published playlists
    gaps: frozenset[int] = frozenset()
    discontinuities_before: int = 0
    # How the first kept segment was published while its predecessor was still listed: once that
    # predecessor has left, a render can no longer derive them, and RFC 8216 6.2.1 forbids changing
    # a listed segment (its EXT-X-DISCONTINUITY, or a GAP's program date time).
    first_start: float | None = None
    first_disc: bool = False


@dataclass(frozen=True)
class ChannelShape:
    """Channel settings that shape the timeline."""

    channel_id: str
    ladder: Ladder
    segment_duration: float
    gap_deadline: float
    availability_start: datetime
    live_window: float = 30.0
    dvr_window: float = 7200.0
    marker_style: str = "both"


@dataclass(frozen=True)
class Plan:
    timeline: Timeline
    state: PublishState  # the PUB fields after publishing this timeline
    newly_published: tuple[ChunkState, ...]  # real segments listed for the first time
    new_gaps: tuple[int, ...]
    recheck_at: datetime | None  # when the waiting tail turns into a GAP (schedule a re-run)
    changed: bool = field(default=True)


def discontinuity_tolerance(segment_duration: float) -> float:
    """A timestamp jump bigger than this between neighbours is a discontinuity, smaller is jitter."""
    return max(0.25, segment_duration / 4)


def plan(
    shape: ChannelShape,
    chunks: Iterable[ChunkState],
    pub: PublishState,
    now: datetime,
    ad_breaks: Sequence[AdBreak] = (),
    final: bool = False,
) -> Plan:
    """The timeline to publish now. `final=True` (live-to-VOD): nothing waits any more; missing
    chunks before the last ready one become GAPs and the unfinished tail is dropped."""
    by_seq = {c.seq: c for c in chunks}
    renditions = frozenset(shape.ladder.names)
    deadline = timedelta(seconds=shape.gap_deadline)
    start_seq = pub.first_seq if pub.first_seq is not None else min(by_seq, default=0)
    by_seq = {s: c for s, c in by_seq.items() if start_seq <= s < start_seq + MAX_SPAN}
    last_seq = max(by_seq, default=start_seq - 1)
    last_ready = max((c.seq for c in by_seq.values() if _ready(c, renditions)), default=-1)
    if pub.first_seq is None and by_seq and start_seq > 0 and not final:
        # Nothing published yet and the run does not start at seq 0: a lower seq whose event is
        # merely late would be cut off for good by publishing now. Give it one chunk duration.
        first_arrival = min(c.received_at for c in by_seq.values())
        hold_until = first_arrival + timedelta(seconds=shape.segment_duration)
        if now < hold_until:
            empty = Timeline(channel_id=shape.channel_id, ladder=shape.ladder, segments=(),
                             availability_start=shape.availability_start, live_window=shape.live_window,
                             dvr_window=shape.dvr_window, marker_style=shape.marker_style)
            return Plan(empty, pub, (), (), hold_until, changed=False)

    # Earliest arrival among chunks after each seq: a missing seq is overdue once a successor
    # arrived more than the deadline ago (the encoder has clearly moved on).
    later_arrival: dict[int, datetime] = {}
    earliest: datetime | None = None
    for seq in range(last_seq, start_seq - 1, -1):
        later_arrival[seq] = earliest if earliest is not None else now
        c = by_seq.get(seq)
        if c is not None and (earliest is None or c.received_at < earliest):
            earliest = c.received_at

    out: list[Segment] = []
    listed: list[ChunkState] = []
    gaps = set(pub.gaps)
    new_gaps: list[int] = []
    recheck_at: datetime | None = None
    prev_end: float | None = None
    complete_seq = pub.published_seq  # end of the prefix listed in *every* playlist
    prefix_open = True
    tol = discontinuity_tolerance(shape.segment_duration)
    for seq in range(start_seq, last_seq + 1):
        c = by_seq.get(seq)
        if seq == start_seq and pub.first_seq == seq and pub.first_start is not None:
            prev_end = pub.first_start  # as if the departed predecessor were still there
        if seq in gaps or (c is not None and c.status == INVALID):
            seg = _gap(shape, seq, c, prev_end)
        elif c is not None and _ready(c, renditions):
            seg = _real(shape, c, prev_end, tol)
            if prefix_open:
                listed.append(c)
        else:
            if final and seq > last_ready:
                break
            if final:
                due = now
            elif c is not None:
                due = c.received_at + deadline * PROCESSING_FACTOR  # here, only slow: wait longer
            else:
                due = later_arrival[seq] + deadline
            if due <= now:
                # Overdue: a GAP in every rendition (a rendition that finished late would
                # otherwise hold its playlist back forever).
                seg = _gap(shape, seq, c, prev_end)
            elif c is not None and c.done and c.media_start is not None:
                # Some renditions finished (fan-out per rendition): list it where it exists;
                # the renderer stops each rendition at its first missing segment.
                recheck_at = due if recheck_at is None else min(recheck_at, due)
                seg = _real(shape, c, prev_end, tol)
                prefix_open = False
            else:
                recheck_at = due if recheck_at is None else min(recheck_at, due)
                break
        if seq == start_seq and pub.first_seq == seq and pub.first_start is not None:
            seg = replace(seg, discontinuity=pub.first_disc)
        if seg.gap and seq not in gaps:
            gaps.add(seq)
            new_gaps.append(seq)
        if prefix_open:
            complete_seq = max(complete_seq, seq)
        out.append(seg)
        prev_end = seg.end

    kept, dropped = _window(out, shape.dvr_window)
    dropped_disc = sum(1 for s in dropped if s.discontinuity)
    published_seq = complete_seq
    first_seq = kept[0].seq if kept else (pub.first_seq if pub.first_seq is not None else None)
    state = PublishState(
        first_seq=first_seq,
        published_seq=published_seq,
        gaps=frozenset(g for g in gaps if first_seq is None or g >= first_seq),
        discontinuities_before=pub.discontinuities_before + dropped_disc,
        first_start=kept[0].start if kept else pub.first_start,
        first_disc=kept[0].discontinuity if kept else pub.first_disc,
    )
    timeline = Timeline(
        channel_id=shape.channel_id,
        ladder=shape.ladder,
        segments=tuple(kept),
        ad_breaks=tuple(ad_breaks),
        availability_start=shape.availability_start,
        live_window=shape.live_window,
        dvr_window=shape.dvr_window,
        ended=final,
        marker_style=shape.marker_style,
        discontinuities_before=state.discontinuities_before,
    )
    fresh = tuple(c for c in listed if c.seq > pub.published_seq)
    changed = bool(out) and (published_seq != pub.published_seq or final or bool(new_gaps)
                             or not prefix_open)
    return Plan(timeline, state, fresh, tuple(new_gaps), recheck_at, changed)


def _ready(c: ChunkState, renditions: frozenset[str]) -> bool:
    return c.status == RECEIVED and c.media_start is not None and renditions <= c.done


def _pdt(shape: ChannelShape, start: float) -> datetime:
    return shape.availability_start + timedelta(seconds=start)


def _real(shape: ChannelShape, c: ChunkState, prev_end: float | None, tol: float) -> Segment:
    start = float(c.media_start if c.media_start is not None else c.seq * shape.segment_duration)
    duration = float(c.duration or shape.segment_duration)
    disc = prev_end is not None and abs(start - prev_end) > tol
    return Segment(
        seq=c.seq, start=start, duration=duration, program_date_time=_pdt(shape, start),
        discontinuity=disc, renditions=frozenset(c.done),
    )


def _gap(shape: ChannelShape, seq: int, c: ChunkState | None, prev_end: float | None) -> Segment:
    if prev_end is not None:
        start = prev_end
    elif c is not None and c.media_start is not None:
        start = c.media_start
    else:
        start = seq * shape.segment_duration
    # A GAP stands in for one chunk: nominal duration keeps EXTINF within TARGETDURATION.
    seg = Segment(seq=seq, start=start, duration=shape.segment_duration,
                  program_date_time=_pdt(shape, start), gap=True)
    return replace(seg, renditions=frozenset())


def _window(segments: list[Segment], dvr_window: float) -> tuple[list[Segment], list[Segment]]:
    """Keep the segments whose end lies within the DVR window of the newest end."""
    if not segments:
        return [], []
    horizon = segments[-1].end - dvr_window
    cut = 0
    while cut < len(segments) - 1 and segments[cut].end <= horizon:
        cut += 1
    return segments[cut:], segments[:cut]
