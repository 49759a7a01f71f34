"""Parse the three shapes an ingest upload can arrive in into one typed `Upload`.

`chalice deploy` wires native S3 notifications; CloudFormation deployments (`chalice package`)
cannot attach a notification to a bucket created elsewhere, so the same upload may instead
arrive through EventBridge ("Object Created") or as an S3 notification delivered to SQS.
All three become the same `Upload`, so one use case handles them.

Keys are untrusted (anyone with an ingest URL picks the name): a bad key is a `Rejection`
with a reason, never an exception that would fail the rest of a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from ..errors import ValidationError
from ..records import parse_iso, validate_id

# {channel}/{seq:08d}.(ts|mp4): at least 8 digits (zero padded), at most 12 (records.segment_sk).
# Low-latency channels upload each segment as parts: {channel}/{seq:08d}.{part}.(ts|mp4), part 0-9.
_KEY_RE = re.compile(r"^(?P<channel>[^/]{1,63})/(?P<seq>[0-9]{8,12})(?:\.(?P<part>[0-9]))?\.(?P<ext>ts|mp4)$")


@dataclass(frozen=True)
class Upload:
    bucket: str
    key: str
    channel: str
    seq: int
    ext: str
    etag: str
    size: int
    event_time: datetime | None = None  # when S3 finished the upload (latency starts here)
    version_id: str = ""  # the object version this event is about (versioned ingest bucket)
    part: int = -1  # a low-latency part of segment `seq` (-1: a whole chunk)


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


def parse_key(key: str) -> tuple[str, int, str]:
    """(channel, seq, ext) of an ingest key, or ValidationError saying what is wrong."""
    channel, seq, _, ext = parse_part_key(key)
    return channel, seq, ext


def parse_part_key(key: str) -> tuple[str, int, int, str]:
    """(channel, seq, part, ext) of an ingest key; part -1 for a whole chunk."""
    m = _KEY_RE.match(key)
    if not m:
        raise ValidationError(
            f"ingest key {key[:120]!r} does not match '{{channel}}/{{seq:08d}}.ts|mp4' "
            "(or '{seq:08d}.{part}.ts|mp4' for a low-latency part)"
        )
    channel = validate_id(m["channel"])
    return channel, int(m["seq"]), int(m["part"]) if m["part"] is not None else -1, m["ext"]


def _time(value: object) -> datetime | None:
    try:
        return parse_iso(str(value)) if value else None
    except ValueError:
        return None


def make_upload(bucket: str, key: str, etag: str, size: int, event_time: object = None,
                version_id: str = "") -> Any:
    """An Upload (a pushed chunk), a Rejection, or an encoder's own HLS (`hlsingest`: playlist or segment)."""
    from . import hlsingest

    if hlsingest.is_hls_key(key):
        if not etag:
            return Rejection(key, f"ingest event for {key!r} carries no ETag")
        return hlsingest.classify(bucket, key, etag, int(size or 0), _time(event_time))
    try:
        channel, seq, part, ext = parse_part_key(key)
    except ValidationError as e:
        return Rejection(key, str(e))
    if not etag:
        return Rejection(key, f"ingest event for {key!r} carries no ETag")
    # S3 notifications quote nothing, HeadObject quotes the ETag: compare unquoted everywhere.
    return Upload(bucket, key, channel, seq, ext, etag.strip('"'), int(size or 0), _time(event_time),
                  str(version_id or ""), part)


def from_s3_notification(event: Mapping[str, Any]) -> list[Any]:
    """An S3 event notification ({"Records": [...]}). Test events and deletes are ignored."""
    out: list[Any] = []
    for rec in event.get("Records") or ():
        if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = rec.get("s3") or {}
        obj = s3.get("object") or {}
        # Keys in S3 notifications are URL-encoded with '+' for spaces.
        key = unquote_plus(str(obj.get("key", "")))
        out.append(make_upload(str((s3.get("bucket") or {}).get("name", "")), key,
                               str(obj.get("eTag") or obj.get("etag") or ""), int(obj.get("size") or 0),
                               rec.get("eventTime"), str(obj.get("versionId") or "")))
    return out


def from_eventbridge(event: Mapping[str, Any]) -> list[Any]:
    """An EventBridge "Object Created" event from S3 (keys are not URL-encoded here)."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        return []
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    return [make_upload(str((detail.get("bucket") or {}).get("name", "")), str(obj.get("key", "")),
                        str(obj.get("etag") or ""), int(obj.get("size") or 0), event.get("time"),
                        str(obj.get("version-id") or ""))]


def from_sqs_bodies(bodies: Iterable[str]) -> list[Any]:
    """SQS messages carrying S3 notifications (or EventBridge events forwarded to SQS)."""
    out: list[Any] = []
    for body in bodies:
        try:
            doc = json.loads(body)
        except ValueError:
            out.append(Rejection("", f"SQS ingest message is not JSON: {body[:80]!r}"))
            continue
        if not isinstance(doc, dict):
            out.append(Rejection("", "SQS ingest message is not a JSON object"))
        elif "Records" in doc:
            out.extend(from_s3_notification(doc))
        elif "detail" in doc:
            out.extend(from_eventbridge(doc))
        # Anything else (s3:TestEvent on subscription) carries no upload.
    return out
