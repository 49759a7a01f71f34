"""DASH MPD rendering: dynamic/static MPDs, exact SegmentTimeline ticks, SCTE-35 events."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
from media_helpers import T0, at, brk, check_golden, make_segments, make_timeline
from mpegdash.parser import MPEGDASHParser

from chalicelib.errors import ValidationError
from chalicelib.media import dash, scte35
from chalicelib.media.ladder import VIDEO_TIMESCALE

NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "s": "http://www.scte.org/schemas/35/2016"}
NOW = at(61)


def expand(template: Any) -> list[tuple[int, int]]:
    """(t, d) for every segment a SegmentTimeline describes (mpegdash objects)."""
    out: list[tuple[int, int]] = []
    t = 0
    for s in template.segment_timelines[0].Ss:
        t = s.t if s.t is not None else t
        for _ in range((s.r or 0) + 1):
            out.append((t, s.d))
            t += s.d
    return out


def test_golden_dynamic_mpd_with_break() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),))
    check_golden("dynamic.mpd", dash.render_mpd(tl, NOW))


def test_golden_static_mpd_after_the_event() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), ended=True)
    check_golden("static.mpd", dash.render_mpd(tl, NOW, vod=True))


def test_dynamic_mpd_carries_the_live_timing_model() -> None:
    mpd = MPEGDASHParser.parse(dash.render_mpd(make_timeline(30, dvr_window=40.0), NOW))
    assert mpd.type == "dynamic"
    assert mpd.availability_start_time == "2026-03-01T09:00:00.000Z"
    assert mpd.publish_time == "2026-03-01T09:01:01.000Z"
    assert mpd.minimum_update_period == "PT2S"
    assert mpd.time_shift_buffer_depth == "PT40S"
    assert mpd.suggested_presentation_delay == "PT6S"
    assert mpd.utc_timings[0].scheme_id_uri == "urn:mpeg:dash:utc:direct:2014"
    assert mpd.utc_timings[0].value == "2026-03-01T09:01:01.000Z"


def test_utc_timing_url_switches_to_http_iso() -> None:
    mpd = MPEGDASHParser.parse(dash.render_mpd(make_timeline(5), NOW, utc_timing_url="https://o.example/time"))
    assert mpd.utc_timings[0].scheme_id_uri == "urn:mpeg:dash:utc:http-iso:2014"
    assert mpd.utc_timings[0].value == "https://o.example/time"


def test_one_adaptation_set_per_media_type_with_the_ladders_representations() -> None:
    mpd = MPEGDASHParser.parse(dash.render_mpd(make_timeline(30), NOW))
    video, audio = mpd.periods[0].adaptation_sets
    assert (video.content_type, audio.content_type) == ("video", "audio")
    assert [r.id for r in video.representations] == ["360p", "240p"]
    assert video.representations[0].codecs == "avc1.64001e"
    assert (video.representations[0].width, video.representations[0].height) == (640, 360)
    assert audio.representations[0].id == "audio" and audio.representations[0].codecs == "mp4a.40.2"
    vt, at_ = video.segment_templates[0], audio.segment_templates[0]
    assert vt.media == "$RepresentationID$/$Number%08d$.m4s"
    assert vt.initialization == "$RepresentationID$/init.mp4"
    assert (vt.timescale, at_.timescale) == (VIDEO_TIMESCALE, 48_000)
    assert vt.start_number == at_.start_number == 10  # first seq of the 40 s window


def test_segment_timeline_ticks_equal_the_transcoders_tfdt_exactly() -> None:
    # NTSC-ish drifting durations: t must be round(start * timescale), never an accumulated sum.
    segs = make_segments(40, duration=2.002)
    mpd = MPEGDASHParser.parse(dash.render_mpd(make_timeline(segments=segs, dvr_window=1000), NOW))
    video, audio = mpd.periods[0].adaptation_sets
    for aset, ts in ((video, VIDEO_TIMESCALE), (audio, 48_000)):
        got = expand(aset.segment_templates[0])
        assert got == [(round(s.start * ts), round(s.end * ts) - round(s.start * ts)) for s in segs]


def test_regular_segments_compact_into_one_s_with_r() -> None:
    text = dash.render_mpd(make_timeline(30, dvr_window=1000), NOW)
    assert '<S t="0" d="180000" r="29"/>' in text
    assert '<S t="0" d="96000" r="29"/>' in text


def test_given_a_hole_in_media_time_then_the_next_s_restates_t() -> None:
    items = [(0, 2000), (2000, 2000), (4000, 2000), (16000, 2000), (18000, 2000), (20000, 2000)]
    body, first = dash.segment_timeline(items)
    assert first == 0
    assert body == '<S t="0" d="2000" r="2"/><S t="16000" d="2000" r="2"/>'



def test_given_the_window_moves_then_period_and_adaptation_set_ids_stay_stable() -> None:
    a = MPEGDASHParser.parse(dash.render_mpd(make_timeline(30), NOW))
    b = MPEGDASHParser.parse(dash.render_mpd(make_timeline(31), NOW + timedelta(seconds=2)))
    assert a.periods[0].id == b.periods[0].id and a.periods[0].start == b.periods[0].start == "PT0S"
    assert [s.id for s in a.periods[0].adaptation_sets] == [s.id for s in b.periods[0].adaptation_sets]
    assert a.availability_start_time == b.availability_start_time


def test_given_a_finished_run_then_its_vod_mpd_is_static_with_a_duration() -> None:
    text = dash.render_mpd(make_timeline(30, dvr_window=40.0, ended=True), NOW, vod=True)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "static" and mpd.minimum_update_period is None
    assert mpd.media_presentation_duration == "PT40S" and mpd.periods[0].duration == "PT40S"
    vt = mpd.periods[0].adaptation_sets[0].segment_templates[0]
    assert vt.presentation_time_offset == 20 * VIDEO_TIMESCALE == expand(vt)[0][0]


def test_scte35_event_stream_carries_the_binary_cue() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),))
    root = ET.fromstring(dash.render_mpd(tl, NOW))
    stream = root.find("d:Period/d:EventStream", NS)
    assert stream is not None and stream.get("schemeIdUri") == "urn:scte:scte35:2014:xml+bin"
    (event,) = stream.findall("d:Event", NS)
    assert event.get("presentationTime") == str(46 * 90_000)
    assert event.get("duration") == str(8 * 90_000) and event.get("id") == "500"
    binary = event.find("s:Signal/s:Binary", NS)
    assert binary is not None and binary.text is not None
    cue = scte35.decode(base64.b64decode(binary.text))
    assert cue.is_out and cue.event_id == 500 and cue.pts == 46.0 and cue.duration == 8.0


def test_given_a_static_mpd_starting_mid_break_then_the_event_keeps_the_remainder() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), ended=True, dvr_window=10.0)
    root = ET.fromstring(dash.render_mpd(tl, NOW, vod=True))
    stream = root.find("d:Period/d:EventStream", NS)
    assert stream is not None and stream.get("presentationTimeOffset") == str(50 * 90_000)
    (event,) = stream.findall("d:Event", NS)
    # Out at 46 s, in at 54 s, window starts at 50 s: 4 s of the break remain, from the start.
    assert event.get("presentationTime") == str(50 * 90_000) and event.get("duration") == str(4 * 90_000)


def test_breaks_outside_the_window_and_cancelled_breaks_have_no_event() -> None:
    breaks = (brk(5.0, 4.0, id="old"), brk(45.0, 8.0, id="gone", cancelled=True))
    text = dash.render_mpd(make_timeline(60, breaks=breaks, dvr_window=40.0), NOW)
    assert "<Event " not in text


def test_lagging_rendition_holds_back_the_whole_video_adaptation_set() -> None:
    segs = make_segments(30, missing={29: frozenset({"240p"})})
    mpd = MPEGDASHParser.parse(dash.render_mpd(make_timeline(segments=segs, dvr_window=1000), NOW))
    video, audio = mpd.periods[0].adaptation_sets
    assert len(expand(video.segment_templates[0])) == 29
    assert len(expand(audio.segment_templates[0])) == 30


def test_given_the_live_event_ended_then_the_mpd_stays_dynamic_ends_its_period_and_stops_updating() -> None:
    # DASH-IF live timing: end a live presentation by giving it a duration and dropping
    # minimumUpdatePeriod; availabilityStartTime, Period@start and PTO stay as they were.
    live = MPEGDASHParser.parse(dash.render_mpd(make_timeline(30, dvr_window=40.0), NOW))
    ended = MPEGDASHParser.parse(dash.render_mpd(make_timeline(30, dvr_window=40.0, ended=True), NOW))
    assert ended.type == "dynamic" and ended.minimum_update_period is None
    assert ended.media_presentation_duration == "PT60S" and ended.periods[0].duration == "PT60S"
    assert ended.availability_start_time == live.availability_start_time
    assert ended.periods[0].start == live.periods[0].start
    lt = live.periods[0].adaptation_sets[0].segment_templates[0]
    et = ended.periods[0].adaptation_sets[0].segment_templates[0]
    assert et.presentation_time_offset == lt.presentation_time_offset and expand(et) == expand(lt)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValidationError):
        dash.render_mpd(make_timeline(5), T0.replace(tzinfo=None))


def test_duration_format() -> None:
    assert [dash.duration(x) for x in (2.0, 2.5, 7200.0, 0.001)] == ["PT2S", "PT2.5S", "PT7200S", "PT0.001S"]
