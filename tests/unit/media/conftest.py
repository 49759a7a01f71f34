"""Fixtures for the media core tests (builders live in media_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from media_helpers import make_timeline

from chalicelib.media import hls
from chalicelib.media.timeline import Timeline


@pytest.fixture
def timeline_factory() -> Callable[..., Timeline]:
    return make_timeline


@pytest.fixture(autouse=True)
def _fresh_render_cache() -> None:
    """Each test starts without the renderer's identity cache from a previous test."""
    hls._cache = None
