"""HLS rendering: golden playlists per dialect plus the RFC 8216 rules a player relies on."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import m3u8
import pytest
from media_helpers import T0, at, brk, check_golden, make_segments, make_timeline

from chalicelib.errors import ValidationError
from chalicelib.media import hls, scte35
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.media.timeline import Timeline


def mid_break(style: str) -> Timeline:
    """30 segments; an 8 s break requested at 45 s -> out at seq 23, in at seq 27.

    The live window (12 s) is seqs 24..29: the splice-out has just slid out of it.
    """
    return make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), marker_style=style)


# --- golden files ----------------------------------------------------------------------------


def test_golden_master() -> None:
    check_golden("master.m3u8", hls.render_master(make_timeline(30)))
    check_golden("dvr_master.m3u8", hls.render_master(make_timeline(30), "dvr"))


@pytest.mark.parametrize("style", ["cue", "daterange", "both"])
def test_golden_live_mid_break(style: str) -> None:
    check_golden(f"live_mid_break_{style}.m3u8", hls.render_media(mid_break(style), "360p"))


def test_golden_dvr_with_break_discontinuity_and_gap() -> None:
    segs = make_segments(30, discontinuities=frozenset({12}), gaps=frozenset({15}))
    tl = make_timeline(segments=segs, breaks=(brk(45.0, 8.0, event_id=500),), dvr_window=30.0)
    check_golden("dvr_disc_gap_both.m3u8", hls.render_media(tl, "240p", "dvr"))


def test_golden_ts_container() -> None:
    tl = make_timeline(10, ladder=replace(TEST_LADDER, container="ts"))
    check_golden("live_ts.m3u8", hls.render_media(tl, "360p"))


def test_golden_ended_vod() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), ended=True, marker_style="daterange")
    check_golden("ended_vod.m3u8", hls.render_media(tl, "audio", "dvr"))


# --- master playlist --------------------------------------------------------------------------


def test_master_advertises_codecs_resolution_and_bandwidth_from_the_ladder() -> None:
    pl = m3u8.loads(hls.render_master(make_timeline(5)))
    assert pl.is_variant and pl.is_independent_segments
    by_uri = {p.uri: p.stream_info for p in pl.playlists}
    assert set(by_uri) == {"360p/live.m3u8", "240p/live.m3u8"}
    info = by_uri["360p/live.m3u8"]
    assert info.codecs == "avc1.64001e,mp4a.40.2"  # High@3.0 for 640x360@25
    assert info.resolution == (640, 360) and info.frame_rate == 25.0 and info.audio == "aud"
    # Peak from the VBV max rate + audio, never below what the encoder may produce.
    assert info.bandwidth >= 660_000 + 64_000
    assert info.average_bandwidth >= 600_000 + 64_000 and info.average_bandwidth < info.bandwidth
    assert by_uri["240p/live.m3u8"].codecs.startswith("avc1.4d40")  # Main profile
    (audio,) = pl.media
    assert (audio.type, audio.group_id, audio.uri, audio.default) == ("AUDIO", "aud", "audio/live.m3u8", "YES")


def test_dvr_master_points_at_dvr_playlists() -> None:
    pl = m3u8.loads(hls.render_master(make_timeline(5), "dvr"))
    assert {p.uri for p in pl.playlists} == {"360p/dvr.m3u8", "240p/dvr.m3u8"}
    assert pl.media[0].uri == "audio/dvr.m3u8"
    assert hls.master_name("dvr") == "dvr.m3u8" and hls.master_name("live") == "master.m3u8"


# --- media playlists -------------------------------------------------------------------------


def test_live_playlist_lists_the_window_with_pdt_on_every_segment() -> None:
    pl = m3u8.loads(hls.render_media(make_timeline(30), "360p"))
    assert pl.media_sequence == 24 and pl.target_duration == 2 and pl.version == 6
    assert [s.uri for s in pl.segments] == [f"{n:08d}.m4s" for n in range(24, 30)]
    assert all(s.program_date_time == at(2 * n) for n, s in zip(range(24, 30), pl.segments, strict=True))
    assert pl.segment_map[0].uri == "init.mp4"
    assert pl.playlist_type is None and not pl.is_endlist


def test_given_a_new_segment_then_media_sequence_advances_and_target_duration_holds() -> None:
    before = m3u8.loads(hls.render_media(make_timeline(30), "360p"))
    after = m3u8.loads(hls.render_media(make_timeline(31), "360p"))
    assert after.media_sequence == before.media_sequence + 1
    assert after.target_duration == before.target_duration
    assert after.segments[-1].uri == "00000030.m4s"


def test_dvr_playlist_keeps_the_dvr_window() -> None:
    pl = m3u8.loads(hls.render_media(make_timeline(30, dvr_window=40.0), "240p", "dvr"))
    assert pl.media_sequence == 10 and len(pl.segments) == 20


def test_given_the_event_ended_then_each_playlist_only_gains_endlist() -> None:
    """RFC 8216 6.2.1: ending appends EXT-X-ENDLIST and changes nothing else, so a player reloading
    the live playlist never sees MEDIA-SEQUENCE go back; dvr.m3u8 is the live-to-VOD asset."""
    live, ended = make_timeline(30, dvr_window=40.0), make_timeline(30, dvr_window=40.0, ended=True)
    for window, count in (("live", 6), ("dvr", 20)):
        before = hls.render_media(live, "360p", window)
        after = hls.render_media(ended, "360p", window)
        assert after == before + "#EXT-X-ENDLIST\n"
        pl = m3u8.loads(after)
        assert pl.is_endlist and pl.playlist_type is None and len(pl.segments) == count


def test_given_a_gap_then_it_is_tagged_and_the_version_does_not_change() -> None:
    # EXT-X-GAP needs no newer protocol version, and EXT-X-VERSION must not change while a GAP
    # enters and leaves the window (RFC 8216bis 6.2.1): it stays 6 (EXT-X-MAP).
    tl = make_timeline(segments=make_segments(30, gaps=frozenset({27})))
    text = hls.render_media(tl, "360p")
    pl = m3u8.loads(text)
    assert pl.version == 6
    assert [s.uri for s in pl.segments if s.gap_tag] == ["00000027.m4s"]
    assert m3u8.loads(hls.render_media(make_timeline(30), "360p")).version == 6


def test_given_a_discontinuity_that_left_the_window_then_discontinuity_sequence_counts_it() -> None:
    tl = make_timeline(segments=make_segments(30, discontinuities=frozenset({20, 26})))
    pl = m3u8.loads(hls.render_media(tl, "360p"))
    assert pl.discontinuity_sequence == 1
    assert [s.uri for s in pl.segments if s.discontinuity] == ["00000026.m4s"]


def test_given_a_rendition_lagging_behind_then_its_playlist_stops_at_its_last_segment() -> None:
    tl = make_timeline(segments=make_segments(30, missing={29: frozenset({"240p"})}))
    assert m3u8.loads(hls.render_media(tl, "240p")).segments[-1].uri == "00000028.m4s"
    assert m3u8.loads(hls.render_media(tl, "360p")).segments[-1].uri == "00000029.m4s"


def test_ts_ladder_uses_ts_segments_without_a_map() -> None:
    tl = make_timeline(10, ladder=replace(TEST_LADDER, container="ts"))
    pl = m3u8.loads(hls.render_media(tl, "360p"))
    assert pl.segments[0].uri.endswith(".ts") and not pl.segment_map and pl.version == 3


def test_live_playlist_never_holds_less_than_three_target_durations() -> None:
    tl = make_timeline(30, live_window=1.0)
    pl = m3u8.loads(hls.render_media(tl, "360p"))
    assert sum(s.duration for s in pl.segments) >= 3 * pl.target_duration


def test_bad_rendition_window_or_marker_style_is_a_validation_error() -> None:
    tl = make_timeline(5)
    with pytest.raises(ValidationError, match="rendition"):
        hls.render_media(tl, "4k")
    with pytest.raises(ValidationError, match="window"):
        hls.render_media(tl, "360p", "forever")
    with pytest.raises(ValidationError, match=r"unknown ad marker dialect 'scte'.*daterange, elemental"):
        hls.render_media(replace(tl, marker_style="scte"), "360p")


def test_render_all_covers_every_playlist_path() -> None:
    out = hls.render_all(make_timeline(5))
    assert set(out) == {
        "master.m3u8", "dvr.m3u8",
        *(f"{r}/{w}.m3u8" for r in ("360p", "240p", "audio") for w in ("live", "dvr")),
        *(f"{r}/{f}.m3u8" for r in ("360p", "240p") for f in ("iframes", "iframes-dvr")),
    }
    assert out["240p/dvr.m3u8"] == hls.render_media(make_timeline(5), "240p", "dvr")


# --- ad markers ------------------------------------------------------------------------------


def test_cue_markers_out_cont_in_around_a_break() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0),), marker_style="cue", live_window=20.0)
    pl = m3u8.loads(hls.render_media(tl, "360p"))
    by_uri = {s.uri: s for s in pl.segments}
    out = by_uri["00000023.m4s"]
    assert out.cue_out_start and float(out.scte35_duration) == 8.0
    assert scte35.decode(out.oatcls_scte35).pts == 46.0
    conts = [by_uri[f"{n:08d}.m4s"] for n in (24, 25, 26)]
    assert all(s.cue_out and not s.cue_out_start for s in conts)
    assert [float(s.scte35_elapsedtime) for s in conts] == [2.0, 4.0, 6.0]
    assert by_uri["00000027.m4s"].cue_in
    assert not by_uri["00000028.m4s"].cue_out


def test_given_the_splice_out_slid_out_then_the_window_opens_with_cue_out_cont() -> None:
    pl = m3u8.loads(hls.render_media(mid_break("cue"), "360p"))
    first = pl.segments[0]
    assert first.uri == "00000024.m4s" and first.cue_out and float(first.scte35_elapsedtime) == 2.0


def test_daterange_out_and_in_share_an_id_and_carry_scte35() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, id="ad-1", event_id=9),),
                       marker_style="daterange", live_window=20.0)
    pl = m3u8.loads(hls.render_media(tl, "360p"))
    ranges = [d for s in pl.segments for d in (s.dateranges or [])]
    out, back = ranges
    assert out.id == back.id == "ad-1"
    assert out.start_date == back.start_date == "2026-03-01T09:00:46.000Z"
    assert float(out.planned_duration) == 8.0 and back.duration == 8.0
    assert back.end_date == "2026-03-01T09:00:54.000Z"
    assert scte35.decode(out.scte35_out).is_out and scte35.decode(out.scte35_out).event_id == 9
    assert scte35.decode(back.scte35_in).pts == 54.0


def test_given_a_running_break_started_before_the_window_then_its_daterange_is_carried() -> None:
    text = hls.render_media(mid_break("daterange"), "360p")
    pl = m3u8.loads(text)
    assert pl.segments[0].dateranges[0].scte35_out is not None
    assert text.index("SCTE35-OUT") < text.index("00000024.m4s")


def test_given_a_finished_break_that_left_the_window_then_no_markers_remain() -> None:
    tl = make_timeline(40, breaks=(brk(45.0, 8.0),))  # in-point seq 27, window 34..39
    text = hls.render_media(tl, "360p")
    assert "CUE" not in text and "DATERANGE" not in text and "SCTE35" not in text


def test_cancelled_breaks_appear_nowhere() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, cancelled=True),), live_window=40.0)
    out = hls.render_all(tl)
    assert not any("SCTE35" in t or "CUE" in t for t in out.values())


def test_marker_style_selects_the_dialect() -> None:
    cue = hls.render_media(mid_break("cue"), "360p")
    dr = hls.render_media(mid_break("daterange"), "360p")
    both = hls.render_media(mid_break("both"), "360p")
    assert "CUE-OUT-CONT" in cue and "DATERANGE" not in cue
    assert "DATERANGE" in dr and "CUE-" not in dr
    assert "DATERANGE" in both and "CUE-OUT-CONT" in both
    assert "PROGRAM-DATE-TIME" in dr  # DATERANGE requires PDT


def test_variant_bandwidth_includes_audio_and_container_overhead() -> None:
    peak, avg = hls.variant_bandwidth(TEST_LADDER, "360p")
    # Peak: VBV max rate + the audio ceiling (a copied encoder's AAC may run up to 128k); average:
    # target rate + the re-encode rate; each with 3 % of CMAF boxes.
    assert peak == 811_640 and avg == 683_920  # (660k + 128k) x 1.03, (600k + 64k) x 1.03
    ts_peak, _ = hls.variant_bandwidth(replace(TEST_LADDER, container="ts"), "360p")
    assert ts_peak > peak


def test_given_a_break_whose_out_point_left_the_stored_segments_then_it_appears_nowhere() -> None:
    """Old breaks must not be re-placed on the first stored segment as the DVR window slides."""
    from chalicelib.media import dash, synthetic
    from chalicelib.media.adbreaks import place_breaks

    for first_seq in (100, 101):  # two successive renders as the window slides by one segment
        segs = synthetic.segments(30, TEST_LADDER, start_pdt=T0, first_seq=first_seq)
        tl = make_timeline(segments=segs, breaks=(brk(10.0, 8.0), brk(first_seq * 2 + 45.0, 8.0, id="b2", event_id=7)))
        assert [p.ad_break.id for p in place_breaks(tl)] == ["b2"]
        assert 'ID="b1"' not in hls.render_media(tl, "360p", "dvr")
        assert dash.render_mpd(tl, T0 + timedelta(hours=1)).count("<Event ") == 1
