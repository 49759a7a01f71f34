"""The probe ingest stores in a chunk's record, read back by the transcode job (issue #10: one ffmpeg
start per chunk saved). Reading must give back exactly what was probed, or None (then the job probes)."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import pytest

from chalicelib.transcode.probe import AudioInfo, MediaInfo, from_record, to_record

INFO = MediaInfo(container="mpegts", duration=2.002, start_time=101.4, width=1920, height=1080,
                 fps=Fraction(30000, 1001), has_audio=True, video_codec="h264", audio_codec="aac",
                 sample_rate=48_000, frames=60, size=1_234_567, cpu_seconds=0.21, start_ticks=9_126_000,
                 end_ticks=9_306_180, audio=AudioInfo("aac", "LC", 48_000, 2, 9_124_080, 9_306_480, 95, 1024, True,
                                                      128_000))


def test_a_probe_reads_back_exactly_except_the_cpu_it_cost_the_prober() -> None:
    back = from_record(to_record(INFO))
    assert back == replace(INFO, cpu_seconds=0.0)
    assert back is not None and back.fps == Fraction(30000, 1001)  # not a rounded float


def test_a_video_only_probe_reads_back() -> None:
    info = replace(INFO, has_audio=False, audio_codec=None, sample_rate=None, audio=None)
    assert from_record(to_record(info)) == replace(info, cpu_seconds=0.0)


@pytest.mark.parametrize("text", [
    None, "", 42, "not json", "[]", "{}",
    json.dumps({**json.loads(to_record(INFO)), "fps": "30/0"}),
    json.dumps({**json.loads(to_record(INFO)), "container": "avi"}),
    json.dumps({**json.loads(to_record(INFO)), "end_ticks": 0}),
    json.dumps({**json.loads(to_record(INFO)), "surprise": 1}),
    to_record(INFO)[:-7],
])
def test_anything_but_a_written_probe_reads_as_none_so_the_job_probes_the_file(text: object) -> None:
    assert from_record(text) is None
