"""Property tests: any timeline renders HLS and DASH that independent parsers read back exactly.

`m3u8` and `mpegdash` parse what we render; the expected segments come from a small reference
implementation of the window rules written here, not from the renderer's own helpers, and
every SCTE-35 cue found in the output is decoded again through threefive.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import timedelta

import m3u8
import threefive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_helpers import T0
from mpegdash.parser import MPEGDASHParser

from chalicelib.media import dash, hls, scte35
from chalicelib.media.adbreaks import place_breaks
from chalicelib.media.ladder import TEST_LADDER, VIDEO_TIMESCALE
from chalicelib.media.timeline import AdBreak, Segment, Timeline

NAMES = TEST_LADDER.names
DURATIONS = (1.0, 1.5, 1.96, 2.0, 2.002, 2.4)


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    n = draw(st.integers(min_value=1, max_value=40))
    first = draw(st.integers(min_value=0, max_value=10_000))
    segs: list[Segment] = []
    start = first * 2.0
    pdt_offset = 0.0
    for i in range(n):
        d = draw(st.sampled_from(DURATIONS))
        disc = draw(st.booleans()) if i and draw(st.integers(0, 9)) == 0 else False
        if disc:
            pdt_offset += draw(st.sampled_from((0.0, 3.0, 60.0)))  # encoder restart: clock jumps
        gap = draw(st.integers(0, 14)) == 0
        have = frozenset() if gap else frozenset(NAMES)
        if i >= n - 2 and not gap:  # the newest segments may still be transcoding somewhere
            have = frozenset(draw(st.sets(st.sampled_from(NAMES))))
        ms = round((start + pdt_offset) * 1000)
        segs.append(Segment(first + i, round(start, 6), d, T0 + timedelta(milliseconds=ms), disc, gap, have))
        start += d
    span = start - first * 2.0 + 10
    breaks = []
    # Distinct splice_event_ids: the API numbers its breaks, and one id on two breaks is the same event
    # (SCTE-35 repeats an event's cue under its id), not two breaks.
    event_ids = draw(st.lists(st.integers(0, (1 << 32) - 1), min_size=3, max_size=3, unique=True))
    for k in range(draw(st.integers(0, 3))):
        at = first * 2.0 + draw(st.floats(0, span, allow_nan=False))
        ret = draw(st.none() | st.floats(0.5, 20, allow_nan=False))
        breaks.append(
            AdBreak(
                id=f"b{k}",
                splice_event_id=event_ids[k],
                start=T0 + timedelta(milliseconds=round(at * 1000)),
                duration=float(draw(st.integers(1, 20))),
                kind=draw(st.sampled_from(("splice_insert", "time_signal"))),
                cancelled=draw(st.integers(0, 4)) == 0,
                returned_at=None if ret is None else T0 + timedelta(seconds=at + ret),
            )
        )
    return Timeline(
        channel_id="prop",
        ladder=TEST_LADDER,
        segments=tuple(segs),
        ad_breaks=tuple(breaks),
        availability_start=T0 + timedelta(seconds=0),
        live_window=float(draw(st.integers(2, 30))),
        dvr_window=float(draw(st.integers(8, 120))),
        ended=draw(st.booleans()),
        marker_style=draw(st.sampled_from(("cue", "daterange", "both"))),
        discontinuities_before=draw(st.integers(0, 3)),
    )


# --- reference model of what a playlist must list ------------------------------------------


def reference_window(tl: Timeline, names: tuple[str, ...], seconds: float) -> list[Segment]:
    avail: list[Segment] = []
    for s in tl.segments:
        if avail and s.seq != avail[-1].seq + 1:
            break
        if not s.gap and not all(n in s.renditions for n in names):
            break
        avail.append(s)
    target = max(int(tl.ladder.segment_duration + 0.5), *(int(s.duration + 0.5) for s in tl.segments))
    need = max(seconds, 3 * target)
    out: list[Segment] = []
    for s in reversed(avail):
        if sum(x.duration for x in out) >= need - 1e-9:
            break
        out.insert(0, s)
    return out


@dataclass
class SeenCue:
    where: str
    cue: scte35.Cue


def threefive_agrees(cue: scte35.Cue) -> None:
    """A downstream splicer decoding with threefive directly sees the same values."""
    tf = threefive.Cue(cue.base64)
    if cue.command == "splice_insert":
        assert tf.command.splice_event_id == cue.event_id
        assert bool(tf.command.out_of_network_indicator) == cue.out_of_network
    else:
        assert int(tf.descriptors[0].segmentation_event_id, 16) == cue.event_id
        assert tf.descriptors[0].segmentation_type_id == cue.segmentation_type_id
    if cue.pts is not None:
        assert round(tf.command.pts_time * 90_000) == cue.pts_ticks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines())
def test_property_hls_parses_back_to_the_same_segments_and_cues(tl: Timeline) -> None:
    placed = {p.id: p for p in place_breaks(tl)}
    for name in NAMES:
        for window in ("live", "dvr"):
            text = hls.render_media(tl, name, window)
            pl = m3u8.loads(text)
            seconds = tl.dvr_window if window == "dvr" else tl.live_window
            want = reference_window(tl, (name,), seconds)
            assert [s.uri for s in pl.segments] == [f"{s.seq:08d}.m4s" for s in want]
            assert [s.duration for s in pl.segments] == [round(s.duration, 3) for s in want]
            assert [s.program_date_time for s in pl.segments] == [s.program_date_time for s in want]
            assert [bool(s.discontinuity) for s in pl.segments] == [s.discontinuity for s in want]
            assert [bool(s.gap_tag) for s in pl.segments] == [s.gap for s in want]
            if want:
                assert pl.media_sequence == want[0].seq
                left = [s for s in tl.segments if s.seq < want[0].seq]
                assert pl.discontinuity_sequence == tl.discontinuities_before + sum(s.discontinuity for s in left)
                assert all(round(s.duration) <= pl.target_duration for s in pl.segments)
            assert pl.is_endlist == tl.ended
            assert pl.playlist_type is None  # a live playlist never gains a type, even once ended
            assert pl.version == 6  # constant for the channel's life, GAP or not (RFC 8216bis 6.2.1)
            # Every cue in the playlist decodes, belongs to a placed break, and matches it.
            for seg in pl.segments:
                for dr in seg.dateranges or []:
                    p = placed[dr.id]
                    if dr.scte35_out:
                        assert scte35.decode(dr.scte35_out) == p.cue_out
                        # API breaks splice at the snapped out-point's media time.
                        assert p.cue_out.pts_ticks == scte35.pts_to_ticks(p.out_media)
                        assert dr.start_date == hls.format_pdt(p.out_pdt)
                        threefive_agrees(p.cue_out)
                    if dr.scte35_in:
                        assert scte35.decode(dr.scte35_in) == p.cue_in
                        assert p.cue_in is not None
                        threefive_agrees(p.cue_in)
                if seg.oatcls_scte35 and seg.cue_out_start:
                    cue = scte35.decode(seg.oatcls_scte35)
                    assert cue in {p.cue_out for p in placed.values()}
                    assert cue.pts is not None
                    seq = int(seg.uri.split(".")[0])
                    assert any(p.out_seq == seq and p.cue_out == cue for p in placed.values())
            if tl.marker_style == "cue":
                assert "DATERANGE" not in text
            if tl.marker_style == "daterange":
                assert "CUE-OUT" not in text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines())
def test_property_mpd_parses_back_to_the_same_segments_and_events(tl: Timeline) -> None:
    now = tl.segments[-1].program_date_time + timedelta(seconds=3)
    text = dash.render_mpd(tl, now)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "dynamic"  # the live MPD ends dynamic (DASH-IF); a run's VOD MPD is another URL
    assert (mpd.minimum_update_period is None) == tl.ended
    video, audio = mpd.periods[0].adaptation_sets
    for aset, names, ts in (
        (video, tuple(v.name for v in tl.ladder.video), VIDEO_TIMESCALE),
        (audio, (tl.ladder.audio.name,), tl.ladder.audio.sample_rate),
    ):
        want = reference_window(tl, names, tl.dvr_window)
        tmpl = aset.segment_templates[0]
        got: list[tuple[int, int]] = []
        t = 0
        for s in tmpl.segment_timelines[0].Ss if want else []:
            t = s.t if s.t is not None else t
            for _ in range((s.r or 0) + 1):
                got.append((t, s.d))
                t += s.d
        expected = [(round(s.start * ts), round((s.start + s.duration) * ts) - round(s.start * ts)) for s in want]
        assert got == expected
        if want:
            assert tmpl.start_number == want[0].seq
            assert tmpl.presentation_time_offset == 0  # one Period from media time 0
    placed = {p.ad_break.splice_event_id: p for p in place_breaks(tl)}
    returns = {dash.in_event_id(p): p for p in place_breaks(tl)}
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011", "s": "http://www.scte.org/schemas/35/2016"}
    for event in ET.fromstring(text).iterfind("d:Period/d:EventStream/d:Event", ns):
        binary = event.find("s:Signal/s:Binary", ns)
        assert binary is not None and binary.text
        cue = scte35.decode(base64.b64decode(binary.text))
        if int(event.attrib["id"]) in returns:  # an early return's in-cue, at its in-point
            back = returns[int(event.attrib["id"])]
            assert back.returned_early and cue == back.cue_in and not cue.is_out
            assert back.in_media is not None
            assert int(event.attrib["presentationTime"]) == round(back.in_media * VIDEO_TIMESCALE)
            continue
        p = placed[int(event.attrib["id"])]
        assert cue == p.cue_out
        threefive_agrees(cue)
        assert int(event.attrib["presentationTime"]) >= round(p.out_media * VIDEO_TIMESCALE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines(), st.integers(min_value=1, max_value=8))
def test_property_successive_reloads_obey_rfc8216_live_update_rules(tl: Timeline, grow: int) -> None:
    """Render the channel as it grows segment by segment, as a player reloading would see it.

    Between reloads: MEDIA-SEQUENCE never goes back, TARGETDURATION never changes, a sequence
    number always names the same segment with the same discontinuity count, DATERANGE tags
    with one ID keep their common attributes, and DASH keeps each $Number$ at the same @t.
    """
    tl = replace(tl, ended=False, segments=tuple(replace(s, renditions=frozenset(NAMES)) for s in tl.segments))
    last = tl.segments[-1]
    more = [
        Segment(last.seq + k, last.start + k * 2.0, 2.0, last.program_date_time + timedelta(seconds=k * 2.0),
                renditions=frozenset(NAMES))
        for k in range(1, grow + 1)
    ]
    history = [replace(tl, segments=(*tl.segments, *more[:k])) for k in range(grow + 1)]
    prev_seq = -1
    targets: set[int] = set()
    seg_disc: dict[int, tuple[str, int]] = {}
    ranges: dict[str, dict[str, str]] = {}
    number_t: dict[int, int] = {}
    for step in history:
        pl = m3u8.loads(hls.render_media(step, "360p", "dvr"))
        assert pl.media_sequence >= prev_seq
        prev_seq = pl.media_sequence
        targets.add(pl.target_duration)
        disc = pl.discontinuity_sequence
        for seg in pl.segments:
            disc += bool(seg.discontinuity)
            seq = int(seg.uri.split(".")[0])
            key = (seg.uri, disc)
            assert seg_disc.setdefault(seq, key) == key
            for dr in seg.dateranges or []:
                attrs = {"start_date": dr.start_date, "scte35_out": dr.scte35_out or "",
                         "planned_duration": str(dr.planned_duration or "")}
                known = ranges.setdefault(dr.id, {})
                for name, value in attrs.items():
                    if value:
                        assert known.setdefault(name, value) == value
        mpd = MPEGDASHParser.parse(dash.render_mpd(step, step.segments[-1].program_date_time))
        tmpl = mpd.periods[0].adaptation_sets[0].segment_templates[0]
        number, t = tmpl.start_number, 0
        for s in tmpl.segment_timelines[0].Ss:
            t = s.t if s.t is not None else t
            for _ in range((s.r or 0) + 1):
                assert number_t.setdefault(number, t) == t
                number += 1
                t += s.d
        assert mpd.periods[0].id == "p0"
    assert len(targets) == 1
