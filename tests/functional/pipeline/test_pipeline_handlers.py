"""app.py's pipeline handlers through chalice.test.Client, with real ffmpeg chunks from `push`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from pipeline_harness import ENV as TEST_ENV
from pipeline_harness import make_aws

from chalicelib import records, root
from slipstream_cli import push

# chalice.test.Client applies the stage's environment from .chalice/config.json: use stage "local".
_CONFIG = json.loads((Path(__file__).resolve().parents[3] / ".chalice" / "config.json").read_text())
ENV = {**TEST_ENV, **_CONFIG["environment_variables"], **_CONFIG["stages"]["local"]["environment_variables"]}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with mock_aws():
        yield make_aws(monkeypatch, ENV)


def start_channel(cid: str) -> None:
    # Real clock, real transcodes, and the encoder stops after its chunks: on a loaded machine the steps can
    # outlast the input-loss wait, which would slate the next slot (and queue its timer) mid-test.
    rec = records.ChannelRecord(id=cid, state=records.RUNNING, ladder="test", started_at="2026-03-01T12:00:00Z",
                                input_loss_wait=-1.0)
    item = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()}
    boto3.resource("dynamodb").Table(ENV["TABLE_NAME"]).put_item(Item=item)


def sqs_event(client: Client, queue_url: str) -> tuple[Any, list[dict[str, Any]]]:
    sqs = boto3.client("sqs")
    msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for m in msgs:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    name = queue_url.rsplit("/", 1)[-1]
    return client.events.generate_sqs_event(queue_name=name, message_bodies=[m["Body"] for m in msgs]), msgs


def test_push_uploads_each_closed_chunk_to_the_ingest_bucket(aws: dict[str, str]) -> None:
    args = argparse_push("--duration", "4")
    assert push.run(args) == 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=ENV["INGEST_BUCKET"])["Contents"]]
    assert keys == ["news/00000000.ts", "news/00000001.ts"]


def argparse_push(*extra: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    push.add_parser(parser.add_subparsers())
    return parser.parse_args(["push", "--channel", "news", "--bucket", ENV["INGEST_BUCKET"], "--no-realtime",
                              "--size", "320x180", "--quiet", *extra, "testsrc"])


def test_s3_event_to_published_playlist_through_the_chalice_handlers(aws: dict[str, str]) -> None:
    """Real chunks, real probe and transcode (TEST_LADDER), handlers wired as app.py wires them."""
    from app import app

    start_channel("news")
    assert push.run(argparse_push("--duration", "4")) == 0
    with Client(app, stage_name="local") as client:
        root.reset()
        for seq in (0, 1):
            key = f"news/{seq:08d}.ts"
            s3_event = client.events.generate_s3_event(bucket=ENV["INGEST_BUCKET"], key=key)
            etag = boto3.client("s3").head_object(Bucket=ENV["INGEST_BUCKET"], Key=key)["ETag"].strip('"')
            s3_event["Records"][0]["s3"]["object"]["eTag"] = etag
            resp = client.lambda_.invoke("on_segment_uploaded", s3_event)
            assert resp.payload == ["accepted"]
        _, msgs = sqs_event(client, aws["transcode"])
        kinds = sorted(json.loads(m["Body"])["kind"] for m in msgs)
        assert kinds == ["chunk", "chunk", "slate"]  # the run's first chunk also asks for its slate
        for body in sorted((m["Body"] for m in msgs), key=lambda b: json.loads(b)["kind"] != "slate"):
            one = client.events.generate_sqs_event(queue_name="slipstream-transcode", message_bodies=[body])
            want = "slate" if json.loads(body)["kind"] == "slate" else "done"
            assert client.lambda_.invoke("transcode_chunk", one).payload == [want]
        # The workers packaged inline; the package queue is for deferred work, e.g. a re-check.
        _, msgs = sqs_event(client, aws["package"])
        assert msgs == []
        event = client.events.generate_sqs_event(queue_name="slipstream-package",
                                                 message_bodies=[json.dumps({"channel": "news"})])
        out = client.lambda_.invoke("package_channel", event).payload
        assert [(o["channel"], o["status"], o["published_seq"]) for o in out] == [("news", "unchanged", 1)]
    origin = boto3.client("s3")
    text = origin.get_object(Bucket=ENV["ORIGIN_BUCKET"], Key="news/360p/live.m3u8")["Body"].read().decode()
    assert "r1/00000000.m4s" in text and "r1/00000001.m4s" in text and "#EXT-X-GAP" not in text
    seg = origin.head_object(Bucket=ENV["ORIGIN_BUCKET"], Key="news/240p/r1/00000001.m4s")
    assert seg["ContentLength"] > 1000 and seg["CacheControl"].endswith("immutable")


def test_eventbridge_and_sqs_ingest_reach_the_same_use_case_and_stay_idempotent(aws: dict[str, str]) -> None:
    """CloudFormation deployments deliver uploads via EventBridge or SQS; a chunk delivered both
    ways (and natively) is still one segment and one transcode job."""
    from app import app

    start_channel("news")
    assert push.run(argparse_push("--duration", "2")) == 0
    key = "news/00000000.ts"
    etag = boto3.client("s3").head_object(Bucket=ENV["INGEST_BUCKET"], Key=key)["ETag"].strip('"')
    bridge = {"version": "0", "id": "1", "detail-type": "Object Created", "source": "aws.s3", "account": "1",
              "time": "2026-03-01T12:00:00Z", "region": "us-east-1", "resources": [],
              "detail": {"bucket": {"name": ENV["INGEST_BUCKET"]}, "object": {"key": key, "etag": etag, "size": 1}}}
    # A stage registers one of these triggers (app.py); the glue behind each is the same use case.
    from chalicelib.pipeline import handlers

    root.reset()
    assert handlers.on_eventbridge(bridge) == ["accepted"]
    with Client(app, stage_name="local") as client:
        s3_note = client.events.generate_s3_event(bucket=ENV["INGEST_BUCKET"], key=key)
    s3_note["Records"][0]["s3"]["object"]["eTag"] = etag
    queued = {"Records": [{"body": json.dumps(s3_note)}, {"body": "not json"}]}
    out = handlers.on_ingest_queue(queued)
    assert out[0] == "accepted" and out[1].startswith("rejected")  # replayed from the idempotency record
    sqs = boto3.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=aws["transcode"], AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "2"  # one transcode job + the run's slate
    item = boto3.resource("dynamodb").Table(ENV["TABLE_NAME"]).get_item(
        Key={"pk": "CH#news", "sk": records.segment_sk(1, 0)})["Item"]
    # The EventBridge time was hours off our clock: arrival is taken from our clock instead.
    assert not str(item["received_at"]).startswith("2026-03-01T12:00")


@pytest.mark.parametrize(
    ("trigger", "handler"),
    [
        ("s3", "on_segment_uploaded"),
        ("eventbridge", "on_segment_uploaded_event"),
        ("sqs", "on_segment_uploaded_queued"),
    ],
)
def test_each_stage_registers_exactly_one_ingest_trigger(
    monkeypatch: pytest.MonkeyPatch, trigger: str, handler: str
) -> None:
    """Two registered triggers would ingest every upload twice (EventBridge -> Lambda and -> SQS)."""
    import importlib
    import sys

    import app as app_module
    from chalicelib.pipeline import handlers

    monkeypatch.setenv("INGEST_TRIGGER", trigger)
    try:
        importlib.reload(handlers)
        fresh = importlib.reload(app_module)
        ingest = {"on_segment_uploaded", "on_segment_uploaded_event", "on_segment_uploaded_queued"}
        names = {getattr(src, "name", "") for src in fresh.app.event_sources} & ingest
        assert names == {handler}
    finally:
        monkeypatch.delenv("INGEST_TRIGGER")
        importlib.reload(handlers)
        importlib.reload(sys.modules["app"])


def test_a_failed_transcode_comes_back_within_seconds_not_a_visibility_timeout_later(aws: dict[str, str]) -> None:
    """The transcode queue's visibility timeout covers the longest job (30 min on AWS): a job whose ffmpeg
    died must not wait that long, its slot is due in seconds. The handler makes it visible again in 1 s
    (then 4 s, 15 s), and still fails the invocation so SQS counts the receive toward the DLQ."""
    import time

    from chalicelib.pipeline import handlers

    start_channel("news")
    assert push.run(argparse_push("--duration", "2")) == 0
    key = "news/00000000.ts"
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=ENV["INGEST_BUCKET"], Key=key)
    root.reset()
    note = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ENV["INGEST_BUCKET"]}, "object": {
        "key": key, "eTag": head["ETag"].strip('"'), "size": head["ContentLength"],
        "versionId": head.get("VersionId", "")}}}]}
    assert handlers.on_s3(note) == ["accepted"]
    # The accepted bytes vanish (a lifecycle rule, an operator): this job cannot succeed now.
    s3.delete_object(Bucket=ENV["INGEST_BUCKET"], Key=key, VersionId=head["VersionId"])
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=aws["transcode"], MaxNumberOfMessages=10, VisibilityTimeout=1800,
                              AttributeNames=["All"])["Messages"]
    chunk = next(m for m in got if json.loads(m["Body"])["kind"] == "chunk")
    record = {"body": chunk["Body"], "receiptHandle": chunk["ReceiptHandle"], "attributes": chunk["Attributes"]}
    with pytest.raises(Exception, match="gone from the ingest bucket"):
        handlers.on_transcode({"Records": [record]})
    time.sleep(1.5)
    again = sqs.receive_message(QueueUrl=aws["transcode"], MaxNumberOfMessages=10, AttributeNames=["All"])
    bodies = [m["Body"] for m in again.get("Messages", [])]
    assert chunk["Body"] in bodies  # back after ~1 s, not 1800 s
    redelivered = next(m for m in again["Messages"] if m["Body"] == chunk["Body"])
    assert redelivered["Attributes"]["ApproximateReceiveCount"] == "2"
