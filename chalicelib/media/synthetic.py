"""Deterministic synthetic timelines for tests, benchmarks and the demo.

Pure and seed-free: the same arguments always give the same timeline, so golden files and
benchmark numbers are reproducible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .ladder import DEFAULT_LADDER, Ladder
from .timeline import AdBreak, Segment, Timeline

EPOCH = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def segments(
    count: int,
    ladder: Ladder = DEFAULT_LADDER,
    *,
    first_seq: int = 0,
    duration: float | None = None,
    start_pdt: datetime = EPOCH,
    gaps: frozenset[int] = frozenset(),
    discontinuities: frozenset[int] = frozenset(),
    missing: dict[int, frozenset[str]] | None = None,
) -> tuple[Segment, ...]:
    """`count` back-to-back segments starting at media time `first_seq * duration`.

    `missing` maps a seq to renditions that have not finished it yet.
    """
    d = ladder.segment_duration if duration is None else duration
    names = frozenset(ladder.names)
    missing = missing or {}
    out = []
    for i in range(count):
        seq = first_seq + i
        out.append(
            Segment(
                seq=seq,
                start=seq * d,
                duration=d,
                program_date_time=start_pdt + timedelta(seconds=seq * d),
                discontinuity=seq in discontinuities,
                gap=seq in gaps,
                renditions=frozenset() if seq in gaps else names - missing.get(seq, frozenset()),
            )
        )
    return tuple(out)


def timeline(
    count: int = 3600,
    ladder: Ladder = DEFAULT_LADDER,
    *,
    breaks: int = 0,
    break_every: float = 120.0,
    break_duration: float = 30.0,
    first_seq: int = 0,
    **kwargs: object,
) -> Timeline:
    """A channel with `count` segments and `breaks` API ad breaks spread `break_every` s apart.

    Breaks start 1 s after a segment boundary so placement has to snap them.
    """
    segs = segments(count, ladder, first_seq=first_seq)
    d = ladder.segment_duration
    base = EPOCH + timedelta(seconds=first_seq * d)
    ads = tuple(
        AdBreak(
            id=f"brk-{n}",
            splice_event_id=1000 + n,
            start=base + timedelta(seconds=10 + n * break_every + 1),
            duration=break_duration,
            kind="time_signal" if n % 2 else "splice_insert",
        )
        for n in range(breaks)
    )
    return Timeline(
        channel_id="bench",
        ladder=ladder,
        segments=segs,
        ad_breaks=ads,
        availability_start=EPOCH,
        **kwargs,  # type: ignore[arg-type]
    )
