"""Builders for the media core tests: small hand-made timelines on TEST_LADDER.

A uniquely named module (not conftest) so `from media_helpers import ...` cannot pick up
another folder's conftest.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.media import synthetic
from chalicelib.media.ladder import TEST_LADDER, Ladder
from chalicelib.media.timeline import AdBreak, Segment, Timeline

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "golden"


def at(seconds: float) -> datetime:
    """Program date time `seconds` after T0 (media time 0 of the test channels)."""
    return T0 + timedelta(seconds=seconds)


def make_segments(count: int, ladder: Ladder = TEST_LADDER, **kwargs: Any) -> tuple[Segment, ...]:
    return synthetic.segments(count, ladder, start_pdt=T0, **kwargs)


def make_timeline(
    count: int = 30,
    *,
    ladder: Ladder = TEST_LADDER,
    breaks: tuple[AdBreak, ...] = (),
    segments: tuple[Segment, ...] | None = None,
    **kwargs: Any,
) -> Timeline:
    segs = segments if segments is not None else make_segments(count, ladder)
    kwargs.setdefault("live_window", 12.0)
    kwargs.setdefault("dvr_window", 40.0)
    return Timeline(
        channel_id="test",
        ladder=ladder,
        segments=segs,
        ad_breaks=breaks,
        availability_start=T0,
        **kwargs,
    )


def brk(
    start_s: float, duration: float = 8.0, *, id: str = "b1", event_id: int = 101, **kwargs: Any
) -> AdBreak:
    return AdBreak(id=id, splice_event_id=event_id, start=at(start_s), duration=duration, **kwargs)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/unit/media/golden/<name>; UPDATE_GOLDEN=1 rewrites it (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()
