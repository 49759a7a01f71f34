"""The ladder's CODECS strings are what players use to pick decoders: they must match the encode."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chalicelib.media.ladder import DEFAULT_LADDER, TEST_LADDER, h264_level


@pytest.mark.parametrize(
    ("w", "h", "fps", "level"),
    [(640, 360, 30, 30), (1280, 720, 30, 31), (1280, 720, 60, 32), (1920, 1080, 30, 40), (1920, 1080, 60, 42),
     (3840, 2160, 30, 51)],
)
def test_h264_level_is_the_smallest_that_fits(w: int, h: int, fps: int, level: int) -> None:
    assert h264_level(w, h, Fraction(fps)) == level


def test_default_ladder_codecs_are_rfc6381_avc1_strings() -> None:
    codecs = {r.name: r.codecs(DEFAULT_LADDER.frame_rate) for r in DEFAULT_LADDER.video}
    assert codecs == {"1080p": "avc1.640028", "720p": "avc1.64001f", "480p": "avc1.64001f", "360p": "avc1.64001e"}
    assert TEST_LADDER.rendition("240p").codecs(TEST_LADDER.frame_rate) == "avc1.4d401e"


def test_one_gop_per_segment_so_boundaries_align_across_renditions() -> None:
    assert DEFAULT_LADDER.gop_frames == 60 and TEST_LADDER.gop_frames == 50
    assert TEST_LADDER.names == ("360p", "240p", "audio")
    with pytest.raises(KeyError):
        TEST_LADDER.rendition("4k")
