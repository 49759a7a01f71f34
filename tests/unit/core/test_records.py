"""The shared record layout: ids are validated once, before they reach a key, a path or a URL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.errors import ValidationError
from chalicelib.records import (
    ChannelRecord,
    break_sk,
    channel_pk,
    iso,
    parse_iso,
    run_name,
    run_sk,
    segment_sk,
    utcnow,
    validate_id,
)


@pytest.mark.parametrize("good", ["a", "news-1", "x" * 63, "0abc9"])
def test_given_dns_label_ids_when_validated_then_accepted(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "hostile",
    ["", "../etc", "a/b", "CH#x", "Upper", "-lead", "trail-", "x" * 64, "sp ace", "é", "a\x00b", "news\n", None, 42,
     "a.b"],
)
def test_given_hostile_ids_when_validated_then_rejected_with_a_reason(hostile: object) -> None:
    with pytest.raises(ValidationError, match="invalid channel id"):
        validate_id(hostile)


def test_keys_are_prefixed_and_zero_padded_so_they_sort_by_sequence() -> None:
    assert channel_pk("ch1") == "CH#ch1"
    assert segment_sk(1, 7) == "SEG#000001#000000000007"
    assert sorted([segment_sk(1, 10), segment_sk(1, 9)]) == [segment_sk(1, 9), segment_sk(1, 10)]
    # Runs sort before their chunks: a run's chunks are one contiguous key range.
    assert sorted([segment_sk(2, 0), segment_sk(1, 99)]) == [segment_sk(1, 99), segment_sk(2, 0)]
    assert run_sk(3) == "RUN#000003" and run_name(3) == "r3"
    assert break_sk("brk-1") == "BRK#brk-1"


@pytest.mark.parametrize("bad", [-1, 10**12, True, 1.5, "3"])
def test_given_bad_sequence_numbers_when_keyed_then_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        segment_sk(1, bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        run_sk(bad if bad != 10**12 else 10**6)  # type: ignore[arg-type]


def test_channel_record_round_trips_through_dynamodb_numbers() -> None:
    record = ChannelRecord(id="ch1", name="News", segment_duration=2.0, last_seq=41, errors=2)
    item = record.to_item()
    assert item["pk"] == "CH#ch1" and item["sk"] == "META"
    assert "started_at" not in item  # empty strings are not stored (DynamoDB rejects empty keys in GSIs)
    # boto3's resource layer hands numbers back as Decimal
    as_read = {k: Decimal(str(v)) if isinstance(v, int | float) else v for k, v in item.items()}
    back = ChannelRecord.from_item(as_read)
    assert back == record
    assert isinstance(back.last_seq, int) and isinstance(back.segment_duration, float)


def test_iso_timestamps_are_utc_with_z_and_round_trip() -> None:
    now = utcnow()
    text = iso(now)
    assert text.endswith("Z")
    assert abs((parse_iso(text) - now).total_seconds()) < 0.001
