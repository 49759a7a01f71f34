"""Parsing encoder playlists: segments and the ad cues of each dialect encoders emit."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_helpers import at, brk, make_segments, make_timeline

from chalicelib.errors import ValidationError
from chalicelib.media import hls, scte35
from chalicelib.media.adbreaks import place_breaks
from chalicelib.media.source import parse_source_playlist

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_elemental_cue_out_in_becomes_one_break_with_its_in_point() -> None:
    src = parse_source_playlist(load("elemental_cue_out.m3u8"))
    assert src.media_sequence == 100 and len(src.segments) == 7 and not src.ended
    assert [s.seq for s in src.segments] == list(range(100, 107))
    assert src.segments[0].uri == "chunk_100.ts" and src.segments[3].program_date_time == at(6)
    (b,) = src.breaks
    assert (b.start, b.duration, b.returned_at, b.source) == (at(4), 6.0, at(10), "source")
    assert b.scte35_out is None  # no binary cue in this dialect: the packager generates one
    assert src.segments[2].cue_tags == ("EXT-X-CUE-OUT",)
    assert src.segments[3].cue_tags == ("EXT-X-CUE-OUT-CONT",)
    assert src.segments[5].cue_tags == ("EXT-X-CUE-IN",)


def test_adobe_oatcls_cue_is_passed_through_verbatim() -> None:
    (b,) = parse_source_playlist(load("adobe_oatcls.m3u8")).breaks
    cue = scte35.decode(b.scte35_out or "")
    assert (cue.event_id, cue.pts, cue.duration, cue.is_out) == (1001, 100.0, 6.0, True)
    assert b.splice_event_id == 1001 and b.start == at(2) and b.returned_at == at(8)


def test_rfc8216_daterange_out_and_in_become_a_time_signal_break() -> None:
    src = parse_source_playlist(load("rfc8216_daterange.m3u8"))
    assert src.ended
    (b,) = src.breaks
    assert b.kind == "time_signal" and b.start == at(2) and b.duration == 4.0 and b.returned_at == at(6)
    assert scte35.decode(b.scte35_out or "").segmentation_type == "provider_po_start"
    assert scte35.decode(b.scte35_in or "").segmentation_type == "provider_po_end"


def test_apple_ext_x_scte35_without_pdt_is_dated_from_base_pdt() -> None:
    src = parse_source_playlist(load("apple_ext_x_scte35.m3u8"), base_pdt=at(100))
    assert src.segments[0].program_date_time == at(100)
    (b,) = src.breaks
    assert b.start == at(102) and b.returned_at == at(108) and b.duration == 6.0
    assert scte35.decode(b.scte35_in or "").out_of_network is False


def test_joining_mid_break_backdates_the_out_point_from_elapsed_time() -> None:
    (b,) = parse_source_playlist(load("elemental_joined_mid_break.m3u8")).breaks
    assert b.start == at(6) and b.duration == 10.0 and b.returned_at is None


def test_without_pdt_or_base_pdt_segments_are_undated_and_breaks_cannot_be_placed() -> None:
    src = parse_source_playlist(load("apple_ext_x_scte35.m3u8"))
    assert all(s.program_date_time is None for s in src.segments) and src.breaks == ()


def test_break_ids_are_stable_across_re_reads_and_valid_record_ids() -> None:
    from chalicelib.records import validate_id

    a = parse_source_playlist(load("adobe_oatcls.m3u8")).breaks[0].id
    assert a == parse_source_playlist(load("adobe_oatcls.m3u8")).breaks[0].id
    assert validate_id(a, "ad break id") == a


def test_a_source_break_renders_with_the_encoders_own_cue() -> None:
    (b,) = parse_source_playlist(load("adobe_oatcls.m3u8")).breaks
    tl = make_timeline(segments=make_segments(10), breaks=(b,), live_window=20.0, marker_style="daterange")
    (p,) = place_breaks(tl)
    assert p.cue_out.base64 == b.scte35_out
    assert f"SCTE35-OUT={p.cue_out.hex}" in hls.render_media(tl, "360p")


@pytest.mark.parametrize(
    "text",
    ["", "hello", "<MPD/>", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"],
)
def test_non_media_playlists_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_source_playlist(text)


def test_a_garbage_cue_still_marks_the_break_but_carries_no_binary() -> None:
    text = load("adobe_oatcls.m3u8").replace("#EXT-OATCLS-SCTE35:/DAl", "#EXT-OATCLS-SCTE35:XXXX")
    (b,) = parse_source_playlist(text).breaks
    assert b.scte35_out is None and b.start == at(2)


@pytest.mark.parametrize("style", ["cue", "daterange", "both"])
def test_our_own_playlists_read_back_as_the_same_break(style: str) -> None:
    """A downstream packager reading our output (any marker style) recovers the break."""
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), marker_style=style, live_window=20.0)
    (p,) = place_breaks(tl)
    (b,) = parse_source_playlist(hls.render_media(tl, "360p")).breaks
    assert b.start == p.out_pdt and b.returned_at == p.in_pdt and b.duration == 8.0
    assert scte35.decode(b.scte35_out or "") == p.cue_out
    if style != "cue":  # only DATERANGE carries the in-cue's binary
        assert scte35.decode(b.scte35_in or "") == p.cue_in
