"""A pipeline on moto (in-process): real DynamoDB/S3/SQS adapters, fake media tools, a fake clock.

The fake probe reads a chunk's JSON body ({"start": s, "duration": d}) or rejects bodies that
start with b"CORRUPT"; the fake transcoder places its outputs exactly where the real one would and
can be told to crash; slate templates are real CMAF built in the box layer (tests/support/fake_media).
The pump plays SQS -> Lambda: receive, run the use case, delete on success or make the
message visible again on failure (as the visibility timeout would), so redrive to the DLQ after
maxReceiveCount is SQS's own (moto) behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib import records, root
from chalicelib.pipeline import events, ingest, publish, worker
from chalicelib.pipeline.deps import Deps
from chalicelib.pipeline.queues import PackageMessage, TranscodeMessage
from tests.support.clock import T0, Clock
from tests.support.fake_media import FakeTranscoder, fake_probe, fake_render_slate

__all__ = ["ENV", "TS_START", "FakeCdn", "FakeTranscoder", "Pipeline", "fake_probe", "fake_render_slate", "make_aws"]

ENV = {
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "TABLE_NAME": "slipstream-test", "INGEST_BUCKET": "slipstream-test-ingest",
    "ORIGIN_BUCKET": "slipstream-test-origin", "LADDER": "test", "GAP_DEADLINE": "10",
    "DVR_WINDOW": "120", "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "SlipstreamTest",
    # Input loss (on by default) is off for this stage: tests that move the clock on past a quiet encoder
    # check the other rules; the input-loss tests turn it on per channel (input_loss_wait).
    "INPUT_LOSS_WAIT": "off",
}


def make_aws(monkeypatch: pytest.MonkeyPatch, env: dict[str, str] = ENV) -> dict[str, str]:
    """Create the table, buckets and queues (with DLQs) named in `env` and export `env`."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    ddb = boto3.client("dynamodb")
    ddb.create_table(TableName=env["TABLE_NAME"], BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    s3 = boto3.client("s3")
    for b in (env["INGEST_BUCKET"], env["ORIGIN_BUCKET"]):
        s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=env["INGEST_BUCKET"], VersioningConfiguration={"Status": "Enabled"})
    sqs = boto3.client("sqs")
    urls: dict[str, str] = {}
    for name in ("transcode", "package", "ingest-events"):
        dlq = sqs.create_queue(QueueName=f"slipstream-{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[name] = sqs.create_queue(QueueName=f"slipstream-{name}", Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
        urls[f"{name}-dlq"] = dlq
    monkeypatch.setenv("TRANSCODE_QUEUE_URL", urls["transcode"])
    monkeypatch.setenv("PACKAGE_QUEUE_URL", urls["package"])
    root.reset()
    return urls


TS_START = 1.4  # where an MPEG-TS muxer starts its clock


@dataclass
class FakeCdn:
    sent: list[list[str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)

    def invalidate(self, paths: list[str], caller_reference: str) -> str:
        self.sent.append(list(paths))
        inv = f"I{len(self.sent)}"
        self.running.add(inv)
        return inv

    def in_progress(self, invalidation_id: str) -> bool:
        return invalidation_id in self.running

    def complete_all(self) -> None:
        self.running.clear()


@dataclass
class Pipeline:
    deps: Deps
    s3: Any
    sqs: Any
    table: Any
    clock: Clock
    transcoder: FakeTranscoder
    queues: dict[str, str]

    # ---- channel setup ----
    def channel(self, cid: str, state: str = records.RUNNING, **fields: Any) -> None:
        fields.setdefault("run_no", 1)
        rec = records.ChannelRecord(id=cid, state=state, ladder="test", started_at=records.iso(T0), **fields)
        item = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()}
        self.table.put_item(Item=item)

    def meta(self, cid: str) -> records.ChannelRecord:
        return records.ChannelRecord.from_item(self.table.get_item(Key={"pk": f"CH#{cid}", "sk": "META"})["Item"])

    # ---- ingest ----
    def upload(self, cid: str, seq: int, body: bytes | None = None, key: str | None = None,
               start: float | None = None) -> dict[str, Any]:
        """Put a chunk in the ingest bucket; returns the S3 notification S3 would send."""
        key = key or f"{cid}/{seq:08d}.ts"
        if body is None:
            body = json.dumps({"start": TS_START + seq * 2.0 if start is None else start, "duration": 2.0}).encode()
        bucket = self.deps.settings.ingest_bucket
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        return {"Records": [{
            "eventName": "ObjectCreated:Put", "eventTime": records.iso(self.clock()),
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": put["ETag"].strip('"'), "size": len(body),
                                                          "versionId": put.get("VersionId", "")}},
        }]}

    def ingest(self, event: dict[str, Any]) -> list[str]:
        return ingest.handle(events.from_s3_notification(event), self.deps)

    def push(self, cid: str, seq: int, **kw: Any) -> list[str]:
        return self.ingest(self.upload(cid, seq, **kw))

    # ---- queues (SQS -> Lambda) ----
    def receive(self, queue: str, n: int = 10) -> list[dict[str, Any]]:
        resp = self.sqs.receive_message(QueueUrl=self.queues[queue], MaxNumberOfMessages=n,
                                        VisibilityTimeout=60, WaitTimeSeconds=0)
        return list(resp.get("Messages", []))

    def pump_transcode(self, only: Callable[[TranscodeMessage], bool] | None = None) -> list[str]:
        """Run every visible transcode message (optionally only some); failures become visible again."""
        out: list[str] = []
        while True:
            msgs = self.receive("transcode")
            if not msgs:
                return out
            held = []
            for m in msgs:
                msg = TranscodeMessage.parse(m["Body"])
                if only is not None and not only(msg):
                    held.append(m)
                    continue
                try:
                    out.append(worker.transcode_chunk(msg, self.deps))
                    self.sqs.delete_message(QueueUrl=self.queues["transcode"], ReceiptHandle=m["ReceiptHandle"])
                except Exception as e:
                    out.append(f"failed: {e}")
                    self._release(m, "transcode")
            for m in held:
                self._release(m, "transcode")
            if held and len(held) == len(msgs):
                return out

    def take(self, queue: str, predicate: Callable[[TranscodeMessage], bool]) -> list[TranscodeMessage]:
        """Receive matching messages and keep them in flight (a worker that has not finished yet)."""
        taken, others = [], []
        for m in self.receive(queue):
            msg = TranscodeMessage.parse(m["Body"])
            if predicate(msg):
                taken.append(msg)
                self.sqs.delete_message(QueueUrl=self.queues[queue], ReceiptHandle=m["ReceiptHandle"])
            else:
                others.append(m)
        for m in others:
            self._release(m, queue)
        return taken

    def run_taken(self, msg: TranscodeMessage) -> str:
        return worker.transcode_chunk(msg, self.deps)

    def pump_package(self) -> list[publish.Outcome]:
        out: list[publish.Outcome] = []
        while msgs := self.receive("package"):
            parsed = [PackageMessage.parse(m["Body"]) for m in msgs]
            out += publish.package_channels(parsed, self.deps)
            for m in msgs:
                self.sqs.delete_message(QueueUrl=self.queues["package"], ReceiptHandle=m["ReceiptHandle"])
        return out

    def pump(self) -> None:
        self.pump_transcode()
        self.pump_package()

    def _release(self, m: dict[str, Any], queue: str) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.queues[queue], ReceiptHandle=m["ReceiptHandle"],
                                           VisibilityTimeout=0)

    def queue_depth(self, queue: str, attr: str = "ApproximateNumberOfMessages") -> int:
        a = self.sqs.get_queue_attributes(QueueUrl=self.queues[queue], AttributeNames=[attr])
        return int(a["Attributes"][attr])

    # ---- origin ----
    def origin(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=self.deps.settings.origin_bucket, Key=key)["Body"].read().decode())

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.s3.head_object(Bucket=self.deps.settings.origin_bucket, Key=key))

    def listed(self, cid: str, rendition: str = "360p", window: str = "live") -> list[str]:
        """Segment URIs of a media playlist (`r1/00000003.m4s`), with 'GAP:' before EXT-X-GAP ones."""
        out, gap = [], False
        for line in self.origin(f"{cid}/{rendition}/{window}.m3u8").splitlines():
            if line == "#EXT-X-GAP":
                gap = True
            elif line and not line.startswith("#"):
                out.append(("GAP:" if gap else "") + line)
                gap = False
        return out

    def chunk_item(self, cid: str, seq: int, run: int = 1) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": f"CH#{cid}", "sk": records.segment_sk(run, seq)}).get("Item")
        return dict(item) if item else None

    def origin_bytes(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.deps.settings.origin_bucket, Key=key)["Body"].read())
