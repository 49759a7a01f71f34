"""SQS port + adapter and the two message shapes the pipeline passes between its stages."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..errors import StoreError, ValidationError
from ..records import check_run, check_seq, validate_id

MAX_DELAY = 900  # SQS DelaySeconds limit


class Queue(Protocol):
    def send(self, queue_url: str, body: dict[str, Any], delay: int = 0) -> None: ...

    def retry_after(self, queue_url: str, receipt_handle: str, seconds: int) -> None: ...


class SqsQueue:
    def __init__(self, client: Any) -> None:
        self._sqs = client

    def send(self, queue_url: str, body: dict[str, Any], delay: int = 0) -> None:
        if not queue_url:
            raise StoreError("no queue URL configured (TRANSCODE_QUEUE_URL / PACKAGE_QUEUE_URL)")
        try:
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body, sort_keys=True),
                                   DelaySeconds=max(0, min(MAX_DELAY, int(delay))))
        except ClientError as e:
            raise StoreError(f"SQS send failed: {e}") from e

    def retry_after(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        """Make a message that failed visible again in `seconds` instead of a whole visibility timeout
        (which must cover the longest job, far too late for a live slot)."""
        try:
            self._sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle,
                                                VisibilityTimeout=max(0, min(43_200, int(seconds))))
        except ClientError as e:
            raise StoreError(f"SQS change_message_visibility failed: {e}") from e


@dataclass(frozen=True)
class TranscodeMessage:
    channel: str
    seq: int
    etag: str
    renditions: tuple[str, ...] = ()  # empty: every rendition of the ladder in one job
    run: int = 0
    kind: str = "chunk"  # "chunk" | "slate" (render the run's slate templates)
    version_id: str = ""  # the accepted object version (versioned ingest bucket)
    correlation_id: str = ""  # follows the chunk from its S3 event to the packager's log lines

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d["renditions"] = list(self.renditions)
        return d

    @classmethod
    def parse(cls, body: str) -> TranscodeMessage:
        doc = _json(body)
        try:
            channel = validate_id(doc["channel"])
            seq = check_seq(doc["seq"])
            run = check_run(doc.get("run", 0))
            kind = str(doc.get("kind", "chunk"))
            if kind not in ("chunk", "slate"):
                raise ValidationError(f"transcode message kind {kind!r}: use 'chunk' or 'slate'")
            renditions = tuple(str(r) for r in doc.get("renditions") or ())
            return cls(channel, int(seq), str(doc.get("etag", "")), renditions, run, kind,
                       str(doc.get("version_id", "")), str(doc.get("correlation_id", ""))[:100])
        except KeyError as e:
            raise ValidationError(f"transcode message lacks {e}") from None


@dataclass(frozen=True)
class PackageMessage:
    channel: str
    seq: int = -1  # the chunk that triggered it (logging only)
    reason: str = ""  # non-empty: invalidate manifests for this reason
    correlation_id: str = ""

    def body(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, body: str) -> PackageMessage:
        doc = _json(body)
        if "channel" not in doc:
            raise ValidationError("package message lacks 'channel'")
        return cls(validate_id(doc["channel"]), int(doc.get("seq", -1)), str(doc.get("reason", "")),
                   str(doc.get("correlation_id", ""))[:100])


def _json(body: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise ValidationError(f"message is not JSON: {body[:80]!r}") from None
    if not isinstance(doc, dict):
        raise ValidationError("message is not a JSON object")
    return doc
