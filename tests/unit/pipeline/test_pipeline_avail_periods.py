"""DASH Periods at ad avails (channel setting dash_period_triggers="avails"): the planner starts a Period at
each break's out- and in-point, stores it like every other Period, and keeps its id, start and PTO as the
MPD is rendered again and again; HLS sees no discontinuity there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from test_pipeline_assemble import RUN, SEG, SHAPE, at, chunk

from chalicelib.media import dash, hls
from chalicelib.media.timeline import AdBreak, AdMarkers
from chalicelib.pipeline import assemble

AVAILS = replace(SHAPE, ad_markers=AdMarkers(avail_periods=True), dvr_window=60.0)
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def api_break(start: float, duration: float, **kw: object) -> AdBreak:
    return AdBreak(id="b1", splice_event_id=7, start=at(start), duration=duration, **kw)  # type: ignore[arg-type]


def periods(mpd: str) -> list[tuple[str, str, str]]:
    """(Period@id, Period@start, the video SegmentTemplate@presentationTimeOffset) of every Period."""
    out = []
    for p in ET.fromstring(mpd).iterfind("d:Period", NS):
        tmpl = p.find("d:AdaptationSet/d:SegmentTemplate", NS)
        assert tmpl is not None
        out.append((p.attrib["id"], p.attrib["start"], tmpl.attrib["presentationTimeOffset"]))
    return out


def plan(n: int, pub: assemble.PublishState | None = None, brk: AdBreak | None = None,
         shape: assemble.ChannelShape = AVAILS) -> assemble.Plan:
    """Chunks 0..n-1 published; by default a 6 s break requested at 8 s (out seq 4, in seq 7)."""
    chunks = {1: {c.seq: c for c in (chunk(s) for s in range(n))}}
    return assemble.plan(shape, {1: RUN}, chunks, pub or assemble.PublishState(), at(2 * n + 1),
                         (brk or api_break(8.0, 6.0),), current=1)


def test_a_break_gets_its_own_period_from_its_out_point_to_its_in_point() -> None:
    p = plan(10)
    segs = p.timeline.segments
    assert [s.period for s in segs] == ["r1-0"] * 4 + ["r1-4"] * 3 + ["r1-7"] * 3
    assert not any(s.discontinuity for s in segs)  # a Period boundary, not an HLS discontinuity
    assert [(pd.id, pd.start, pd.v0) for pd in p.timeline.periods] == [
        ("r1-0", 0.0, 0), ("r1-4", 8.0, 4 * SEG), ("r1-7", 14.0, 7 * SEG)]
    assert [s.program_date_time for s in segs] == [at(2 * i) for i in range(10)]  # PDT runs on
    hls._cache = None
    assert "DISCONTINUITY" not in hls.render_media(p.timeline, "360p", "dvr").replace("DISCONTINUITY-SEQUENCE", "")
    mpd = dash.render_mpd(p.timeline, at(21))
    assert periods(mpd) == [("r1-0", "PT0S", "0"), ("r1-4", "PT8S", str(4 * SEG)), ("r1-7", "PT14S", str(7 * SEG))]
    # The break's SCTE-35 Event is in the break's own Period, at its start.
    [event_period] = [pd.attrib["id"] for pd in ET.fromstring(mpd).iterfind("d:Period", NS)
                      if pd.find("d:EventStream/d:Event", NS) is not None]
    assert event_period == "r1-4"


def test_the_break_periods_are_stored_and_never_change_as_the_channel_grows() -> None:
    first = plan(6)  # the out-point is listed, the in-point not yet
    assert [pd.id for pd in first.state.periods] == ["r1-0", "r1-4"]
    later = plan(12, first.state)
    assert [pd.id for pd in later.state.periods] == ["r1-0", "r1-4", "r1-7"]
    assert later.state.periods[:2] == first.state.periods  # stored, unchanged: start, PTO, PDT anchor
    again = plan(13, later.state)
    assert again.state.periods == later.state.periods
    mpds = [periods(dash.render_mpd(x.timeline, at(30))) for x in (later, again)]
    assert mpds[0] == mpds[1]


def test_an_early_return_starts_the_programme_period_at_the_next_boundary() -> None:
    brk = api_break(8.0, 30.0, returned_at=at(11.5))  # returned 3.5 s in: the in-point is 12 s
    p = plan(10, brk=brk)
    assert [pd.id for pd in p.timeline.periods] == ["r1-0", "r1-4", "r1-6"]


def test_without_the_setting_the_break_stays_inside_one_period() -> None:
    p = plan(10, shape=replace(AVAILS, ad_markers=AdMarkers()))
    assert [pd.id for pd in p.timeline.periods] == ["r1-0"]
    assert dash.render_mpd(p.timeline, at(21)).count("<Event ") == 1


def test_turning_the_option_on_mid_event_never_recuts_published_segments() -> None:
    without = plan(10, shape=replace(AVAILS, ad_markers=AdMarkers()))
    later = plan(12, without.state)  # the break (4..7) was published in one Period: it stays there
    assert [pd.id for pd in later.state.periods] == ["r1-0"]
    nxt = plan(20, later.state, brk=api_break(30.0, 4.0))  # the next break, first listed now, gets its own
    assert [pd.id for pd in nxt.state.periods] == ["r1-0", "r1-15", "r1-17"]
