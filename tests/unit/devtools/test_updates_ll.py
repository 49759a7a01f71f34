"""The LL-HLS update rules: every version the LL renderer makes, part by part, passes them against its
predecessor (with delta updates checked against the full playlist), and each forbidden change is caught."""

from __future__ import annotations

import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "media"))
from media_helpers import brk, make_segments, make_timeline

from chalicelib.media import hls
from chalicelib.media.parts import PartSpec
from devtools.updates import delta_violations, ll_violations, regular_view

SPEC = PartSpec(0.5, 2.0, Fraction(25))
OTHERS = {"360p": ["../240p/ll.m3u8", "../audio/ll.m3u8"]}


def at(parts: int, rendition: str = "360p", skip: str = "", **kw: object) -> str:
    """The LL playlist once `parts` parts of a run have been published (4 a segment)."""
    complete, partial = divmod(parts, 4)
    n = complete + (1 if partial else 0)
    segs = tuple(replace(s, run="r1") for s in make_segments(n))
    kw.setdefault("live_window", 24.0)
    tl = make_timeline(segments=segs, **kw)  # type: ignore[arg-type]
    entries = {}
    for s in segs:
        count = partial if (partial and s is segs[-1]) else 4
        entries[(s.run, s.seq)] = tuple(hls.PartEntry(i, SPEC.part_frames(i) / 25, SPEC.part_frames(i) / 25)
                                        for i in range(count))
    view = hls.LowLatency(SPEC.part_target, SPEC.part_hold_back, entries, 4, partial=bool(partial))
    return hls.render_ll(tl, rendition, view, skip)


def test_every_version_part_by_part_breaks_no_rule_and_its_deltas_match_it() -> None:
    breaks = (brk(21.0, 6.0, event_id=9),)
    prev = None
    for k in range(1, 90):
        cur = at(k, breaks=breaks)
        assert ll_violations(prev, cur, OTHERS["360p"]) == [], (k, cur)
        if "EXT-X-SKIP" in at(k, skip="YES", breaks=breaks):
            for skip in ("YES", "v2"):
                assert delta_violations(cur, at(k, skip=skip, breaks=breaks)) == [], (k, skip)
        prev = cur


def test_parts_listed_beyond_three_target_durations_are_caught() -> None:
    text = at(40)
    old = "#EXT-X-PART:DURATION=0.52000,URI=\"r1/00000003.0.m4s\",INDEPENDENT=YES\n"
    stale = text.replace('r1/00000004.m4s\n', 'r1/00000004.m4s\n', 1)
    # Put parts back on a segment ending 12 s before the end (3 target durations are 6 s).
    i = stale.index("#EXTINF", stale.index("r1/00000002.m4s"))
    stale = stale[:i] + old + stale[i:]
    found = ll_violations(None, stale, OTHERS["360p"])
    assert any("parts of segment 3 listed though it ends" in v for v in found), found


def test_parts_removed_too_early_changed_or_appended_to_a_complete_segment_are_caught() -> None:
    prev, cur = at(37), at(38)
    early = cur.replace('#EXT-X-PART:DURATION=0.52000,URI="r1/00000008.0.m4s",INDEPENDENT=YES\n', "")
    assert any("parts of segment 8 changed" in v or "removed" in v for v in ll_violations(prev, early))
    moved = cur.replace('URI="r1/00000009.0.m4s"', 'URI="r1/00000009.0b.m4s"')
    assert any("parts of segment 9 changed" in v for v in ll_violations(prev, moved))
    not_idr = cur.replace('URI="r1/00000009.1.m4s",INDEPENDENT=YES', 'URI="r1/00000009.1.m4s"')
    assert any("not INDEPENDENT=YES" in v for v in ll_violations(prev, not_idr))


def test_a_missing_or_wrong_preload_hint_and_missing_reports_are_caught() -> None:
    prev, cur = at(37), at(38)
    no_hint = "".join(ln + "\n" for ln in cur.splitlines() if not ln.startswith("#EXT-X-PRELOAD-HINT"))
    assert any("PRELOAD-HINT" in v for v in ll_violations(prev, no_hint))
    wrong = prev.replace('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1/00000009.1.m4s"',
                         '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1/00000009.2.m4s"')
    assert any("previous version hinted r1/00000009.2.m4s" in v for v in ll_violations(wrong, cur))
    no_reports = "".join(ln + "\n" for ln in cur.splitlines() if not ln.startswith("#EXT-X-RENDITION-REPORT"))
    assert any("RENDITION-REPORT for ../audio/ll.m3u8" in v for v in ll_violations(prev, no_reports, OTHERS["360p"]))


def test_server_control_limits_are_checked() -> None:
    cur = at(38)
    short = cur.replace("PART-HOLD-BACK=1.689", "PART-HOLD-BACK=0.600")
    assert any("less than twice PART-TARGET" in v for v in ll_violations(None, short))
    no_block = cur.replace("CAN-BLOCK-RELOAD=YES,", "")
    assert any("CAN-BLOCK-RELOAD" in v for v in ll_violations(None, no_block))
    skip = cur.replace("CAN-SKIP-UNTIL=12.0", "CAN-SKIP-UNTIL=8.0")
    assert any("six target durations" in v for v in ll_violations(None, skip))


def test_a_delta_that_skips_into_the_skip_boundary_or_miscounts_is_caught() -> None:
    full, delta = at(80), at(80, skip="YES")
    n = int(delta.split("SKIPPED-SEGMENTS=")[1].split("\n")[0].split(",")[0])
    assert n > 0
    miscount = delta.replace(f"SKIPPED-SEGMENTS={n}", f"SKIPPED-SEGMENTS={n + 1}")
    assert any("in the full playlist" in v for v in delta_violations(full, miscount))
    # A client holding an older full playlist merges a newer delta (the window slid meanwhile)...
    assert delta_violations(at(74), delta) == []
    # ... but not one that skips segments it never had.
    assert any("not in the full playlist" in v for v in delta_violations(at(20), delta))
    first_kept = delta.index("#EXTINF")
    second = delta.index("#EXTINF", delta.index("\n", delta.index("m4s\n", first_kept)) + 1)
    too_much = delta.replace(f"SKIPPED-SEGMENTS={n}", f"SKIPPED-SEGMENTS={n + 3}")
    too_much = too_much[:first_kept] + too_much[second:]
    assert delta_violations(full, too_much)
    assert delta_violations(full, full) == ["no EXT-X-SKIP in the delta update"]


def test_the_regular_view_drops_the_ll_tags_and_the_segment_being_written() -> None:
    text = regular_view(at(38))
    assert "#EXT-X-PART" not in text and "PRELOAD-HINT" not in text and "SERVER-CONTROL" not in text
    assert text.rstrip().endswith("r1/00000008.m4s")
