"""Media time from the source clock, including the MPEG-TS 33-bit wrap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import InvalidMediaError
from chalicelib.pipeline.clock import PTS_WRAP, base_for, media_start


def test_given_first_chunk_is_seq_0_then_it_starts_at_media_zero() -> None:
    base = base_for(1.4, 0, 2.0)  # mpegts muxers start at 1.4 s
    assert media_start(1.4, base, 0, 2.0) == 0.0
    assert media_start(3.4, base, 1, 2.0) == 2.0


def test_given_the_first_arrival_is_seq_5_then_earlier_seqs_still_land_before_it() -> None:
    base = base_for(11.4, 5, 2.0)
    assert media_start(11.4, base, 5, 2.0) == 10.0
    assert media_start(9.4, base, 4, 2.0) == 8.0


def test_given_the_ts_clock_wraps_then_media_time_keeps_growing() -> None:
    base = base_for(PTS_WRAP - 3.0, 0, 2.0)
    # chunk 2 starts 4 s later on a clock that wrapped back to ~1 s
    assert media_start(1.0, base, 2, 2.0) == pytest.approx(4.0)


def test_given_a_chunk_before_the_wrap_arrives_after_it_then_it_is_not_pushed_a_day_ahead() -> None:
    base = base_for(1.0, 2, 2.0)  # the post-wrap chunk arrived first
    assert media_start(PTS_WRAP - 1.0, base, 1, 2.0) == pytest.approx(2.0)


@given(seq=st.integers(0, 200_000), offset=st.floats(0, PTS_WRAP - 1), jitter=st.floats(-0.1, 0.1))
def test_any_number_of_wraps_recovers_the_position(seq: int, offset: float, jitter: float) -> None:
    base = offset
    true_start = seq * 2.0 + jitter
    wrapped = (base + true_start) % PTS_WRAP
    assert media_start(wrapped, base, seq, 2.0) == pytest.approx(max(0.0, true_start), abs=1e-5)


def test_given_the_encoder_clock_resets_then_the_seq_position_is_used() -> None:
    base = base_for(1.4, 0, 2.0)
    assert media_start(1.4, base, 500, 2.0) == 1000.0


def test_a_chunk_without_a_start_time_is_invalid_media() -> None:
    with pytest.raises(InvalidMediaError):
        media_start(float("nan"), 0.0, 1, 2.0)
