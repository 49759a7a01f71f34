"""Browser fixtures: Debian's chromium driven by playwright-core (web/tests/player.spec.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "web" / "tests" / "player.spec.mjs"
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
    """Open the player page in chromium, watch it, optionally press "Insert ad break" (or, with full,
    work every tool of the page); the JSON report."""

    def run(url: str, *, play: float = 20, ad_break: bool = False, fmt: str = "", start_timeout: float = 120,
            marker_timeout: float = 60, screenshot: Path | None = None, engine: str = "", signing: str = "",
            full: bool = False, ll: bool = False) -> dict[str, Any]:
        argv = ["node", str(SPEC), url, "--play", str(play), "--start-timeout", str(start_timeout),
                "--marker-timeout", str(marker_timeout),
                "--screenshot", str(screenshot or tmp_path / "player.png")]
        if ad_break:
            argv.append("--ad-break")
        if fmt:
            argv += ["--format", fmt]
        if engine:
            argv += ["--engine", engine]
        if signing:
            argv += ["--signing", signing]
        if full:
            argv.append("--full")
        if ll:
            argv.append("--ll")
        # --full adds the break wait (marker + 40 s), a rendition switch (40 s) and the DVR reload (60 s).
        budget = start_timeout + play + marker_timeout + 60 + (180 + marker_timeout if full else 0)
        proc = subprocess.run(argv, cwd=ROOT / "web", capture_output=True, text=True, timeout=budget, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines, f"the browser driver printed no report (exit {proc.returncode}): {proc.stderr[-2000:]}"
        report: dict[str, Any] = json.loads(lines[-1])
        report["exit_code"] = proc.returncode
        return report

    return run
