"""Real players in Debian's chromium (web/tests/player.spec.mjs, driven by playwright-core): one viewer's
run, and several viewers watching at once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "web" / "tests" / "player.spec.mjs"


def play(url: str, work: Path, *, play: float = 20, ad_break: bool = False, fmt: str = "",
         start_timeout: float = 120, marker_timeout: float = 60, screenshot: Path | None = None, engine: str = "",
         signing: str = "", full: bool = False, ll: bool = False) -> dict[str, Any]:
    """Open the player page in chromium, watch it, optionally press "Insert ad break" (or, with full,
    work every tool of the page); the JSON report."""
    argv = ["node", str(SPEC), url, "--play", str(play), "--start-timeout", str(start_timeout),
            "--marker-timeout", str(marker_timeout),
            "--screenshot", str(screenshot or work / "player.png")]
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


def watch_together(runs: Mapping[str, Callable[[], dict[str, Any]]], stagger: float = 3.0
                   ) -> dict[str, dict[str, Any] | BaseException]:
    """Several viewers at once, each in its own chromium (the way viewers share an origin), joining
    `stagger` seconds apart (a 2-core machine starting three browsers in the same instant starves the
    first seconds of playback): every run's report by name, or what it raised, so each test asserts on
    its own viewer. Watching in parallel keeps the real-time stage short; the players are light next to
    the stack they watch."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {}
        for i, (name, run) in enumerate(runs.items()):
            if i:
                time.sleep(stagger)
            futures[name] = pool.submit(run)
        out: dict[str, dict[str, Any] | BaseException] = {}
        for name, f in futures.items():
            try:
                out[name] = f.result()
            except BaseException as e:  # handed to the test that owns this viewer
                out[name] = e
        return out


def report_of(reports: Mapping[str, dict[str, Any] | BaseException], name: str) -> dict[str, Any]:
    """One viewer's report from watch_together, re-raising what its run raised."""
    r = reports[name]
    if isinstance(r, BaseException):
        raise r
    return r
