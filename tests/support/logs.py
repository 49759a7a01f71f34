"""Read what the shared Powertools logger (chalicelib.obs) writes, one parsed JSON object per line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """The logger's handler keeps the stdout it was created with, which pytest's capsys never
    sees; point it at a buffer for the block. The list fills when the block ends."""
    from chalicelib import obs

    handler = obs.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
        lines.extend(json.loads(line) for line in buffer.getvalue().splitlines() if line.strip())
