"""The channel's ad-marker settings as the renderers take them, and DASH Periods at ad avails.

A channel with `dash_period_triggers: "avails"` gets a new DASH Period at each break's out-point and
at its in-point (what MediaTailor and other multi-period SSAI expect: the ad replaces a whole Period).
Such a Period is a `PeriodState` like the ones at run starts and clock steps: created when its first
segment is first listed, stored in PUB, and never changed after, so Period@id, @start and the PTO stay
stable across MPD updates. It is not a discontinuity: HLS gets no EXT-X-DISCONTINUITY there, and the
PDT and media time run on unbroken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from ..media import grid
from ..media.adbreaks import place_breaks
from ..media.timeline import AdBreak, AdMarkers, Placement, Segment, Timeline
from ..records import ChannelRecord

if TYPE_CHECKING:
    from .assemble import ChannelShape, PeriodState


def settings(meta: ChannelRecord | None) -> AdMarkers:
    """The channel record's DASH and interstitial marker options."""
    if meta is None:
        return AdMarkers()
    return AdMarkers(
        dash_scheme=meta.dash_ad_markers or "binary",
        avail_periods=meta.dash_period_triggers == "avails",
        asset_uri=meta.ad_asset_uri,
        asset_list=meta.ad_asset_list,
    )


def split_at_breaks(shape: ChannelShape, segs: list[Segment], periods: list[PeriodState], periods_total: int,
                    ad_breaks: Sequence[AdBreak], placements: Mapping[str, Placement],
                    ast: datetime | None, published: Mapping[str, int]) -> tuple[list[Segment], int]:
    """Start a Period at the out- and in-point of every placed break (new PeriodStates are appended to
    `periods`); returns the segments relabelled with their Period and the new Period count.

    Only a segment listed for the first time in this plan (seq above `published[run]`, the run's last
    published seq) can open a Period: what players already hold is never re-cut, so turning the option
    on mid-event starts with the next break."""
    if not segs or not ad_breaks:
        return segs, periods_total
    from .assemble import PeriodState

    probe = Timeline(channel_id=shape.channel_id, ladder=shape.ladder, segments=tuple(segs),
                     ad_breaks=tuple(replace(b, placement=placements.get(b.id)) for b in ad_breaks),
                     availability_start=ast, dvr_window=shape.dvr_window, announce_breaks=False)
    points = set()
    for b in place_breaks(probe):
        points.add(b.out_seq)
        if b.in_seq is not None:
            points.add(b.in_seq)
    if not points:
        return segs, periods_total
    by_id = {p.id: p for p in periods}
    run_no = {name: rn for rn, name in shape.run_names.items()}
    rate = shape.ladder.audio.sample_rate
    out: list[Segment] = []
    current: str | None = None  # the Period id the segments after a split take
    for i, s in enumerate(segs):
        starts_own = i == 0 or segs[i - 1].period != s.period
        if starts_own:
            current = None
        fresh = s.seq > published.get(s.run, -1)
        if s.number in points and not starts_own and s.v_start is not None and fresh:
            parent = by_id.get(s.period)
            pid = f"{s.run}-{s.seq}"
            if parent is not None and pid not in by_id:
                new = PeriodState(pid, run_no.get(s.run, parent.run), s.seq,
                                  round(parent.start + (s.v_start - parent.v0) / grid.TICKS, 6), s.v_start,
                                  grid.samples(s.v_start, rate), s.program_date_time, disc=False)
                periods.append(new)
                by_id[pid] = new
                periods_total += 1
            current = pid if pid in by_id else current
        if current is not None:
            own = by_id[current]
            # PDT from the new Period's anchor, exactly as the planner computes it once the Period is stored.
            pdt = own.pdt0 + timedelta(microseconds=round(((s.v_start or 0) - own.v0) * 1_000_000 / grid.TICKS))
            apdt = s.audio_pdt
            if s.a_start is not None:
                apdt = own.pdt0 + timedelta(microseconds=round(
                    (Fraction(s.a_start, rate) - Fraction(own.v0, grid.TICKS)) * 1_000_000))
            s = replace(s, period=current, program_date_time=pdt, audio_pdt=apdt)
        out.append(s)
    periods.sort(key=lambda p: (p.start, p.run, p.first_seq))
    return out, periods_total
