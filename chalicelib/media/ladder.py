"""The ABR ladder: what every rendition is encoded as.

Pure data. The transcoder turns it into ffmpeg arguments, the packager turns it into
BANDWIDTH/CODECS/RESOLUTION attributes, so both read the same numbers and the master
playlist never advertises something the encoder did not produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

# DASH/CMAF video timescale (ticks per second): the transcoder writes tfdt in it and the MPD
# SegmentTimeline counts in it. 90 kHz matches MPEG-TS PTS and SCTE-35 splice times; every ladder
# frame rate must be a whole number of ticks (25, 30, 29.97, 50: yes; 23.976 and 59.94: no).
VIDEO_TIMESCALE = 90_000

# H.264 level limits (ITU-T H.264 Table A-1): (level_idc, max macroblocks/s, max frame size in MBs).
_H264_LEVELS: tuple[tuple[int, int, int], ...] = (
    (30, 40_500, 1_620),
    (31, 108_000, 3_600),
    (32, 216_000, 5_120),
    (40, 245_760, 8_192),
    (41, 245_760, 8_192),
    (42, 522_240, 8_704),
    (50, 589_824, 22_080),
    (51, 983_040, 36_864),
)
_PROFILE_IDC = {"baseline": 0x42, "main": 0x4D, "high": 0x64}
_CONSTRAINTS = {"baseline": 0xC0, "main": 0x40, "high": 0x00}


def h264_level(width: int, height: int, fps: Fraction) -> int:
    """Smallest level_idc whose frame size and macroblock rate fit the picture."""
    mbs = ((width + 15) // 16) * ((height + 15) // 16)
    rate = mbs * fps
    for level, max_rate, max_fs in _H264_LEVELS:
        if mbs <= max_fs and rate <= max_rate:
            return level
    return 52


@dataclass(frozen=True)
class VideoRendition:
    name: str  # path-safe: used as the rendition folder and playlist name
    width: int
    height: int
    bitrate: int  # target average bits/s
    max_bitrate: int  # VBV max rate, the peak BANDWIDTH is derived from it
    profile: str = "high"

    @property
    def buffer_size(self) -> int:
        return 2 * self.max_bitrate

    def level(self, fps: Fraction) -> int:
        return h264_level(self.width, self.height, fps)

    def codecs(self, fps: Fraction) -> str:
        """RFC 6381 codec string, e.g. avc1.64001f for High@3.1."""
        return f"avc1.{_PROFILE_IDC[self.profile]:02x}{_CONSTRAINTS[self.profile]:02x}{self.level(fps):02x}"


@dataclass(frozen=True)
class AudioRendition:
    name: str = "audio"
    bitrate: int = 128_000  # what the AAC encoder is set to when audio is re-encoded
    sample_rate: int = 48_000
    channels: int = 2
    codecs: str = "mp4a.40.2"  # AAC-LC
    language: str = "und"
    # The encoder's AAC-LC is copied, not re-encoded, when its rate and channels match and its bitrate
    # is at most this (0: always re-encode). Copying is what keeps audio seamless across independently
    # transcoded chunks at no cost; the bandwidth the manifests advertise covers this ceiling.
    copy_max_bitrate: int = 256_000

    @property
    def peak_bitrate(self) -> int:
        """The most audio bits per second a segment can carry: BANDWIDTH's audio share."""
        return max(self.bitrate, self.copy_max_bitrate)


@dataclass(frozen=True)
class Ladder:
    video: tuple[VideoRendition, ...]
    audio: AudioRendition = field(default_factory=AudioRendition)
    frame_rate: Fraction = Fraction(30)
    segment_duration: float = 2.0  # seconds; every segment starts on a closed-GOP IDR
    container: str = "cmaf"  # "cmaf" (fMP4) or "ts"
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        ticks = Fraction(VIDEO_TIMESCALE) / self.frame_rate
        if ticks.denominator != 1:
            raise ValueError(f"frame rate {self.frame_rate} is not a whole number of 1/{VIDEO_TIMESCALE} s ticks")

    @property
    def frame_ticks(self) -> int:
        """One frame in video timescale ticks (3600 at 25 fps, 3003 at 29.97)."""
        return int(Fraction(VIDEO_TIMESCALE) / self.frame_rate)

    @property
    def gop_frames(self) -> int:
        """Frames per GOP: one GOP per segment, so segment boundaries align across renditions."""
        return round(self.segment_duration * self.frame_rate)

    def rendition(self, name: str) -> VideoRendition:
        for r in self.video:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return (*(r.name for r in self.video), self.audio.name)


DEFAULT_LADDER = Ladder(
    video=(
        VideoRendition("1080p", 1920, 1080, 5_000_000, 5_500_000),
        VideoRendition("720p", 1280, 720, 3_000_000, 3_300_000),
        VideoRendition("480p", 854, 480, 1_200_000, 1_320_000),
        VideoRendition("360p", 640, 360, 800_000, 880_000),
    )
)

# Small ladder for tests, the demo and CI: same shape, a fraction of the CPU.
TEST_LADDER = Ladder(
    video=(
        VideoRendition("360p", 640, 360, 600_000, 660_000),
        VideoRendition("240p", 426, 240, 300_000, 330_000, profile="main"),
    ),
    audio=AudioRendition(bitrate=64_000, copy_max_bitrate=128_000),
    frame_rate=Fraction(25),
    preset="ultrafast",
)

# The test ladder at NTSC rate: what a 29.97 fps source is encoded to without frame-rate conversion.
TEST_NTSC_LADDER = Ladder(
    video=TEST_LADDER.video,
    audio=TEST_LADDER.audio,
    frame_rate=Fraction(30000, 1001),
    preset="ultrafast",
)

LADDERS: dict[str, Ladder] = {"default": DEFAULT_LADDER, "test": TEST_LADDER, "test-ntsc": TEST_NTSC_LADDER}
