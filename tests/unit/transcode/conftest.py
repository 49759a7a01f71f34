"""Fixtures for the transcode unit tests: a probed chunk description without running ffmpeg."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode import MediaInfo, TranscodeJob
from chalicelib.transcode.probe import AudioInfo

V0 = 307_920  # the chunk's first video pts (90 kHz): 3.421333 s, mpegts' 1.4 s offset included


def aac(start: int = V0 + 480, packets: int = 94, rate: int = 48_000, channels: int = 2, bitrate: int = 98_000,
        profile: str = "LC", codec: str = "aac") -> AudioInfo:
    ticks = round(1024 * 90_000 / rate)
    return AudioInfo(codec, profile, rate, channels, start, start + packets * ticks, packets, 1024, True, bitrate)


@pytest.fixture
def info() -> MediaInfo:
    return MediaInfo(container="mpegts", duration=2.0, start_time=V0 / 90_000, width=320, height=180,
                     fps=Fraction(25), has_audio=True, video_codec="h264", audio_codec="aac",
                     sample_rate=48000, frames=50, size=200_000, start_ticks=V0, end_ticks=V0 + 180_000,
                     audio=aac())


@pytest.fixture
def job() -> TranscodeJob:
    return TranscodeJob(channel_id="ch", seq=7, source_path="/in/7.ts", output_dir="/out",
                        ladder=TEST_LADDER, media_start=14.0, splice_points=(0.8,))
