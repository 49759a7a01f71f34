"""Builders for the pipeline's pure inputs (chunk states at a fixed time), imported by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.pipeline.assemble import INVALID, RECEIVED, ChunkState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALL = frozenset(TEST_LADDER.names)


def chunk(seq: int, *, at: float | None = None, done: frozenset[str] | None = ALL, invalid: bool = False,
          start: float | None = None, duration: float = 2.0) -> ChunkState:
    """Chunk `seq` received at T0 + `at` s (default: when it closed, 2 s per chunk)."""
    received = T0 + timedelta(seconds=(seq + 1) * 2.0 if at is None else at)
    return ChunkState(seq=seq, status=INVALID if invalid else RECEIVED, received_at=received,
                      media_start=None if invalid else (seq * 2.0 if start is None else start),
                      duration=None if invalid else duration, done=frozenset() if done is None else done)


