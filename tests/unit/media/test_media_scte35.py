"""SCTE-35 cues: built with threefive, read back with threefive, 33-bit PTS arithmetic."""

from __future__ import annotations

import base64

import pytest
import threefive
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import ValidationError
from chalicelib.media import scte35
from chalicelib.media.scte35 import PTS_WRAP, pts_to_ticks, ticks_to_pts

# A cue from threefive's documentation (time_signal + provider placement opportunity end).
DOC_CUE = "/DAvAAAAAAAA///wBQb+dGKQoAAZAhdDVUVJSAAAjn+fCAgAAAAALKChijUCAKnMZ1g="


def independent_decode(cue: scte35.Cue) -> threefive.Cue:
    """Decode with threefive directly, bypassing our wrapper, as a downstream splicer would."""
    return threefive.Cue(cue.base64)


def test_given_a_splice_out_when_encoded_then_threefive_reads_every_field_back() -> None:
    cue = scte35.splice_insert(4242, 120.5, 30.0)
    tf = independent_decode(cue)
    assert tf.command.name == "Splice Insert"
    assert tf.command.splice_event_id == 4242
    assert tf.command.out_of_network_indicator is True
    assert tf.command.break_auto_return is True
    assert tf.command.break_duration == 30.0
    assert tf.command.pts_time == 120.5
    assert (cue.command, cue.event_id, cue.out_of_network, cue.pts, cue.duration, cue.auto_return) == (
        "splice_insert", 4242, True, 120.5, 30.0, True,
    )


def test_given_a_splice_in_then_it_is_not_out_of_network_and_has_no_duration() -> None:
    cue = scte35.splice_insert(7, 150.0, None, out_of_network=False, auto_return=False)
    assert not cue.out_of_network and cue.duration is None and not cue.is_out
    assert independent_decode(cue).command.duration_flag is False


def test_given_pts_none_then_the_splice_is_immediate() -> None:
    cue = scte35.splice_insert(8, None, 10.0)
    assert cue.pts is None
    assert independent_decode(cue).command.splice_immediate_flag is True


def test_given_pts_zero_then_the_time_is_specified_not_immediate() -> None:
    cue = scte35.splice_insert(9, 0.0, 10.0)
    assert cue.pts == 0.0
    assert independent_decode(cue).command.time_specified_flag is True


@pytest.mark.parametrize(
    ("kind", "type_id", "is_out"),
    [
        ("provider_po_start", 0x34, True),
        ("provider_po_end", 0x35, False),
        ("distributor_po_start", 0x36, True),
        ("distributor_po_end", 0x37, False),
    ],
)
def test_given_a_time_signal_then_its_segmentation_descriptor_round_trips(
    kind: str, type_id: int, is_out: bool
) -> None:
    duration = 30.0 if is_out else None
    cue = scte35.time_signal(33.0, kind, duration, 55)
    assert cue.command == "time_signal"
    assert cue.segmentation_type_id == type_id and cue.segmentation_type == kind
    assert cue.event_id == 55 and cue.is_out is is_out and cue.duration == duration
    tf = independent_decode(cue)
    assert tf.descriptors[0].segmentation_type_id == type_id
    assert int(tf.descriptors[0].segmentation_event_id, 16) == 55


def test_given_a_cancel_then_the_cue_says_cancelled_and_is_not_an_out() -> None:
    cue = scte35.cancel(99)
    assert cue.cancelled and cue.event_id == 99 and not cue.is_out
    assert independent_decode(cue).command.splice_event_cancel_indicator is True


def test_given_the_same_cue_as_base64_hex_or_bytes_then_decode_agrees() -> None:
    cue = scte35.splice_insert(1, 10.0, 20.0)
    assert cue.hex.startswith("0xfc")
    assert scte35.decode(cue.base64) == scte35.decode(cue.hex) == scte35.decode(cue.bytes) == cue
    assert scte35.decode(cue.hex[2:]) == cue  # bare hex as some encoders send it
    assert scte35.decode(cue.base64.rstrip("=")) == cue  # unpadded base64
    assert scte35.decode(bytearray(cue.bytes)) == cue


def test_given_an_encoders_cue_then_decode_reports_its_meaning() -> None:
    cue = scte35.decode(DOC_CUE)
    assert cue.command == "time_signal"
    assert cue.segmentation_type_id == 0x35  # provider placement opportunity end
    assert cue.pts_ticks == 0x0746290A0
    assert cue.base64 == DOC_CUE


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "not a cue!", "0xdeadbeef", "AAAA", b"\x00\x01\x02", "0xzz", base64.b64encode(b"hello").decode()],
)
def test_given_garbage_then_decode_raises_a_validation_error(garbage: str | bytes) -> None:
    with pytest.raises(ValidationError):
        scte35.decode(garbage)


def test_given_a_non_text_cue_then_decode_raises_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        scte35.decode(12345)  # type: ignore[arg-type]


def test_given_a_corrupted_byte_then_the_crc_check_rejects_the_cue() -> None:
    raw = bytearray(scte35.splice_insert(1, 10.0, 20.0).bytes)
    raw[15] ^= 0x01
    with pytest.raises(ValidationError, match="CRC"):
        scte35.decode(bytes(raw))


def test_given_a_truncated_cue_then_decode_rejects_it() -> None:
    raw = scte35.splice_insert(1, 10.0, 20.0).bytes
    with pytest.raises(ValidationError):
        scte35.decode(raw[:-3])


def test_given_bad_arguments_then_builders_raise_validation_errors() -> None:
    with pytest.raises(ValidationError):
        scte35.splice_insert(-1, 1.0, 1.0)
    with pytest.raises(ValidationError):
        scte35.splice_insert(1 << 32, 1.0, 1.0)
    with pytest.raises(ValidationError):
        scte35.time_signal(1.0, "chapter_start", None, 1)
    with pytest.raises(ValidationError):
        scte35.splice_insert(1, 1.0, -5.0)


def test_pts_wraps_at_33_bits() -> None:
    wrap_seconds = PTS_WRAP / 90_000
    assert pts_to_ticks(0.0) == 0
    assert pts_to_ticks(1.0) == 90_000
    assert pts_to_ticks(wrap_seconds) == 0
    assert pts_to_ticks(wrap_seconds + 2.0) == 180_000
    assert pts_to_ticks(-1.0) == PTS_WRAP - 90_000
    assert ticks_to_pts(PTS_WRAP + 90_000) == 1.0


def test_given_a_splice_time_past_the_wrap_then_the_cue_carries_the_wrapped_pts() -> None:
    wrap_seconds = PTS_WRAP / 90_000
    cue = scte35.splice_insert(3, wrap_seconds + 5.0, 30.0)
    assert cue.pts_ticks == 5 * 90_000
    assert independent_decode(cue).command.pts_time == 5.0


event_ids = st.integers(min_value=0, max_value=(1 << 32) - 1)
ticks = st.integers(min_value=0, max_value=PTS_WRAP - 1)
durations = st.integers(min_value=1, max_value=PTS_WRAP - 1)


@given(event_ids, st.none() | ticks, st.none() | durations, st.booleans(), st.booleans())
def test_property_every_splice_insert_decodes_back_to_the_same_values(
    event_id: int, pts: int | None, dur: int | None, out: bool, auto: bool
) -> None:
    pts_s = None if pts is None else pts / 90_000
    dur_s = None if dur is None else dur / 90_000
    cue = scte35.splice_insert(event_id, pts_s, dur_s, out, auto)
    back = scte35.decode(cue.base64)
    assert back == cue
    assert back.event_id == event_id
    assert back.pts_ticks == pts
    assert (None if back.duration is None else round(back.duration * 90_000)) == dur
    assert back.out_of_network is out
    assert back.auto_return is (auto if dur is not None else False)


@given(event_ids, st.none() | ticks, st.none() | st.integers(min_value=1, max_value=(1 << 40) - 1),
       st.sampled_from(sorted(scte35.SEGMENTATION_TYPES)))
def test_property_every_time_signal_decodes_back_to_the_same_values(
    event_id: int, pts: int | None, dur: int | None, kind: str
) -> None:
    dur_s = None if dur is None else min(dur, PTS_WRAP - 1) / 90_000
    cue = scte35.time_signal(None if pts is None else pts / 90_000, kind, dur_s, event_id)
    back = scte35.decode(cue.hex)
    assert back == cue
    assert (back.event_id, back.pts_ticks, back.segmentation_type) == (event_id, pts, kind)
    assert (None if back.duration is None else round(back.duration * 90_000)) == (
        None if dur is None else min(dur, PTS_WRAP - 1)
    )
