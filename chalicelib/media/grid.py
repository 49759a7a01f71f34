"""The channel's output grids: where a chunk's frames and audio samples sit, in integers.

Video grid: frame k of a run is at k / fps on the run's media clock (t = 0 is the run's first
frame). A chunk covering [start, end) of media time holds the grid frames whose times round into
that span, so two chunks of one encoder that meet on the source clock (end of one == start of the
next) meet exactly on the grid too, whatever the source's own rate (29.97 on a 30 fps ladder: 60
or 61 frames; 25 on 25: always 50). Each chunk computes its frames from its own timestamps, so
chunks transcoded out of order still tile the grid with no gap and no overlap.

Audio grid: AAC frames of `frame_samples` (1024) samples. When the encoder's AAC is copied, its own
frames are the grid (their phase against t = 0 is whatever the encoder chose, and stays fixed);
when audio is re-encoded, frame j starts at sample j * 1024 and a chunk owns the frames
[audio_frame_at(audio start), audio_frame_at(audio end)) of its *source audio*: the nearest grid
frame, then two frames back, so the encoder always has a whole frame of real samples after the last
frame it keeps even when the source's timestamps are off by up to half a frame (see
chalicelib.transcode.audio).

Times are integers: video in ticks of the ladder's video timescale (90 kHz), audio in samples.
Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

TICKS = 90_000  # source clock (MPEG-TS PTS) and the CMAF video timescale
AAC_FRAME = 1024
# Frames kept back at the end of a re-encoded chunk: the AAC encoder needs the samples after the
# last frame it emits (the MDCT window overlaps the next frame), and those come from this chunk.
# Two, because the boundary is rounded to the nearest frame (up to half a frame later).
ENCODE_MARGIN_FRAMES = 2


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


@dataclass(frozen=True)
class VideoSpan:
    first_frame: int  # grid frame index of the chunk's first output frame
    frames: int  # output frames

    def start(self, fps: Fraction, timescale: int = TICKS) -> int:
        return frame_ticks(self.first_frame, fps, timescale)

    def end(self, fps: Fraction, timescale: int = TICKS) -> int:
        return frame_ticks(self.first_frame + self.frames, fps, timescale)

    def duration(self, fps: Fraction, timescale: int = TICKS) -> int:
        return self.end(fps, timescale) - self.start(fps, timescale)


def frame_ticks(frame: int, fps: Fraction, timescale: int = TICKS) -> int:
    """Time of grid frame `frame` in timescale ticks (exact for every ladder rate we allow)."""
    value = Fraction(frame) * timescale / fps
    if value.denominator != 1:
        raise ValueError(f"frame {frame} at {fps} fps is not a whole number of 1/{timescale} s ticks")
    return int(value)


def video_span(start_ticks: int, end_ticks: int, fps: Fraction, timescale: int = TICKS) -> VideoSpan:
    """The grid frames of a chunk whose source video covers [start_ticks, end_ticks) of media time."""
    first = _round_half_up(Fraction(start_ticks) * fps / timescale)
    last = _round_half_up(Fraction(end_ticks) * fps / timescale)
    return VideoSpan(first, max(1, last - first))


def nominal_frames(segment_duration: float, fps: Fraction) -> int:
    return max(1, _round_half_up(Fraction(segment_duration).limit_denominator(1000) * fps))


def samples(ticks: int, sample_rate: int, timescale: int = TICKS) -> int:
    """90 kHz ticks -> audio samples, rounded half up (exact for 48 kHz AAC: 1920 ticks = 1024 samples)."""
    return _round_half_up(Fraction(ticks) * sample_rate / timescale)


def audio_frame_at(sample: int) -> int:
    """Re-encoded audio: the grid frame where a chunk whose source audio starts (or ends) at media
    sample `sample` starts (or ends) its frames. One frame is kept back: the encoder needs the samples
    after the last frame it emits, and those must be this chunk's real audio. A continuous encoder's
    chunks meet exactly (one's audio ends where the next one's starts), so neighbours computed
    independently, in any order, tile the grid.

    Rounded to the nearest frame, not down: MP4 chunks place their audio through an edit list in
    milliseconds, so one chunk's end and the next one's start disagree by up to half a millisecond.
    ffmpeg's MP4 chunks put the audio 21.33 ms (the AAC priming) after video that starts at 21 ms: a
    source phase right at a frame boundary, where rounding down split neighbours one frame apart
    (a 21 ms gap and A/V steps of a frame, measured). The rounding threshold is half a frame from
    where such sources sit."""
    return max(0, (sample + AAC_FRAME // 2) // AAC_FRAME - ENCODE_MARGIN_FRAMES)


@dataclass(frozen=True)
class AudioSpan:
    start: int  # samples on the run's media clock: tfdt of the audio segment
    frames: int  # AAC frames
    frame_samples: int = AAC_FRAME

    @property
    def duration(self) -> int:
        return self.frames * self.frame_samples

    @property
    def end(self) -> int:
        return self.start + self.duration


def encoded_audio_span(first_sample: int, end_sample: int) -> AudioSpan:
    """Re-encoded audio of a chunk whose source audio covers [first_sample, end_sample) of media time
    (or, without source audio, its video span in samples)."""
    first = audio_frame_at(first_sample)
    last = audio_frame_at(end_sample)
    return AudioSpan(first * AAC_FRAME, max(0, last - first))


def copied_audio_span(first_sample: int, packets: int, frame_samples: int = AAC_FRAME,
                      not_before: int = 0) -> tuple[AudioSpan, int]:
    """Copied AAC: the chunk's own frames, minus any that start before `not_before` (media time 0 for the
    run's first chunk, or where the previous segment's audio already ends). Returns the span and how
    many leading packets were dropped."""
    drop = 0
    if first_sample < not_before:
        drop = min(packets, -(-(not_before - first_sample) // frame_samples))
    return AudioSpan(first_sample + drop * frame_samples, packets - drop, frame_samples), drop


def slate_audio_span(video: VideoSpan, fps: Fraction, sample_rate: int, phase: int,
                     after: int | None = None, before: int | None = None, timescale: int = TICKS) -> AudioSpan:
    """Audio frames for a slot with no media: from the previous segment's audio end (`after`) or the
    grid frame at the slot's start, to the next segment's audio start (`before`) or the grid frame at
    the slot's end. `phase` is the run's audio grid offset in samples (0 for re-encoded audio)."""

    def grid(t: int) -> int:
        s = samples(t, sample_rate, timescale) - phase
        return phase + math.ceil(Fraction(s, AAC_FRAME)) * AAC_FRAME

    start = after if after is not None else max(0, grid(video.start(fps, timescale)))
    end = before if before is not None else grid(video.end(fps, timescale))
    frames = max(0, (end - start) // AAC_FRAME)
    return AudioSpan(start, frames)
