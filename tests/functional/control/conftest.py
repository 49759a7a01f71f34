"""Control API fixtures; the harness lives in control_harness.py so tests can import its types."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the project root, for chalicelib/app

from control_harness import api

__all__ = ["api"]
