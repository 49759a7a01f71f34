"""The output grids: chunks placed independently, in any order, must tile the channel's clock exactly."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.media import grid


@pytest.mark.parametrize(
    ("source_fps", "ladder_fps", "frames_per_chunk"),
    [(Fraction(25), Fraction(25), 50), (Fraction(30000, 1001), Fraction(30), 60),
     (Fraction(30000, 1001), Fraction(25), 60), (Fraction(24000, 1001), Fraction(25), 48),
     (Fraction(50), Fraction(25), 100), (Fraction(60000, 1001), Fraction(30), 120),
     (Fraction(30000, 1001), Fraction(30000, 1001), 60)],
)
def test_given_chunks_of_any_source_rate_when_placed_one_by_one_then_the_grid_is_tiled_without_gap_or_overlap(
        source_fps: Fraction, ladder_fps: Fraction, frames_per_chunk: int) -> None:
    chunk_ticks = Fraction(frames_per_chunk * 90_000) / source_fps
    spans = []
    order = list(range(300))
    random.Random(3).shuffle(order)  # the order does not matter: each chunk uses only its own timestamps
    for k in order:
        start, end = round(k * chunk_ticks), round((k + 1) * chunk_ticks)
        spans.append((k, grid.video_span(start, end, ladder_fps)))
    spans.sort(key=lambda x: x[0])
    for (_, a), (_, b) in itertools.pairwise(spans):
        assert a.first_frame + a.frames == b.first_frame
    total = sum(s.frames for _, s in spans)
    # 300 chunks of source time hold as many ladder frames as that time does (to the nearest frame).
    assert total == round(300 * chunk_ticks * ladder_fps / 90_000)
    assert spans[0][1].first_frame == 0


def test_given_ladder_rates_when_frames_timed_then_whole_90khz_ticks() -> None:
    assert grid.frame_ticks(1, Fraction(25)) == 3600
    assert grid.frame_ticks(1, Fraction(30000, 1001)) == 3003
    with pytest.raises(ValueError, match="not a whole number"):
        grid.frame_ticks(1, Fraction(24000, 1001))


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=200))
def test_given_copied_aac_when_placed_after_a_known_end_then_never_overlaps(first: int, packets: int) -> None:
    not_before = first + 1024 * random.Random(first).randint(-3, 3)
    span, drop = grid.copied_audio_span(first, packets, 1024, not_before)
    assert span.start >= not_before or span.frames == 0
    assert span.start - first == drop * 1024 and span.frames == packets - drop


def test_given_continuous_source_audio_when_reencoded_chunks_are_placed_independently_then_they_tile_the_grid() -> None:
    # 44.1 kHz source frames of 1024 samples land on a 48 kHz clock: chunk k's audio ends where k+1's starts.
    edges = [round(k * 86 * 1024 * 48_000 / 44_100) for k in range(50)]
    spans = [grid.encoded_audio_span(a, b) for a, b in itertools.pairwise(edges)]
    assert spans[0].start == 0
    for a, b in itertools.pairwise(spans):
        assert a.end == b.start and a.start % 1024 == 0
    # A whole frame of real audio stays after the last kept one for the encoder's look-ahead.
    assert all(s.end + 1024 <= e for s, e in zip(spans, edges[1:], strict=False))


@pytest.mark.parametrize("phase", [0, 16, 300, 700, 1007, 1023])
def test_given_source_timestamps_off_by_half_a_millisecond_when_reencoded_then_neighbours_still_meet(
        phase: int) -> None:
    # MP4 chunks place their audio through a millisecond edit list: chunk k's end and chunk k+1's start,
    # each from its own file, disagree by up to 24 samples, around any source phase (ffmpeg's own MP4
    # chunks sit at 1007 of 1024: rounding down split them a frame apart). The limit: a source phase
    # within the error of mid-frame (512 +- 24) can still split; no fixed threshold avoids every phase.
    rng = random.Random(phase)
    true_edges = [phase + 94 * 1024 * k for k in range(1, 40)]
    for a, b in itertools.pairwise(true_edges):
        here = grid.encoded_audio_span(a + rng.randint(-24, 24), b + rng.randint(-24, 24))
        after = grid.encoded_audio_span(b + rng.randint(-24, 24), b + 94 * 1024 + rng.randint(-24, 24))
        assert here.end == after.start, (a, b)
        assert here.end + 1024 <= b - 24  # look-ahead stays real audio


def test_given_a_slot_between_known_neighbours_when_slated_then_the_audio_fills_exactly_the_hole() -> None:
    video = grid.VideoSpan(100, 50)  # 4.0 .. 6.0 s at 25 fps
    span = grid.slate_audio_span(video, Fraction(25), 48_000, phase=0, after=190_464, before=286_720)
    assert (span.start, span.end) == (190_464, 286_720)
    alone = grid.slate_audio_span(video, Fraction(25), 48_000, phase=256)
    assert alone.start % 1024 == 256 and alone.start >= 192_000 and alone.end >= 288_000 - 1024
