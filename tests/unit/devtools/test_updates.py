"""The update-rules checker: it catches each forbidden change, and the renderer never makes one."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "media"))
from media_helpers import T0, brk, make_segments, make_timeline

from chalicelib.media import dash, hls
from chalicelib.media.timeline import Period
from devtools.updates import hls_violations, mpd_violations


def live(n: int, **kw: object) -> str:
    return hls.render_media(make_timeline(n, **kw), "360p")  # type: ignore[arg-type]


def test_successive_renders_of_a_growing_channel_break_no_rule() -> None:
    """Window slides, a break comes and goes, a discontinuity enters and leaves, a GAP passes: clean."""
    breaks = (brk(21.0, 8.0, event_id=7),)
    prev_hls = prev_dvr = prev_mpd = None
    for n in range(3, 60):
        segs = make_segments(n, discontinuities=frozenset({30}), gaps=frozenset({40}))
        tl = make_timeline(segments=segs, breaks=breaks)
        cur, dvr = hls.render_media(tl, "360p"), hls.render_media(tl, "360p", "dvr")
        mpd = dash.render_mpd(tl, T0 + timedelta(seconds=2 * n))
        assert hls_violations(prev_hls, cur) == [], n
        assert hls_violations(prev_dvr, dvr) == [], n
        assert mpd_violations(prev_mpd, mpd) == [], n
        prev_hls, prev_dvr, prev_mpd = cur, dvr, mpd


def test_a_media_sequence_that_goes_back_is_caught() -> None:
    assert any("MEDIA-SEQUENCE went back" in v for v in hls_violations(live(30), live(25)))


def test_a_listed_segment_that_changes_is_caught() -> None:
    a = live(10)
    b = a.replace("#EXTINF:2.000,\n00000009.m4s", "#EXTINF:1.500,\n00000009.m4s")
    assert any("segment 9 changed" in v and "duration" in v for v in hls_violations(a, b))


def test_a_target_duration_or_version_change_is_caught() -> None:
    a = live(10)
    assert any("TARGETDURATION" in v for v in hls_violations(a, a.replace("TARGETDURATION:2", "TARGETDURATION:3")))
    assert any("EXT-X-VERSION" in v for v in hls_violations(a, a.replace("VERSION:6", "VERSION:8")))


def test_anything_after_endlist_is_caught() -> None:
    ended = hls.render_media(make_timeline(10, ended=True), "360p")
    grown = hls.render_media(make_timeline(11, ended=True), "360p")
    assert any("after EXT-X-ENDLIST" in v for v in hls_violations(ended, grown))


def test_a_daterange_removed_while_its_range_is_listed_is_caught() -> None:
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), marker_style="daterange")
    with_break = hls.render_media(tl, "360p")
    stripped = "\n".join(line for line in with_break.splitlines() if "DATERANGE" not in line) + "\n"
    assert any("DATERANGE b1 removed" in v for v in hls_violations(with_break, stripped))
    # ... and one whose attributes change under the same ID
    moved = with_break.replace("PLANNED-DURATION=8.000", "PLANNED-DURATION=9.000")
    assert any("PLANNED-DURATION changed" in v for v in hls_violations(with_break, moved))


def test_a_wrong_discontinuity_sequence_is_caught() -> None:
    segs = make_segments(30, discontinuities=frozenset({20}))
    a = hls.render_media(make_timeline(segments=segs[:25]), "360p")
    b = hls.render_media(make_timeline(segments=segs), "360p")
    assert hls_violations(a, b) == []  # the tag on 20 left the window: DISCONTINUITY-SEQUENCE 0 -> 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in b
    wrong = b.replace("#EXT-X-DISCONTINUITY-SEQUENCE:1", "#EXT-X-DISCONTINUITY-SEQUENCE:0")
    assert any("DISCONTINUITY-SEQUENCE 0, expected 1" in v for v in hls_violations(a, wrong))


def test_a_live_playlist_with_a_playlist_type_is_caught() -> None:
    a = live(10)
    typed = a.replace("#EXT-X-INDEPENDENT", "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT")
    assert any("PLAYLIST-TYPE" in v for v in hls_violations(None, typed))


def periods_tl(n: int, pto_shift: int = 0) -> str:
    segs = list(make_segments(n))
    p0 = Period("r1-0", 0.0, "r1", 0, 0)
    p1 = Period("r1-10", 20.0, "r1", 10 * 180_000 + pto_shift, 10 * 96_000)
    segs = [replace(s, period="r1-0" if s.seq < 10 else "r1-10", run="r1") for s in segs]
    tl = make_timeline(segments=tuple(segs), periods=(p0, p1) if n > 10 else (p0,), dvr_window=1000)
    return dash.render_mpd(tl, T0 + timedelta(seconds=2 * n))


def test_mpd_updates_with_a_new_period_are_clean_and_a_changed_pto_is_caught() -> None:
    assert mpd_violations(periods_tl(10), periods_tl(14)) == []
    assert any("pto changed" in v for v in mpd_violations(periods_tl(12), periods_tl(14, pto_shift=3600)))


def test_a_hole_inside_a_period_and_a_moved_availability_start_are_caught() -> None:
    mpd = periods_tl(5)
    holey = mpd.replace('<S t="0" d="180000" r="4"/>',
                        '<S t="0" d="180000" r="1"/><S t="400000" d="180000" r="2"/>')
    assert any("hole" in v for v in mpd_violations(None, holey))
    moved = mpd.replace('availabilityStartTime="2026-03-01T09:00:00.000Z"',
                        'availabilityStartTime="2026-03-01T09:00:01.000Z"')
    assert any("availabilityStartTime" in v for v in mpd_violations(mpd, moved))


@pytest.mark.parametrize("window", ["live", "dvr"])
def test_runs_continuing_on_the_same_urls_break_no_rule(window: str) -> None:
    """A restart: run 2's segments follow run 1's with a DISCONTINUITY, a new MAP and a new Period."""
    run1 = [replace(s, run="r1", period="r1-0") for s in make_segments(8)]
    run2 = [replace(s, seq=i, msn=8 + i, run="r2", period="r2-0", discontinuity=i == 0, start=2.0 * i,
                    v_start=i * 180_000, program_date_time=T0 + timedelta(seconds=100 + 2 * i))
            for i, s in enumerate(make_segments(8))]
    periods = (Period("r1-0", 0.0, "r1"), Period("r2-0", 100.0, "r2"))
    prev_h = prev_m = None
    for n in range(4, 17):
        segs = tuple((run1 + run2)[:n])
        tl = make_timeline(segments=segs, periods=periods if n > 8 else periods[:1], dvr_window=1000)
        h = hls.render_media(tl, "360p", window)
        m = dash.render_mpd(tl, T0 + timedelta(seconds=200 + n))
        assert hls_violations(prev_h, h) == [], (n, hls_violations(prev_h, h))
        assert mpd_violations(prev_m, m) == [], n
        prev_h, prev_m = h, m
    assert '#EXT-X-MAP:URI="r2/init.mp4"' in prev_h  # type: ignore[operator]
