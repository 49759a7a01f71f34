"""A low-latency channel in real players: `make demo --low-latency`'s whole stack (emulated AWS, deployed
functions, `slipstream push --part-time 0.5`, the demo server sending LL paths to the LL origin's handler),
played in Debian's chromium. hls.js in lowLatencyMode plays `ll.m3u8` through blocking playlist reloads
and delta updates (`_HLS_skip=v2`); regular hls.js and dash.js play the same channel's `master.m3u8` and MPD, as players
that do not do LL-HLS. No timing is asserted here (bench/llhls.py measures glass-to-glass latency)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools import demo
from tests.support.players import play, report_of, watch_together

PlayerRun = Callable[..., dict[str, Any]]  # the run_player fixture (conftest.py)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CHANNEL = "browser-ll"


@pytest.fixture(scope="module")
def ll_stack(browser_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo.DemoStack]:
    work = tmp_path_factory.mktemp("demo-ll")
    stack = demo.start_demo(channel_id=CHANNEL, work_dir=work, startup_timeout=240, low_latency=True)
    try:
        yield stack
    finally:
        stack.stop()


def requests(stack: demo.DemoStack) -> list[dict[str, str]]:
    assert stack.realtime_log is not None
    return [json.loads(line) for line in stack.realtime_log.read_text().splitlines() if line.strip()]


def test_hlsjs_in_low_latency_mode_plays_the_ll_playlist_by_blocking_reloads_and_delta_updates(
        ll_stack: demo.DemoStack, run_player: PlayerRun) -> None:
    report = run_player(ll_stack.player_url(), play=45)
    assert report["ok"], report["failures"]
    assert report["stalls"] == 0
    assert report["source"].endswith(f"/{CHANNEL}/ll.m3u8")
    assert (report.get("engineConfig") or {}).get("lowLatencyMode") is True
    ll = [r for r in requests(ll_stack) if r["cs-uri-stem"].endswith("/ll.m3u8") and r["cs-uri-stem"].count("/") >= 4]
    queries = [r["cs-uri-query"] for r in ll]
    assert any("_HLS_msn=" in q and "_HLS_part=" in q for q in queries)  # blocking reloads
    # Delta updates: hls.js asks for v2 when the playlist says CAN-SKIP-DATERANGES=YES.
    assert any("_HLS_skip=v2" in q for q in queries)
    # hls.js never sends a directive the origin refuses (no 400: the advance limits agree with it, part 4
    # of a segment included); a part later than 3 target durations on a loaded machine is a 503, as RFC
    # 8216bis 6.2.5.2 has it; "000": held when the page closed.
    held = Counter(str(r["sc-status"]) for r in ll if "_HLS_msn=" in r["cs-uri-query"])
    assert set(held) <= {"200", "503", "000"} and held["200"] > 10 * (held["503"] + held["000"]), held
    parts = Counter(str(r["sc-status"]) for r in requests(ll_stack) if re.search(r"\d{8}\.\d\.m4s$", r["cs-uri-stem"]))
    assert set(parts) <= {"200", "000"} and parts["200"] > 10 * parts["000"], parts


@pytest.fixture(scope="module")
def regular_viewers(ll_stack: demo.DemoStack, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, dict[str, Any] | BaseException]:
    """Regular hls.js and dash.js watch the channel at the same time (viewers who do not do LL-HLS)."""
    work = tmp_path_factory.mktemp("ll-regular")

    def viewer(fmt: str) -> Callable[[], dict[str, Any]]:
        (work / fmt).mkdir()
        return lambda: play(ll_stack.player_url(fmt).replace("&ll=1", ""), work / fmt, play=30)

    return watch_together({fmt: viewer(fmt) for fmt in ("hls", "dash")})


@pytest.mark.parametrize("fmt", ["hls", "dash"])
def test_players_that_do_not_do_ll_hls_play_the_same_channel_regular_playlists_and_mpd(
        regular_viewers: dict[str, Any], fmt: str) -> None:
    report = report_of(regular_viewers, fmt)
    assert report["ok"], report["failures"]
    assert report["stalls"] == 0
    assert report["source"].endswith(f"/{CHANNEL}/master.m3u8" if fmt == "hls" else f"/{CHANNEL}/manifest.mpd")
