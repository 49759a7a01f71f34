"""Timeline helpers (target duration, windows, availability) and ad-break placement."""

from __future__ import annotations

from dataclasses import replace

import pytest
from media_helpers import at, brk, make_segments, make_timeline

from chalicelib.media import scte35
from chalicelib.media.adbreaks import place_breaks
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.media.timeline import (
    discontinuity_sequence,
    media_start,
    published,
    published_counts,
    round_half_up,
    target_duration,
    window,
    window_of,
)


@pytest.mark.parametrize(("longest", "expected"), [(2.0, 2), (2.002, 2), (2.49, 2), (2.5, 3), (3.7, 4)])
def test_target_duration_is_the_longest_segment_rounded_to_nearest(longest: float, expected: int) -> None:
    segs = make_segments(5)
    segs = (*segs[:2], replace(segs[2], duration=longest), *segs[3:])
    assert target_duration(make_timeline(segments=segs)) == expected


def test_target_duration_never_drops_below_the_configured_segment_duration() -> None:
    segs = tuple(replace(s, duration=1.0) for s in make_segments(5))
    assert target_duration(make_timeline(segments=segs)) == 2


def test_given_a_long_segment_in_the_dvr_history_then_target_duration_holds_as_the_window_moves() -> None:
    segs = make_segments(30)
    segs = (replace(segs[0], duration=2.6), *segs[1:])
    tl = make_timeline(segments=segs)
    later = make_timeline(segments=(*segs, *make_segments(31)[30:]))
    assert target_duration(tl) == target_duration(later) == 3


def test_given_the_longest_segment_was_trimmed_then_the_published_target_duration_holds() -> None:
    segs = make_segments(30)
    long_first = make_timeline(segments=(replace(segs[0], duration=2.6), *segs[1:]))
    trimmed = make_timeline(segments=segs[1:], published_target_duration=target_duration(long_first))
    assert target_duration(long_first) == target_duration(trimmed) == 3


def test_round_half_up() -> None:
    assert [round_half_up(x) for x in (0.4, 0.5, 1.5, 2.5, 2.49)] == [0, 1, 2, 3, 2]


def test_given_a_live_window_shorter_than_three_targets_then_the_window_keeps_three_targets() -> None:
    tl = make_timeline(30, live_window=2.0)
    shown = window(tl, tl.live_window)
    assert sum(s.duration for s in shown) >= 3 * target_duration(tl)
    assert len(shown) == 3 and shown[-1].seq == 29


def test_window_is_the_shortest_suffix_covering_the_requested_seconds() -> None:
    segs = make_segments(30)
    shown = window_of(segs, 12.0, 2)
    assert [s.seq for s in shown] == list(range(24, 30))
    assert [s.seq for s in window_of(segs, 11.0, 2)] == list(range(24, 30))
    assert window_of(segs, 1000.0, 2) == segs  # young channel: everything


def test_given_a_rendition_missing_a_segment_then_it_publishes_only_up_to_the_hole() -> None:
    segs = make_segments(10, missing={7: frozenset({"240p"})})
    tl = make_timeline(segments=segs)
    assert published(tl, ("240p",))[-1].seq == 6
    assert published(tl, ("360p",))[-1].seq == 9
    assert published(tl)[-1].seq == 6
    assert published_counts(tl) == {"360p": 10, "240p": 7, "audio": 10}


def test_given_a_gap_segment_then_it_counts_as_published_everywhere() -> None:
    tl = make_timeline(segments=make_segments(10, gaps=frozenset({4})))
    assert [s.seq for s in published(tl)] == list(range(10))


def test_given_a_hole_in_sequence_numbers_then_publishing_stops_before_it() -> None:
    segs = make_segments(10)
    tl = make_timeline(segments=segs[:5] + segs[6:])
    assert published(tl)[-1].seq == 4


def test_discontinuity_sequence_counts_discontinuities_that_left() -> None:
    tl = make_timeline(segments=make_segments(20, discontinuities=frozenset({3, 8, 15})),
                       discontinuities_before=2)
    assert discontinuity_sequence(tl, 0) == 2
    assert discontinuity_sequence(tl, 3) == 2  # its tag is still in the playlist
    assert discontinuity_sequence(tl, 4) == 3
    assert discontinuity_sequence(tl, 16) == 5


def test_media_start_defaults_to_the_first_segments_pdt_minus_its_media_time() -> None:
    segs = make_segments(10)[4:]
    tl = replace(make_timeline(segments=segs), availability_start=None)
    assert media_start(tl) == at(0)


# --- ad break placement ---------------------------------------------------------------------


def test_given_a_break_between_boundaries_then_it_snaps_to_the_next_segment_start() -> None:
    tl = make_timeline(30, breaks=(brk(9.0, 8.0),))
    (p,) = place_breaks(tl)
    assert (p.out_seq, p.out_pdt, p.out_media) == (5, at(10), 10.0)
    assert (p.in_seq, p.in_pdt, p.in_media) == (9, at(18), 18.0)
    assert p.actual_duration == 8.0


def test_given_a_break_exactly_on_a_boundary_then_it_stays_on_that_segment() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(10.0, 8.0),)))
    assert p.out_seq == 5


def test_given_a_duration_not_a_multiple_of_segments_then_the_in_point_snaps_later() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(10.0, 7.0),)))
    assert p.in_seq == 9 and p.actual_duration == 8.0


def test_given_an_early_return_then_the_in_point_follows_it() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(10.0, 30.0, returned_at=at(13.5)),)))
    assert p.in_seq == 7


def test_given_an_api_break_then_its_cues_carry_the_snapped_media_times() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(9.0, 8.0, event_id=77),)))
    assert p.cue_out == scte35.splice_insert(77, 10.0, 8.0, True, True)
    assert p.cue_in is not None and p.cue_in.pts == 18.0 and not p.cue_in.out_of_network


def test_given_a_time_signal_break_then_it_gets_placement_opportunity_cues() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(10.0, 8.0, kind="time_signal"),)))
    assert p.cue_out.segmentation_type == "provider_po_start" and p.cue_out.duration == 8.0
    assert p.cue_in is not None and p.cue_in.segmentation_type == "provider_po_end"


def test_given_a_source_break_then_its_cues_pass_through_verbatim() -> None:
    out = scte35.splice_insert(5, 1234.5, 8.0)
    back = scte35.splice_insert(5, 1242.5, None, False, False)
    b = brk(10.0, 8.0, source="source", scte35_out=out.base64, scte35_in=back.base64)
    (p,) = place_breaks(make_timeline(30, breaks=(b,)))
    assert p.cue_out == out and p.cue_in == back


def test_cancelled_future_and_overlapping_breaks_are_not_placed() -> None:
    breaks = (
        brk(10.0, 8.0, id="kept"),
        brk(12.0, 8.0, id="inside-kept"),
        brk(30.0, 8.0, id="cancelled", cancelled=True),
        brk(500.0, 8.0, id="future"),
        brk(40.0, 8.0, id="returned-before-start", returned_at=at(39.0)),
    )
    assert [p.id for p in place_breaks(make_timeline(30, breaks=breaks))] == ["kept"]


def test_given_a_break_whose_end_is_not_published_yet_then_in_point_is_unknown() -> None:
    (p,) = place_breaks(make_timeline(30, breaks=(brk(50.0, 30.0),)))
    assert p.out_seq == 25 and p.in_seq is None and p.cue_in is None
    assert p.contains(29) and not p.contains(24)


def test_ladder_names_include_audio_last() -> None:
    assert TEST_LADDER.names == ("360p", "240p", "audio")
