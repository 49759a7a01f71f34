"""Manifest rendering speed: a 4-rendition channel, 2-hour DVR window, 50 ad breaks.

Renders every HLS playlist (2 masters + live/dvr for 4 video renditions and audio) and the
MPD, and compares with `m3u8.loads` parsing the same HLS output in the same run (the
baseline: a player or validator has to do at least that much with what we produce).

Two render numbers:
- cold: first render of the channel in a fresh process (every SCTE-35 cue encoded by
  threefive, every PDT formatted);
- steady: what the packager actually does on each new segment: a new Timeline object with
  one more segment, caches warm from the previous render.

Targets: render faster than parsing (ratio > 1), and steady render under 10 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import m3u8

from chalicelib.media import dash, hls, scte35, synthetic
from chalicelib.media.ladder import DEFAULT_LADDER
from chalicelib.media.timeline import Timeline

SEGMENTS = 3600  # two hours of 2 s segments
BREAKS = 50
TARGET_MS = 10.0


def channel(extra: int = 0) -> Timeline:
    tl = synthetic.timeline(
        SEGMENTS + extra, DEFAULT_LADDER, breaks=BREAKS, break_every=146.0, dvr_window=7200.0
    )
    # Keep exactly SEGMENTS segments (the DVR window) so every variant renders the same size.
    return replace(tl, segments=tl.segments[extra:])


def render(tl: Timeline) -> tuple[dict[str, str], str]:
    playlists = hls.render_all(tl)
    mpd = dash.render_mpd(tl, tl.segments[-1].program_date_time + timedelta(seconds=2))
    return playlists, mpd


def clear_caches() -> None:
    for fn in (scte35.splice_insert, scte35.time_signal, scte35.cancel, scte35._decode):
        fn.cache_clear()
    hls._PDT_MEMO.clear()
    hls._cache = None


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of CPU time per call.

    CPU time rather than wall time: the benchmark shares a small machine with other work, and
    waiting for a core is not rendering cost. Both sides of the ratio are measured the same way.
    """
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        out.append((time.process_time() - t0) * 1000)
    return out


def main() -> int:
    # Cold: a fresh timeline and empty caches each time.
    cold = []
    for _ in range(5):
        clear_caches()
        tl = channel()
        cold += timed(lambda tl=tl: render(tl), 1)  # type: ignore[misc]
    # Steady: warm caches; each iteration renders a new Timeline object one segment later.
    clear_caches()
    render(channel())
    steady = []
    for i in range(1, 21):
        tl = channel(i)
        steady += timed(lambda tl=tl: render(tl), 1)  # type: ignore[misc]
    playlists, mpd = render(channel())
    texts = list(playlists.values())
    parse = timed(lambda: [m3u8.loads(t) for t in texts], 3)

    n_lines = sum(t.count("\n") for t in texts)
    size = sum(len(t) for t in texts) + len(mpd)
    med = statistics.median
    print("times are CPU ms per call (time.process_time)")
    print(f"channel: 4 video renditions + audio, {SEGMENTS} x 2 s segments (2 h DVR), {BREAKS} ad breaks")
    print(f"output: {len(texts)} playlists + MPD, {n_lines} playlist lines, {size / 1e6:.2f} MB")
    print(f"render cold   (HLS+MPD, fresh process caches): median {med(cold):7.2f} ms  min {min(cold):7.2f}")
    print(f"render steady (HLS+MPD, one new segment):      median {med(steady):7.2f} ms  min {min(steady):7.2f}")
    print(f"m3u8.loads of the same HLS output:             median {med(parse):7.2f} ms")
    ratio_steady = med(parse) / med(steady)
    ratio_cold = med(parse) / med(cold)
    print(f"ratio parse/render: steady {ratio_steady:.1f}x, cold {ratio_cold:.1f}x (>1 = render faster)")
    verdict = "PASS" if med(steady) < TARGET_MS else "MISS"
    print(f"target steady < {TARGET_MS:.0f} ms per channel: {verdict}")
    return 0 if ratio_steady > 1 and ratio_cold > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
