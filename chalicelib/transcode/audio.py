"""How a chunk's audio becomes one seamless piece of the channel's audio (issue #10).

Every chunk is transcoded by its own ffmpeg. A cold AAC encoder per chunk is what made the audio
drop out at every boundary: its first frame has no MDCT overlap partner and decodes as a fade-in.
Two ways out, chosen per chunk:

- **copy** (the common case: `slipstream push`, OBS, hardware encoders send AAC-LC at 48 kHz):
  the encoder's own AAC frames are kept as they are. Their timestamps place them on the channel's
  audio clock exactly (1024 samples = 1920 ticks at 48 kHz); a segment holds the frames its source
  chunk holds, so concatenated segments are the encoder's continuous stream, bit for bit.
- **encode** (any other codec, rate or layout): the encoder is primed with the tail of the previous
  chunk (pre-roll, `PREROLL_FRAMES` frames) and the chunk owns the frames of the global 1024-sample
  grid (`media.grid.encoded_audio_span`), so every frame it keeps was
  encoded with its real neighbours. The priming packet and the pre-roll frames are cut off in the
  box layer. A chunk owns the grid frames between where its *source audio* starts and ends (one
  frame kept back for the encoder's look-ahead), so neighbours agree without seeing each other.
  Without a usable previous chunk (missing, another format, a clock step) it starts
  cold (`AudioPlan.cold`, counted by the worker), padding with silence, and never waits.

Video-only sources get generated silence on the same grid ("silence"), so HLS and DASH always
have an audio rendition with every segment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from ..media import grid
from ..media.ladder import Ladder
from .probe import AudioInfo, MediaInfo

PREROLL_FRAMES = 3  # AAC frames of real audio fed before the first kept frame
AAC_PRIMING_PACKETS = 1  # ffmpeg's native AAC encoder delays its output by one frame (1024 samples)
# Frames fed after the last kept one: its MDCT window reaches into the next frame.
LOOKAHEAD_FRAMES = 2


@dataclass(frozen=True)
class AudioPlan:
    mode: str  # "copy" | "encode" | "silence"
    span: grid.AudioSpan  # what the segment holds: tfdt = span.start, span.frames AAC frames
    skip: int  # output packets before the first kept one (dropped copies, or priming + pre-roll)
    input_start: int = 0  # encode/silence: media sample where the encoder's input starts
    input_samples: int = 0  # encode/silence: how many samples the encoder is fed
    preroll: bool = False  # the previous chunk's tail is fed first
    cold: bool = False  # re-encoded without real audio before the first kept frame
    # encode: media sample of the first sample the decoder will output (the first audio packet of this
    # chunk, or of the previous one with pre-roll); the input window is cut or padded by sample count.
    decoded_from: int = 0


def can_copy(audio: AudioInfo | None, ladder: Ladder, container: str = "mpegts") -> bool:
    """The source's AAC can go out as it is: AAC-LC at the ladder's rate, channels and bitrate cap, from
    MPEG-TS. MP4 chunks are always re-encoded: their audio timing comes through edit lists and coarse
    (often millisecond) timescales, so chunk k's frames do not start where chunk k-1's end and copied
    frames, which cannot be cut, would leave gaps or overlaps at the boundaries."""
    a = ladder.audio
    return (
        container == "mpegts"
        and audio is not None
        and a.copy_max_bitrate > 0
        and audio.codec == "aac"
        and audio.profile == "LC"
        and audio.sample_rate == a.sample_rate
        and audio.channels == a.channels
        and audio.frame_samples == grid.AAC_FRAME
        and audio.contiguous
        and audio.packets > 0
        and (audio.bitrate or 0) <= a.copy_max_bitrate
    )


def plan(ladder: Ladder, info: MediaInfo, start_ticks: int, video: grid.VideoSpan, *,
         not_before: int | None = None, not_after: int | None = None, preroll: AudioInfo | None = None,
         mode: str = "auto") -> AudioPlan:
    """The audio of one chunk. `start_ticks`: the chunk's first video frame on the run's media clock
    (source-derived, before snapping to the grid); `not_before` / `not_after`: samples where the
    previous segment's audio ends and the next one's starts, when they are already fixed (published
    or transcoded): frames that would overlap them are left out; `preroll`: the previous chunk's
    audio, when it continues into this one."""
    p = _plan(ladder, info, start_ticks, video, not_before=not_before, preroll=preroll, mode=mode)
    return _bounded(p, not_before, not_after, ts=ladder.container == "ts")


def _bounded(p: AudioPlan, not_before: int | None, not_after: int | None, *, ts: bool = False) -> AudioPlan:
    """`p` without the frames a neighbour already holds. Re-encoded frames are cut off the front by
    skipping output packets (the box layer drops them), except in MPEG-TS, where every packet the encoder
    emits is written: there the encoder's input starts later instead, so no frame overlaps the previous
    segment."""
    span, skip, start, samples = p.span, p.skip, p.input_start, p.input_samples
    if not_before is not None and span.start < not_before and p.mode != "copy":
        drop = min(span.frames - 1, -(-(not_before - span.start) // span.frame_samples))
        if drop > 0:
            span = grid.AudioSpan(span.start + drop * span.frame_samples, span.frames - drop, span.frame_samples)
            if ts:
                start, samples = start + drop * span.frame_samples, samples - drop * span.frame_samples
            else:
                skip += drop
    if not_after is not None and span.end > not_after:
        keep = max(1, (not_after - span.start) // span.frame_samples)
        span = grid.AudioSpan(span.start, min(span.frames, keep), span.frame_samples)
    if span == p.span:
        return p
    return replace(p, span=span, skip=skip, input_start=start, input_samples=samples)


def _plan(ladder: Ladder, info: MediaInfo, start_ticks: int, video: grid.VideoSpan, *,
          not_before: int | None, preroll: AudioInfo | None, mode: str) -> AudioPlan:
    sr = ladder.audio.sample_rate
    if mode not in ("auto", "copy", "encode"):
        raise ValueError(f"unknown audio mode {mode!r}")
    if info.audio is None or not info.has_audio:
        fps = ladder.frame_rate
        span = grid.encoded_audio_span(grid.samples(video.start(fps), sr), grid.samples(video.end(fps), sr))
        silent = _encoded(ladder, span, "silence", preroll=False)
        return replace(silent, decoded_from=silent.input_start)
    if mode != "encode" and can_copy(info.audio, ladder, info.container):
        first = grid.samples(start_ticks + info.audio.start_ticks - info.start_ticks, sr)
        span, drop = grid.copied_audio_span(first, info.audio.packets, grid.AAC_FRAME, max(0, not_before or 0))
        if span.frames > 0:
            return AudioPlan("copy", span, drop)
    usable = preroll is not None and _continues(preroll, info.audio)
    first = grid.samples(start_ticks + info.audio.start_ticks - info.start_ticks, sr)
    end = grid.samples(start_ticks + info.audio.end_ticks - info.start_ticks, sr)
    plan = _encoded(ladder, grid.encoded_audio_span(first, end), "encode", preroll=usable)
    source = preroll.start_ticks if usable and preroll is not None else info.audio.start_ticks
    return replace(plan, decoded_from=grid.samples(start_ticks + source - info.start_ticks, sr))


def _continues(prev: AudioInfo, cur: AudioInfo) -> bool:
    """The previous chunk's audio can prime this one's encoder: same format, and it ends where this
    one starts on the source clock (within one frame; further apart is a clock step or a loss)."""
    same = (prev.codec, prev.sample_rate, prev.channels) == (cur.codec, cur.sample_rate, cur.channels)
    frame_ticks = Fraction(grid.TICKS * max(cur.frame_samples, grid.AAC_FRAME), max(cur.sample_rate, 1))
    return same and prev.packets > 0 and abs(cur.start_ticks - prev.end_ticks) <= frame_ticks


def _encoded(ladder: Ladder, span: grid.AudioSpan, mode: str, *, preroll: bool) -> AudioPlan:
    if ladder.container == "ts":
        # MPEG-TS cannot cut frames off a stream (no edit lists, no box layer here): the encoder starts
        # at the span, cold, and its priming frame stays (TS players drop it by its timestamp).
        total = span.end + LOOKAHEAD_FRAMES * grid.AAC_FRAME - span.start
        return AudioPlan(mode, span, 0, input_start=span.start, input_samples=total, preroll=False,
                         cold=mode == "encode" and span.start > 0)
    start = max(0, span.start - PREROLL_FRAMES * grid.AAC_FRAME)
    lead = (span.start - start) // grid.AAC_FRAME
    total = span.end + LOOKAHEAD_FRAMES * grid.AAC_FRAME - start
    return AudioPlan(mode, span, AAC_PRIMING_PACKETS + lead, input_start=start, input_samples=total,
                     preroll=preroll, cold=mode == "encode" and not preroll and span.start > 0)
