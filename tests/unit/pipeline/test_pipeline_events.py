"""Ingest triggers: S3 notification, EventBridge and SQS shapes all become the same Upload."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chalicelib.errors import ValidationError
from chalicelib.pipeline.events import (
    Rejection,
    Upload,
    from_eventbridge,
    from_s3_notification,
    from_sqs_bodies,
    parse_key,
)


def s3_record(key: str, etag: str = "abc", name: str = "ObjectCreated:Put") -> dict:
    return {"eventName": name, "eventTime": "2026-01-01T00:00:02.000Z",
            "s3": {"bucket": {"name": "ingest"}, "object": {"key": key, "eTag": etag, "size": 10}}}


def test_given_a_well_formed_key_then_channel_seq_and_container_are_parsed() -> None:
    assert parse_key("news-1/00000042.ts") == ("news-1", 42, "ts")
    assert parse_key("a/000000000123.mp4") == ("a", 123, "mp4")


@pytest.mark.parametrize("key", [
    "news/42.ts",  # not zero padded to 8
    "news/00000042.mov",  # container not accepted
    "News/00000042.ts",  # channel ids are lower case
    "../etc/00000042.ts",
    "a/b/00000042.ts",
    "news/0000000000042.ts",  # 13 digits: beyond the SEG# key range
    "-bad/00000001.ts",
])
def test_given_a_hostile_or_malformed_key_then_validation_error_names_it(key: str) -> None:
    with pytest.raises(ValidationError):
        parse_key(key)


def test_s3_notification_keys_are_url_decoded_and_etags_unquoted() -> None:
    [u] = from_s3_notification({"Records": [s3_record("news/00000001.ts", '"e1"')]})
    assert isinstance(u, Upload)
    assert (u.channel, u.seq, u.etag, u.bucket) == ("news", 1, "e1", "ingest")
    assert u.event_time == datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    [r] = from_s3_notification({"Records": [s3_record("bad+key/00000001.ts")]})
    assert isinstance(r, Rejection) and "bad key" in r.reason


def test_deletes_and_test_events_carry_no_upload() -> None:
    assert from_s3_notification({"Records": [s3_record("n/00000001.ts", name="ObjectRemoved:Delete")]}) == []
    assert from_sqs_bodies([json.dumps({"Event": "s3:TestEvent"})]) == []


def test_eventbridge_and_sqs_wrapped_events_give_the_same_upload_as_native_s3() -> None:
    native = from_s3_notification({"Records": [s3_record("news/00000007.ts", "e7")]})
    bridge = from_eventbridge({"source": "aws.s3", "detail-type": "Object Created",
                               "time": "2026-01-01T00:00:02Z",
                               "detail": {"bucket": {"name": "ingest"},
                                          "object": {"key": "news/00000007.ts", "etag": "e7", "size": 10}}})
    queued = from_sqs_bodies([json.dumps({"Records": [s3_record("news/00000007.ts", "e7")]})])
    assert native == bridge == queued


def test_an_sqs_body_that_is_not_json_is_a_rejection_not_a_crash() -> None:
    [r] = from_sqs_bodies(["{nope"])
    assert isinstance(r, Rejection) and "not JSON" in r.reason


def test_an_event_without_etag_is_rejected_because_idempotency_needs_it() -> None:
    [r] = from_s3_notification({"Records": [s3_record("news/00000001.ts", etag="")]})
    assert isinstance(r, Rejection) and "ETag" in r.reason
