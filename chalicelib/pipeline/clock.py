"""Media time: where a source chunk sits on the channel's continuous output timeline.

The output timeline (tfdt, SegmentTimeline@t, Segment.start) starts at 0 for the run and must
be continuous across chunks, so it is derived from the source clock, not from chunk counting:
chunk durations from an encoder are never exactly the nominal duration, and counting would drift
away from the audio/video timestamps inside the chunks.

- The first chunk to arrive in a run fixes the channel's `base` (a conditional write, so two
  concurrent first chunks agree). If that chunk is seq n > 0 (chunks raced, or the encoder
  resumed), base = start_time - n * segment_duration, so seq 0 would have started at ~0.
- media_start = start_time - base + k * 2**33/90000 for the k that lands closest to where the
  sequence number says the chunk should be (seq * segment_duration). MPEG-TS timestamps are
  33-bit at 90 kHz and wrap every ~26.5 h; choosing k by the expected position instead of
  "unwrap once if negative" stays right through any number of wraps and for chunks that
  arrive out of order around a wrap. MP4 sources never wrap; the rule is then a no-op.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import InvalidMediaError

if TYPE_CHECKING:
    from ..records import ChannelRecord
    from ..settings import Settings

PTS_WRAP = 2**33 / 90_000  # seconds: 95443.717...
WRAP_TICKS = 2**33
TICKS = 90_000


def base_for(start_time: float, seq: int, segment_duration: float) -> float:
    """The run's base from its first-arriving chunk."""
    return start_time - seq * segment_duration


def media_start(start_time: float, base: float, seq: int, segment_duration: float) -> float:
    """Media seconds of a chunk on the run's output timeline (never negative)."""
    if not math.isfinite(start_time):
        raise InvalidMediaError(f"chunk {seq} has no usable start time ({start_time})")
    raw = start_time - base
    expected = seq * segment_duration
    k = round((expected - raw) / PTS_WRAP)
    value = raw + k * PTS_WRAP
    if abs(value - expected) > clock_reset_tolerance(segment_duration):
        # The encoder restarted its clock (or `push --start-seq` resumed a run): trust the
        # sequence number. The packager sees the jump against the previous segment and marks
        # an EXT-X-DISCONTINUITY, which players handle; a huge tfdt jump they do not.
        value = expected
    return max(0.0, round(value, 6))


def clock_reset_tolerance(segment_duration: float) -> float:
    """How far a chunk's clock may stray from its sequence position before it counts as a reset:
    a few chunks of encoder jitter, at least a minute."""
    return max(60.0, 30 * segment_duration)


def base_ticks(start_ticks: int, seq: int, segment_duration: float) -> int:
    """The run's clock base (source ticks at media time 0) from its first-arriving valid chunk."""
    return start_ticks - round(seq * segment_duration * TICKS)


def media_ticks(start_ticks: int, base: int, seq: int, segment_duration: float) -> int:
    """Where a chunk's first frame sits on the run's media clock, in 90 kHz ticks (exact; see media_start
    for the wrap and clock-reset rules)."""
    raw = start_ticks - base
    expected = round(seq * segment_duration * TICKS)
    k = round((expected - raw) / WRAP_TICKS)
    value = raw + k * WRAP_TICKS
    if abs(value - expected) > clock_reset_tolerance(segment_duration) * TICKS:
        value = expected
    return max(0, value)


INPUT_LOSS_FACTOR = 1.5  # the default input-loss wait, in segment durations (RFC 8216bis: 1.5 x TARGETDURATION)


def input_loss_wait(meta: ChannelRecord, st: Settings) -> float | None:
    """Seconds past its due time a never-received slot waits before it is slated with nothing later ready
    (input loss): the channel's (negative: off), else the stage's (INPUT_LOSS_WAIT; 0 or off turns it off),
    else INPUT_LOSS_FACTOR segment durations. None: off, and always for low-latency channels (missing parts
    have their own deadline).

    On by default (MediaLive's input-loss behaviour is too): without it a missing chunk with nothing later
    ready froze the live edge until the next chunk was transcoded, and the DASH engines, which play close to
    the edge, stalled (fault soak: dash.js and shaka 2.1-2.3 s). 1.5 segments is more than the one segment a
    chunk one slot out of order comes late; a chunk whose upload is in the ingest bucket but not yet at
    ingest keeps its slot (the packager looks first). The trade: a chunk uploaded later than that is
    dropped and counted as late, and an encoder that stops without a stop gets up to
    assemble.INPUT_LOSS_SEGMENTS slate segments after its last chunk."""
    if meta.part_duration or meta.input_loss_wait < 0:
        return None
    if meta.input_loss_wait:
        return float(meta.input_loss_wait)
    stage = getattr(st, "input_loss_wait", None)
    if stage is None:  # not set for the stage: the default
        return INPUT_LOSS_FACTOR * float(meta.segment_duration or st.segment_duration)
    return float(stage) if stage else None
