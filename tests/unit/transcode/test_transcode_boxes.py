"""Box surgery on synthetic fragments: the timestamps a player sees come from these bytes."""

from __future__ import annotations

import struct

import pytest

from chalicelib.errors import TranscodeError
from chalicelib.transcode import boxes

NON_SYNC = 0x00010000


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def fragment(tfdt: int, sizes: list[int], durations: list[int], ctos: list[int] | None = None,
             sequence: int = 1, tfdt_version: int = 0, fill: int = 0) -> bytes:
    """moof + mdat with per-sample duration/size/flags (+ composition offsets), like ffmpeg writes."""
    flags = 0x001 | 0x100 | 0x200 | 0x400 | (0x800 if ctos is not None else 0)

    def build(data_offset: int) -> bytes:
        entries = b""
        for i, (size, dur) in enumerate(zip(sizes, durations, strict=True)):
            entries += struct.pack(">III", dur, size, 0 if i == 0 else NON_SYNC)
            if ctos is not None:
                entries += struct.pack(">I", ctos[i])
        trun = full(b"trun", 0, flags, struct.pack(">Ii", len(sizes), data_offset) + entries)
        tfdt_box = full(b"tfdt", tfdt_version, 0,
                        struct.pack(">Q" if tfdt_version else ">I", tfdt))
        traf = box(b"traf", full(b"tfhd", 0, 0x020000, struct.pack(">I", 1)) + tfdt_box + trun)
        return box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", sequence)) + traf)

    moof = build(0)
    moof = build(len(moof) + 8)
    payload = b"".join(bytes([(fill + i) % 256]) * size for i, size in enumerate(sizes))
    return moof + box(b"mdat", payload)


def init_segment(timescale: int = 90_000) -> bytes:
    mdhd = full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))
    trak = box(b"trak", box(b"mdia", mdhd))
    return box(b"ftyp", b"iso6\x00\x00\x02\x00iso6cmfc") + box(b"moov", trak)


def first_sample_bytes(segment: bytes, moof_offset: int, length: int) -> bytes:
    trun = boxes.find(segment, (b"moof", b"traf", b"trun"), moof_offset)[0]
    (data_offset,) = struct.unpack_from(">i", segment, trun.body + 8)
    start = moof_offset + data_offset
    return segment[start : start + length]


def test_given_fragmented_mp4_when_split_then_init_is_ftyp_moov_and_trailer_dropped() -> None:
    init = init_segment()
    frag1, frag2 = fragment(0, [10, 5], [3600, 3600]), fragment(7200, [7], [3600])
    result = boxes.split(init + frag1 + frag2 + box(b"mfra", b"\x00" * 8))
    assert result.init == init
    assert result.fragments == (frag1, frag2)
    assert boxes.timescale(result.init) == 90_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (fragment(0, [4], [1]), "no moov"),
        (init_segment() + box(b"mdat", b"xx"), "mdat before any moof"),
        (init_segment(), "no media fragments"),
        (init_segment() + b"\x00\x00\x01\x00moof", "invalid size"),
        (init_segment() + b"\x00\x00", "truncated box header"),
    ],
)
def test_given_malformed_output_when_split_then_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(TranscodeError, match=message):
        boxes.split(data)


def test_given_32bit_tfdt_when_rebased_past_2_pow_32_then_64bit_tfdt_and_data_offset_still_right() -> None:
    frags = (fragment(0, [10, 5], [3600, 3600], fill=1), fragment(7200, [7], [3600], fill=9))
    base = 13 * 3600 * 90_000  # 13 h at 90 kHz: does not fit in 32 bits
    segment = boxes.media_segment(frags, base, first_sequence=65)

    top = list(boxes.iter_boxes(segment))
    assert [b.type for b in top] == [b"styp", b"moof", b"mdat", b"moof", b"mdat"]
    info = boxes.fragments_info(segment)
    assert [i.decode_time for i in info] == [base, base + 7200]
    tfdts = boxes.find(segment, (b"moof", b"traf", b"tfdt"))
    assert all(segment[t.body] == 1 for t in tfdts)
    # The trun data offsets were moved by the 4 bytes the tfdt grew: samples still found.
    assert first_sample_bytes(segment, top[1].offset, 10) == b"\x01" * 10
    assert first_sample_bytes(segment, top[3].offset, 7) == b"\x09" * 7
    seqs = [struct.unpack_from(">I", segment, m.body + 4)[0] for m in boxes.find(segment, (b"moof", b"mfhd"))]
    assert seqs == [65, 66]


def test_given_fragment_when_rebased_twice_then_bytes_identical() -> None:
    frags = (fragment(1000, [3, 4], [3600, 3600]),)
    assert boxes.media_segment(frags, 180_000, 1) == boxes.media_segment(frags, 180_000, 1)


def test_given_negative_base_when_rebased_then_error() -> None:
    with pytest.raises(TranscodeError, match="negative"):
        boxes.media_segment((fragment(0, [1], [1]),), -1, 1)


def test_given_b_frame_offsets_when_presented_at_decode_time_then_first_picture_shown_at_tfdt() -> None:
    # x264 with B-frames (I P B B P): the IDR is shown 2 frames after it is decoded.
    ctos = [7200, 18000, 3600, 3600, 10800]
    durations = [3600] * 5
    frags = (fragment(0, [1] * 5, durations, ctos=ctos), fragment(18000, [1], [3600], ctos=[7200]))
    fixed = boxes.present_at_decode_time(frags)

    def presentation(frag: bytes) -> list[int]:
        trun = boxes.find(frag, (b"moof", b"traf", b"trun"))[0]
        _flags, count, entries, per = boxes._trun_layout(frag, trun)
        assert frag[trun.body] == 1  # signed offsets need trun version 1
        dts = boxes.decode_time(frag)
        out = []
        for i in range(count):
            dur, *_rest, cto = struct.unpack_from(">III i", frag, entries + i * per)
            out.append(dts + cto)
            dts += dur
        return out

    assert presentation(fixed[0]) == [0, 14400, 3600, 7200, 18000]
    assert min(presentation(fixed[0])) == boxes.decode_time(fixed[0])
    assert presentation(fixed[1]) == [18000]  # same shift for every fragment of the segment
    before = boxes.fragments_info(boxes.media_segment(frags, 90_000, 1))
    after = boxes.fragments_info(boxes.media_segment(fixed, 90_000, 1))
    assert [f.earliest_presentation for f in before] == [97_200, 115_200]  # 2 frames late
    assert [f.earliest_presentation for f in after] == [90_000, 108_000] == [f.decode_time for f in after]
    assert [len(f) for f in fixed] == [len(f) for f in frags]


def test_given_no_composition_offsets_when_presented_at_decode_time_then_unchanged() -> None:
    frags = (fragment(0, [2, 2], [1024, 1024]),)
    assert boxes.present_at_decode_time(frags) == frags


def test_given_audio_fragment_when_priming_frame_dropped_then_first_sample_is_second_frame() -> None:
    frag = fragment(0, [6, 4, 5], [1024, 1024, 768], fill=1)
    trimmed = boxes.drop_leading_samples(frag, 1)
    info = boxes.fragments_info(trimmed)
    assert (info[0].samples, info[0].duration) == (2, 1792)
    assert first_sample_bytes(trimmed, 0, 4) == b"\x02" * 4
    mdat = next(b for b in boxes.iter_boxes(trimmed) if b.type == b"mdat")
    assert mdat.size == 8 + 4 + 5
    assert boxes.split(init_segment() + trimmed).fragments == (trimmed,)


def test_given_too_few_samples_when_dropping_then_error() -> None:
    with pytest.raises(TranscodeError, match="too few samples"):
        boxes.drop_leading_samples(fragment(0, [6], [1024]), 1)


def test_given_segment_when_inspected_then_sync_and_offsets_reported() -> None:
    segment = boxes.media_segment((fragment(0, [3, 3], [3600, 3600]), fragment(7200, [2], [3600])), 0, 1)
    info = boxes.fragments_info(segment)
    assert [i.starts_with_sync for i in info] == [True, True]
    assert info[1].offset == info[0].offset + info[0].size
    assert info[1].offset + info[1].size == len(segment)
