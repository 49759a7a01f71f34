"""A break still out of network when its run ends (issue #15 item 4: "End is final ... HLS closes an open
break (CUE-IN / END-DATE) at the end; DASH events end inside their Period").

Every ended rendering closes it where the run's last segment ends: a run's VOD in each HLS dialect, the
live/DVR playlists once ENDLIST is published, the static MPD, and a run's Period once the next run
follows it. The live version before the end and the ended one differ only as RFC 8216bis 6.2.1 allows
(the project's checker, devtools/updates.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta

import m3u8
import pytest
from media_helpers import T0, at, brk, make_segments, make_timeline

from chalicelib.media import dash, hls, scte35
from chalicelib.media.adbreaks import place_breaks
from chalicelib.media.timeline import AdBreak, AdMarkers, Period, Placement, Segment, Timeline
from devtools.updates import hls_violations, mpd_violations

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
AD = "https://ads.example.com/ad-30s/index.m3u8"
END = "2026-03-01T09:00:30.000Z"  # where run r1's 15 segments of 2 s end
DIALECTS = ["daterange", "elemental", "scte35_enhanced", "interstitials"]


def run_r1(count: int = 15) -> tuple[Segment, ...]:
    return tuple(replace(s, run="r1", period="r1p0") for s in make_segments(count))


def open_at_end(style: str = "daterange", *, ended: bool, segments: tuple[Segment, ...] | None = None,
                b: AdBreak | None = None, **kw: object) -> Timeline:
    """Run r1, 30 s; a 6 s break requested at 26 s: out at seq 13, planned end 32 s, after the run's end."""
    kw.setdefault("dvr_window", 60.0)
    kw.setdefault("ad_markers", AdMarkers(asset_uri=AD))
    return make_timeline(segments=segments or run_r1(), breaks=(b or brk(26.0, 6.0, event_id=500),),
                         marker_style=style, ended=ended, periods=(Period("r1p0", 0.0, "r1"),),
                         **kw)  # type: ignore[arg-type]


def dateranges(text: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', m))
            for m in re.findall(r"^#EXT-X-DATERANGE:(.*)$", text, re.M)]


def after_last_segment(text: str) -> str:
    return text.rsplit("r1/00000014.m4s\n", 1)[1]


# --- HLS: the run's VOD, every dialect --------------------------------------------------------------


@pytest.mark.parametrize("style", DIALECTS)
def test_given_a_break_open_when_the_run_is_sealed_then_its_vod_closes_it_at_the_last_segments_end(style: str) -> None:
    # Given a run stopped while its break is out of network
    tl = open_at_end(style, ended=True, live_window=float("inf"), dvr_window=float("inf"))
    # When its VOD is rendered
    vod = hls.render_vod(tl, "r1")
    for rendition in ("360p", "audio"):
        text = vod[hls.media_path(rendition, "vod-r1")]
        pl = m3u8.loads(text)
        assert pl.is_endlist and pl.playlist_type == "vod"
        tail = after_last_segment(text)
        # Then what closes the break comes after the last segment and before ENDLIST, nothing after that
        assert tail.endswith("#EXT-X-ENDLIST\n") and tail != "#EXT-X-ENDLIST\n"
        if style in ("elemental", "scte35_enhanced"):
            assert pl.segments[13].cue_out_start and pl.segments[14].cue_out
            assert "#EXT-X-CUE-IN\n#EXT-X-ENDLIST\n" in tail
        if style == "scte35_enhanced":
            back = scte35.decode(tail.split("#EXT-OATCLS-SCTE35:")[1].split("\n")[0])
            assert back.command == "splice_insert" and not back.out_of_network and back.event_id == 500
            assert back.pts_ticks == 30 * scte35.TICKS_PER_SECOND
        if style in ("daterange", "interstitials"):
            rid = '"b1"' if style == "daterange" else '"b1-ad"'
            mine = [d for d in dateranges(text) if d["ID"] == rid]
            assert len(mine) == 2 and all(d["START-DATE"] == '"2026-03-01T09:00:26.000Z"' for d in mine)
            closing = dateranges(tail)
            assert [d["ID"] for d in closing] == [rid]
            assert closing[0]["END-DATE"] == f'"{END}"' and closing[0]["DURATION"] == "4.000"
        if style == "daterange":
            back = scte35.decode(dateranges(tail)[0]["SCTE35-IN"])
            assert not back.out_of_network and back.pts_ticks == 30 * scte35.TICKS_PER_SECOND
        if style == "interstitials":
            # Every attribute keeps its value in each tag with the ID (X-RESUME-OFFSET is the planned one).
            assert dateranges(tail)[0]["X-RESUME-OFFSET"] == "6.000"


@pytest.mark.parametrize("style", DIALECTS)
@pytest.mark.parametrize("window", ["live", "dvr"])
def test_given_the_event_ended_mid_break_then_live_and_dvr_close_it_and_only_append(style: str, window: str) -> None:
    # Given the live playlist while the break is out of network, then the event ends
    live = hls.render_media(open_at_end(style, ended=False), "360p", window)
    hls._cache = None
    ended = hls.render_media(open_at_end(style, ended=True), "360p", window)
    # Then the ended version is the live one plus what closes the break and ENDLIST
    assert ended.startswith(live) and ended.endswith("#EXT-X-ENDLIST\n")
    added = ended[len(live):]
    assert ("#EXT-X-CUE-IN\n" in added) == (style in ("elemental", "scte35_enhanced"))
    if style in ("daterange", "interstitials"):
        assert dateranges(added)[0]["END-DATE"] == f'"{END}"'
    # ... which RFC 8216bis 6.2.1 allows, by the project's update-rule checker
    assert hls_violations(live, ended) == []
    assert hls_violations(ended, ended) == []


@pytest.mark.parametrize("style", DIALECTS)
def test_the_runs_vod_and_the_ended_dvr_playlist_mark_the_break_alike(style: str) -> None:
    hls._cache = None
    live = hls.render_media(open_at_end(style, ended=False), "360p", "dvr")
    hls._cache = None
    vod_tl = open_at_end(style, ended=True, live_window=float("inf"), dvr_window=float("inf"))
    vod = hls.render_vod(vod_tl, "r1")[hls.media_path("360p", "vod-r1")]
    # The VOD is a new URL (PLAYLIST-TYPE:VOD), but against the last live version it breaks no rule either.
    assert hls_violations(live, vod, live=False) == []
    assert vod.replace("#EXT-X-PLAYLIST-TYPE:VOD\n", "") == hls.render_media(
        open_at_end(style, ended=True), "360p", "dvr")


def test_a_break_open_at_the_end_is_placed_with_its_in_point_where_the_run_ends() -> None:
    [placed] = place_breaks(open_at_end(ended=True))
    assert (placed.out_seq, placed.in_seq, placed.in_pdt, placed.in_media) == (13, 15, at(30.0), 30.0)
    assert placed.actual_duration == 4.0 and placed.cue_in is not None
    # While the run is still live it stays open (its end is not known yet).
    [live] = place_breaks(open_at_end(ended=False))
    assert live.in_seq is None and live.cue_in is None


def test_an_open_ended_source_break_is_closed_at_the_end_too() -> None:
    out = scte35.splice_insert(77, 26.0, None)  # no break_duration: until the source's return
    b = AdBreak(id="src1-77", splice_event_id=77, start=at(26.0), duration=0.0, source="source",
                scte35_out=out.base64, run="r1", media_time=26.0)
    text = hls.render_media(open_at_end("scte35_enhanced,daterange", ended=True, b=b), "360p", "dvr")
    tail = after_last_segment(text)
    assert "#EXT-X-CUE-IN\n" in tail and f'END-DATE="{END}",DURATION=4.000' in tail


# --- DASH ------------------------------------------------------------------------------------------


def events(mpd: str) -> list[ET.Element]:
    return ET.fromstring(mpd).findall(".//d:Period/d:EventStream/d:Event", NS)


def test_the_static_mpd_ends_an_open_ended_break_inside_its_period() -> None:
    out = scte35.splice_insert(77, 26.0, None)
    b = AdBreak(id="src1-77", splice_event_id=77, start=at(26.0), duration=0.0, source="source",
                scte35_out=out.base64, run="r1", media_time=26.0)
    mpd = dash.render_mpd(open_at_end(ended=True, b=b), T0 + timedelta(seconds=40), vod=True)
    [ev] = events(mpd)
    period = ET.fromstring(mpd).find("d:Period", NS)
    assert period is not None and period.get("duration") == "PT30S"
    assert int(ev.get("presentationTime", "")) == 26 * 90000 and ev.get("duration") == str(4 * 90000)


def test_the_static_mpd_ends_a_planned_break_inside_its_period() -> None:
    mpd = dash.render_mpd(open_at_end(ended=True), T0 + timedelta(seconds=40), vod=True)
    [ev] = events(mpd)
    assert ev.get("duration") == str(4 * 90000)
    assert mpd_violations(None, mpd) == []


def two_runs() -> tuple[tuple[Segment, ...], tuple[Period, ...]]:
    """r1: 15 segments (0-30 s); r2 starts right after, its own media clock from 0, msn 15 on."""
    r2 = tuple(replace(s, run="r2", period="r2p0", msn=15 + s.seq, discontinuity=s.seq == 0,
                       program_date_time=s.program_date_time + timedelta(seconds=30))
               for s in make_segments(5))
    return run_r1() + r2, (Period("r1p0", 0.0, "r1"), Period("r2p0", 30.0, "r2"))


@pytest.mark.parametrize("style", DIALECTS)
def test_given_a_run_stopped_mid_break_when_the_next_run_follows_then_the_break_ends_with_the_first_run(
        style: str) -> None:
    segs, periods = two_runs()
    tl = replace(open_at_end(style, ended=False, segments=segs), periods=periods)
    text = hls.render_media(tl, "360p", "dvr")
    pl = m3u8.loads(text)
    r2_first = pl.segments[15]
    assert r2_first.uri == "r2/00000000.m4s" and r2_first.discontinuity
    # No segment of the next run is inside the break...
    assert not any(s.cue_out for s in pl.segments[15:])
    if style in ("elemental", "scte35_enhanced"):
        assert r2_first.cue_in
    if style in ("daterange", "interstitials"):
        closing = [d for d in dateranges(text) if "END-DATE" in d]
        # ... and its DATERANGE ends where the first run's media does, not at the next run's dates.
        assert len(closing) == 1 and closing[0]["END-DATE"] == f'"{END}"' and closing[0]["DURATION"] == "4.000"


def test_given_a_run_stopped_mid_break_then_its_dash_event_ends_inside_its_period() -> None:
    out = scte35.splice_insert(77, 26.0, None)
    b = AdBreak(id="src1-77", splice_event_id=77, start=at(26.0), duration=0.0, source="source",
                scte35_out=out.base64, run="r1", media_time=26.0)
    segs, periods = two_runs()
    tl = replace(open_at_end(ended=False, segments=segs, b=b), periods=periods)
    mpd = dash.render_mpd(tl, T0 + timedelta(seconds=41))
    first, second = ET.fromstring(mpd).findall("d:Period", NS)
    [ev] = first.findall("d:EventStream/d:Event", NS)
    assert ev.get("duration") == str(4 * 90000)
    assert second.findall("d:EventStream/d:Event", NS) == []


def test_once_the_first_run_left_the_window_its_closed_break_puts_no_in_event_in_the_next_runs_period() -> None:
    # Given a break closed where r1 ended (as the packager keeps it) and returned by the operator after the
    # stop, and only r2 still listed
    segs, periods = two_runs()
    kept = Placement(13, "r1", at(26.0), 26.0, "r1p0", 15, "r2", at(30.0), 30.0)
    b = brk(26.0, 6.0, event_id=500, returned_at=at(40.0), placement=kept)
    tl = replace(open_at_end(ended=False, segments=segs[15:], b=b), periods=periods[1:])
    # Then r2's Period has no Event for it: its media time 30 s is r1's clock, not r2's
    mpd = dash.render_mpd(tl, T0 + timedelta(seconds=41))
    assert events(mpd) == []
    [placed] = place_breaks(tl)
    assert placed.in_period == "r1p0"
