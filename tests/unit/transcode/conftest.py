"""Fixtures for the transcode unit tests: a probed chunk description without running ffmpeg."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode import MediaInfo, TranscodeJob


@pytest.fixture
def info() -> MediaInfo:
    return MediaInfo(container="mpegts", duration=2.0, start_time=3.421333, width=320, height=180,
                     fps=Fraction(25), has_audio=True, video_codec="h264", audio_codec="aac",
                     sample_rate=48000, frames=50, size=200_000)


@pytest.fixture
def job() -> TranscodeJob:
    return TranscodeJob(channel_id="ch", seq=7, source_path="/in/7.ts", output_dir="/out",
                        ladder=TEST_LADDER, media_start=14.0, splice_points=(0.8,))
