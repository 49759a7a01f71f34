"""Slipstream's Lambda entry points: decorators only.

Each handler parses its event, calls one use-case function in chalicelib, returns.
"""

from __future__ import annotations

from chalice import Chalice

app = Chalice(app_name="slipstream")

# --- pipeline handlers (chalicelib/pipeline) ---

# --- control API routes (chalicelib/control) ---
