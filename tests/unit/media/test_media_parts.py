"""Low-Latency HLS in the pure core: the part grid, the part-slot rules, delivery directives and the LL
playlist rendered from the same prepared text as the regular playlists."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from fractions import Fraction

import m3u8
import pytest
from media_helpers import T0, brk, make_segments, make_timeline

from chalicelib.errors import ValidationError
from chalicelib.media import hls
from chalicelib.media.parts import (
    INVALID,
    MEDIA,
    SLATE,
    Directives,
    Edge,
    PartSpec,
    PartState,
    parse_directives,
    parts_per_segment,
    plan_parts,
)

ALL = frozenset({"360p", "240p", "audio"})
SPEC = PartSpec(0.5, 2.0, Fraction(25))
WAIT = timedelta(seconds=1)
STALE = timedelta(seconds=30)


# --------------------------------------------------------------------------- the part grid


def test_parts_must_divide_the_segment_into_two_to_ten_equal_parts() -> None:
    assert parts_per_segment(0.5, 2.0) == 4 and parts_per_segment(1.0, 2.0) == 2 and parts_per_segment(0.2, 2.0) == 10
    for bad in (0.3, 2.0, 0.1, float("nan"), -0.5):
        with pytest.raises(ValidationError):
            parts_per_segment(bad, 2.0)


def test_half_second_parts_hold_whole_grid_frames_and_the_target_covers_their_audio() -> None:
    assert [SPEC.part_frames(i) for i in range(4)] == [13, 12, 13, 12]  # 50 frames, 0.5 s parts at 25 fps
    assert [PartSpec(0.5, 2.0, Fraction(30)).part_frames(i) for i in range(4)] == [15, 15, 15, 15]
    # 13 frames (0.52 s) + two AAC frames at 48 kHz: the longest audio an encoder's muxer puts in a part.
    assert SPEC.part_target == 0.563 and SPEC.part_hold_back == 1.689
    assert SPEC.fits(13 * 3600, 26 * 1024) and not SPEC.fits(15 * 3600, 24 * 1024) and not SPEC.fits(3600, 27 * 1024)


# --------------------------------------------------------------------------- part slots


def part(seq: int, index: int, *, at: float = 0.0, status: str = "received", fill: str = "", done: frozenset[str] = ALL,
         claimed: float | None = None, written: bool = False) -> PartState:
    """Part `index` of segment `seq` placed on the nominal grid, ready `at` seconds after T0."""
    v0 = seq * 180_000 + sum(SPEC.part_frames(i) for i in range(index)) * 3600
    a0 = round(v0 * 48_000 / 90_000) // 1024 * 1024
    when = T0 + timedelta(seconds=at)
    return PartState(seq, index, when, status, v0, SPEC.part_frames(index) * 3600, a0, 24 * 1024,
                     done=done, done_at=when if done else None, fill=fill, slate_written=written,
                     claimed_at=T0 + timedelta(seconds=claimed) if claimed is not None else None)


def plan(parts: list[PartState], now: float, **kw: object) -> object:
    kw.setdefault("start_seq", 1)
    kw.setdefault("prev_end", (180_000, 90_112))
    return plan_parts(SPEC, {p.key: p for p in parts}, ALL, T0 + timedelta(seconds=now), wait=WAIT, stale=STALE,
                      **kw)  # type: ignore[arg-type]


def test_parts_are_listed_in_order_up_to_the_first_one_missing_and_segments_complete_with_their_last() -> None:
    p = plan([part(1, 0), part(1, 1), part(1, 3), part(2, 0)], now=0.2)
    assert [x.key for x in p.listed] == [(1, 0), (1, 1)]  # 1.3 is there, but after a hole
    assert p.claims == () and p.complete == ()
    p = plan([part(1, i) for i in range(4)] + [part(2, 0)], now=0.2)
    assert [x.key for x in p.listed] == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0)] and p.complete == (1,)


def test_a_missing_part_is_slated_once_a_later_one_has_been_ready_for_the_wait() -> None:
    parts = [part(1, 0, at=0.0), part(1, 2, at=0.5), part(1, 3, at=1.0)]
    early = plan(parts, now=1.2)
    assert early.claims == () and early.recheck_at == T0 + timedelta(seconds=1.5)
    due = plan(parts, now=1.5)
    [claim] = due.claims
    # Right after part 0, as long as its nominal 12 frames, its audio up to part 2's.
    assert (claim.seq, claim.index, claim.reason) == (1, 1, "missing")
    assert claim.v_start == part(1, 1).v_start and claim.v_dur == 12 * 3600
    assert claim.a_start == parts[0].a_end and claim.a_start + claim.a_dur == parts[1].a_start


def test_a_corrupt_part_is_slated_at_once_and_a_part_being_uploaded_is_given_time() -> None:
    [claim] = plan([part(1, 0, status=INVALID, done=frozenset())], now=0.0).claims
    assert claim.reason == "invalid"
    uploading = [part(1, 0, fill=MEDIA, done=frozenset(), claimed=0.0), part(1, 1, at=0.1)]
    p = plan(uploading, now=5.0)
    assert p.claims == () and p.recheck_at == T0 + STALE  # its worker claimed the slot: wait for it
    assert plan(uploading, now=31.0).claims[0].reason == "late"  # a claim that old is a dead worker


def test_a_slate_part_is_listed_once_written_and_the_parts_after_it_follow() -> None:
    slate = replace(part(1, 1, done=frozenset()), fill=SLATE, slate_written=True)
    p = plan([part(1, 0), slate, part(1, 2), part(1, 3)], now=0.0)
    assert p.complete == (1,) and p.listed[1].fill == SLATE


def test_a_run_starts_with_a_real_first_part_or_at_the_next_segment_once_that_one_waited() -> None:
    parts = [part(1, 1, at=0.0), part(2, 0, at=2.0), part(2, 1, at=2.5)]
    assert plan(parts, now=2.5, start_seq=None, prev_end=None).listed == ()
    p = plan(parts, now=3.1, start_seq=None, prev_end=None)
    assert [x.key for x in p.listed] == [(2, 0), (2, 1)] and p.start == 2


def test_sealing_slates_the_holes_and_closes_the_last_segment_with_the_parts_it_has() -> None:
    parts = [part(1, 0), part(1, 2)]
    p = plan(parts, now=0.1, sealing=True)
    assert p.claims[0].reason == "stopped"
    closed = plan([part(1, 0), part(1, 1)], now=0.1, sealing=True)
    assert closed.short == 1 and closed.claims == ()


def test_without_the_runs_slate_templates_a_hole_waits_for_them() -> None:
    p = plan([part(1, 0), part(1, 2, at=0.0)], now=5.0, slate_ready=False)
    assert p.claims == () and p.recheck_at == T0 + timedelta(seconds=5.5)


# --------------------------------------------------------------------------- delivery directives


def q(text: str) -> list[tuple[str, str]]:
    return [tuple(kv.split("=", 1)) for kv in text.split("&") if kv]  # type: ignore[misc]


def test_directives_parse_and_other_query_parameters_are_ignored() -> None:
    assert parse_directives(q("_HLS_msn=12&_HLS_part=3&CMCD=sid%3D1")) == Directives(12, 3, "")
    assert parse_directives(q("_HLS_skip=v2")) == Directives(None, None, "v2")
    assert parse_directives(q("")) == Directives() and not Directives().blocking


@pytest.mark.parametrize("query", ["_HLS_part=1", "_HLS_msn=-3", "_HLS_msn=1e3", "_HLS_msn=%31", "_HLS_msn=",
                                   "_HLS_msn=1&_HLS_part=x", "_HLS_skip=yes", "_HLS_msn=1&_HLS_msn=1", "_HLS_x=1",
                                   "_HLS_msn=1234567890123"])
def test_malformed_directives_are_validation_errors(query: str) -> None:
    with pytest.raises(ValidationError):
        parse_directives(q(query))


def test_the_edge_says_what_a_blocking_request_already_has_and_what_is_too_far_ahead() -> None:
    edge = Edge(last_msn=9, part_msn=10, part_index=1, parts=4)
    assert edge.has(9, None) and not edge.has(10, None)  # _HLS_msn alone: the complete segment
    assert edge.has(10, 1) and not edge.has(10, 2) and edge.has(9, 3)
    assert not edge.has(10, 4)  # after the last part of 10: the first part of 11
    assert Edge(9, None, None, 4).has(8, 4) and not Edge(9, None, None, 4).has(9, 4)
    edge.check(Directives(12, 0))
    for bad in (Directives(13, 0), Directives(12, 1), Directives(10, 5)):
        with pytest.raises(ValidationError):
            edge.check(bad)


# --------------------------------------------------------------------------- the LL playlist


def run1(count: int, **kw: object) -> object:
    return make_timeline(segments=tuple(replace(s, run="r1") for s in make_segments(count)), **kw)


def ll_view(tl: object, partial_parts: int = 2, parts_for: int = 4) -> hls.LowLatency:
    segs = tl.segments  # type: ignore[attr-defined]
    entries = {}
    for s in segs[-parts_for:]:
        entries[(s.run, s.seq)] = tuple(hls.PartEntry(i, SPEC.part_frames(i) / 25, 0.512) for i in range(4))
    last = segs[-1]
    entries[(last.run, last.seq)] = entries[(last.run, last.seq)][:partial_parts]
    return hls.LowLatency(SPEC.part_target, SPEC.part_hold_back, entries, 4, partial=True)


def test_the_ll_playlist_is_the_live_playlist_with_parts_and_the_segment_being_written() -> None:
    tl = run1(10, marker_style="both", breaks=(brk(14.0, 4.0),))
    text = hls.render_ll(tl, "360p", ll_view(tl))
    # Every complete segment, with its tags (PDT, markers), is there as in live.m3u8 over the same window
    # (the segment being written is not a segment yet)...
    hls._cache = None
    live = hls.render_media(replace(tl, segments=tl.segments[:-1]), "360p")
    complete = m3u8.loads(live).segments
    assert [(s.uri, s.program_date_time, s.cue_out) for s in m3u8.loads(text).segments if s.uri] == \
        [(s.uri, s.program_date_time, s.cue_out) for s in complete]
    assert "#EXT-X-CUE-OUT:4.000" in text and "#EXT-X-DATERANGE:" in text
    # ... the last one is only its tags and its parts so far, then the hint for the next part.
    tail = text.split(complete[-1].uri + "\n")[1]
    head = tail.split("#EXT-X-PART:")[0]
    # The break's in-point is segment 9: its DATERANGE and CUE-IN come with its parts, as live.m3u8 will have them.
    assert head.startswith('#EXT-X-DATERANGE:ID="b1"') and "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T09:00:18.000Z" in head
    assert "#EXT-X-CUE-IN" in head and "#EXTINF" not in tail.split("#EXT-X-PRELOAD-HINT")[0]
    assert tail.count("#EXT-X-PART:") == 2
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1/00000009.2.m4s"' in tail
    assert '#EXT-X-RENDITION-REPORT:URI="../audio/ll.m3u8",LAST-MSN=9,LAST-PART=1' in tail
    assert hls.ll_edge(tl, ll_view(tl)) == Edge(8, 9, 1, 4)


def test_parts_are_listed_only_within_three_target_durations_of_the_end() -> None:
    tl = run1(10)
    text = hls.render_ll(tl, "240p", ll_view(tl, parts_for=6))
    with_parts = {line.split('URI="')[1].split(".")[0] for line in text.splitlines() if line.startswith("#EXT-X-PART:")}
    # The end is 18.5 s (segment 9 has two parts): parts of segments ending after 12.5 s.
    assert with_parts == {"r1/00000006", "r1/00000007", "r1/00000008", "r1/00000009"}


def test_a_new_run_inside_the_ll_window_keeps_its_discontinuity_and_map() -> None:
    segs = tuple(replace(s, run="r1") for s in make_segments(8))
    second = tuple(replace(s, run="r2", discontinuity=i == 5) for i, s in enumerate(segs) if i >= 5)
    tl = make_timeline(segments=segs[:5] + second)
    text = hls.render_ll(tl, "360p", ll_view(tl))
    part_r2 = text.index('URI="r2/00000005.0.m4s"')
    before = text[:part_r2]
    assert before.rindex("#EXT-X-DISCONTINUITY") > before.rindex("r1/00000004.m4s")
    assert before.rindex('#EXT-X-MAP:URI="r2/init.mp4"') > before.rindex("r1/00000004.m4s")


def test_an_ended_timeline_closes_the_ll_playlist_without_a_hint() -> None:
    tl = replace(run1(6), ended=True)
    text = hls.render_ll(tl, "360p", replace(ll_view(tl), partial=False))
    assert text.endswith("#EXT-X-ENDLIST\n") and "PRELOAD-HINT" not in text


def test_delta_updates_skip_what_lies_beyond_the_skip_boundary_and_keep_the_dateranges_with_yes() -> None:
    tl = run1(20, live_window=40.0, dvr_window=80.0, breaks=(brk(6.0, 4.0),))
    view = ll_view(tl)
    full = hls.render_ll(tl, "360p", view)
    yes = hls.render_ll(tl, "360p", view, "YES")
    v2 = hls.render_ll(tl, "360p", view, "v2")
    skipped = int(yes.split("SKIPPED-SEGMENTS=")[1].split("\n")[0].split(",")[0])
    kept = [s for s in m3u8.loads(yes).segments if s.uri]
    assert skipped == len([s for s in m3u8.loads(full).segments if s.uri]) - len(kept)
    assert sum(s.duration for s in kept) >= hls.skip_until(tl) == 12.0
    # The break's DATERANGE was in the skipped segments: YES keeps it, v2 skips it (the client has it).
    assert yes.count("#EXT-X-DATERANGE:") == full.count("#EXT-X-DATERANGE:") >= 1
    assert "#EXT-X-DATERANGE:" not in v2 and 'RECENTLY-REMOVED-DATERANGES=""' in v2
    with pytest.raises(ValidationError):
        hls.render_ll(tl, "360p", view, "no")


def test_the_ll_master_names_the_ll_media_playlists_and_the_live_iframe_playlists() -> None:
    text = hls.render_ll_master(make_timeline(3))
    assert "360p/ll.m3u8" in text and 'URI="audio/ll.m3u8"' in text and 'URI="360p/iframes.m3u8"' in text
    assert "live.m3u8" not in text
