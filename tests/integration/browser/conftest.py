"""Browser fixtures: Debian's chromium driven by playwright-core (web/tests/player.spec.mjs)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.players import ROOT, play

CHROMIUM = Path("/usr/bin/chromium")

PlayerRun = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Fail (not skip) with the install command: CI installs all of these through `make deps`."""
    if shutil.which("node") is None:
        pytest.fail("node not found -- install with: sudo apt-get install -y nodejs npm")
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium not found -- install with: sudo apt-get install -y chromium")
    if not (ROOT / "web" / "node_modules" / "playwright-core").is_dir():
        pytest.fail("web/node_modules missing -- run: make deps (or: cd web && npm ci)")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found -- install with: sudo apt-get install -y ffmpeg")


@pytest.fixture
def run_player(browser_ready: None, tmp_path: Path) -> PlayerRun:
    """`play` with this test's tmp_path."""

    def run(url: str, **kw: Any) -> dict[str, Any]:
        return play(url, tmp_path, **kw)

    return run
